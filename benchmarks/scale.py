"""Scale: long sequences in constant memory and large hidden sizes on the CPU.

Each case runs in its own process so its peak resident memory (``ru_maxrss``) is its own.
Cases (issue "Bad input, faults and scale"): rnn n=16 with T=1,000,000; lstm n=64 with
T=100,000; rnn n=64 with T=100,000, B=4; rnn n=2048 (a few steps). Prints wall time, peak
RSS and whether every reported log norm is finite.

Run: ``python benchmarks/scale.py`` (``--quick`` divides every T by 100).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap

CASES = [
    ("rnn", 16, 1_000_000, 1),
    ("lstm", 64, 100_000, 1),
    ("rnn", 64, 100_000, 4),
    ("rnn", 2048, 4, 1),
    ("gru", 2048, 3, 1),
]

CODE = textwrap.dedent("""
    import sys, time
    import numpy as np
    from gradflow.cells import get_cell
    from gradflow.engine import analyze
    from gradflow.initialisers import Init, initialise
    name, n, T, B = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = np.random.default_rng(0)
    cell = get_cell(name)
    params = initialise(cell, n, 4, Init("gaussian"), rng)
    x = rng.standard_normal((T, B, 4))
    t = time.perf_counter()
    r = analyze(cell, params, x)
    dt = time.perf_counter() - t
    finite = bool(np.isfinite(r.log10_spectral_norm).all()
                  and np.isfinite(r.log10_frobenius_norm).all())
    # VmHWM, not ru_maxrss: Linux carries a parent's high-water mark across exec.
    with open("/proc/self/status") as fh:
        rss = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:")) / 1024
    print(f"{dt:.1f} {rss:.0f} {finite} {np.median(r.log10_spectral_norm[-1]):.1f}")
""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(
        f"{'cell':<5} {'n':>5} {'T':>9} {'B':>2} {'seconds':>8} {'peak MB':>8} "
        f"{'finite':>6} {'log10 norm at T':>16}"
    )
    for name, n, T, B in CASES:
        steps = max(3, T // 100) if args.quick else T
        out = subprocess.run(
            [sys.executable, "-c", CODE, name, str(n), str(steps), str(B)],
            capture_output=True,
            text=True,
            check=True,
        )
        dt, rss, finite, last = out.stdout.split()
        print(f"{name:<5} {n:>5} {steps:>9} {B:>2} {dt:>8} {rss:>8} {finite:>6} {last:>16}")


if __name__ == "__main__":
    main()
