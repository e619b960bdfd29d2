"""Peak memory of the whole ``gradflow analyze`` command at long T (issue 13, item 6).

Runs ``gradflow analyze --cell rnn`` with n = 16, d = 4, B = 2 and T = 10^6 (``--steps`` to
change) in a fresh process and prints its wall time, peak resident memory (VmHWM, the whole
process: inputs, engine, result and the JSON writer) and the size of the JSON it wrote.
``--whole`` saves the way gradflow did before the streaming writer (the whole JSON text built
in memory first), for comparison.

Run: ``PYTHONPATH=. python benchmarks/analyze_memory.py [--steps 1000000] [--whole]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

CODE = textwrap.dedent("""
    import sys
    if sys.argv[1] == "whole":
        from gradflow.atomic import atomic_write
        from gradflow.results import base, io
        def whole(path, data, *, inputs=(), parents=False):
            atomic_write(path, io.dumps(data), inputs=inputs, parents=parents)
        base.save_json = whole
    from gradflow.cli import main
    try:
        main(sys.argv[2:])
    finally:
        with open("/proc/self/status") as fh:
            hwm = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:")) / 1024
        print(f"peak {hwm:.0f}", file=sys.stderr)
""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--whole", action="store_true", help="the old, non-streaming writer")
    args = ap.parse_args()
    n, d, B, T = 16, 4, 2, args.steps
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        weights, inputs, out = (os.path.join(tmp, f) for f in ("w.npz", "x.npy", "r.json"))
        np.savez(
            weights,
            weight_ih_l0=rng.standard_normal((n, d)) / np.sqrt(d),
            weight_hh_l0=rng.standard_normal((n, n)) / np.sqrt(n),
            bias_ih_l0=np.zeros(n),
            bias_hh_l0=np.zeros(n),
        )
        np.save(inputs, rng.standard_normal((T, B, d)))
        cmd = ["--cell", "rnn", "--weights", weights, "--inputs", inputs, "--output", out]
        start = time.perf_counter()
        res = subprocess.run(
            [sys.executable, "-c", CODE, "whole" if args.whole else "stream", "analyze", *cmd],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        peak = next(ln for ln in res.stderr.splitlines() if ln.startswith("peak"))
        size = os.path.getsize(out) / 2**20 if os.path.exists(out) else float("nan")
        writer = "whole" if args.whole else "streamed"
        print(f"T={T} B={B} n={n} writer={writer}: {wall:.1f} s, {peak} MB, JSON {size:.0f} MiB")


if __name__ == "__main__":
    main()
