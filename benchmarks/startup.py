"""Start-up cost of gradflow: import, CLI import, a tiny ``analyze`` by CLI and by library.

Each command runs in a fresh interpreter; the numbers are the child's CPU time (user + sys,
from ``resource.getrusage(RUSAGE_CHILDREN)``) and its wall time, best of ``--repeat`` (3), at
one BLAS thread. The kernel cache (``gradflow.kernel_cache``) is measured both cold
(``GRADFLOW_CACHE=0``: every process derives and prints its kernels) and warm (a cache
directory filled by one earlier run). The case is tiny (rnn, n = 8, T = 20, B = 2) so that the
numbers are start-up, not analysis. Whether SymPy was imported is printed for each command.

Run from the repository root: ``PYTHONPATH=. python benchmarks/startup.py``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK = "import sys; print('sympy' in sys.modules, file=sys.stderr)"


def _commands(tmp: Path) -> dict[str, list[str]]:
    w, x, out = tmp / "w.npz", tmp / "x.npy", tmp / "out.json"
    analyze_lib = (
        "import numpy as np, gradflow; "
        f"p = gradflow.load_weights({str(w)!r}, 'rnn'); x = np.load({str(x)!r}); "
        f"gradflow.analyze('rnn', p, x); {CHECK}"
    )
    return {
        "import gradflow": [sys.executable, "-c", f"import gradflow; {CHECK}"],
        "import gradflow.cli": [sys.executable, "-c", f"import gradflow.cli; {CHECK}"],
        "gradflow analyze --cell rnn": [
            sys.executable,
            "-c",
            "import sys, atexit; atexit.register(lambda: print('sympy' in sys.modules, "
            "file=sys.stderr)); from gradflow.cli import main; main()",
            *("analyze", "--cell", "rnn", "--weights", str(w), "--inputs", str(x)),
            *("--output", str(out)),
        ],
        "gradflow.analyze('rnn', ...)": [sys.executable, "-c", analyze_lib],
    }


def _make_case(tmp: Path) -> None:
    import numpy as np

    import gradflow

    rng = np.random.default_rng(0)
    params = gradflow.initialise(gradflow.get_cell("rnn"), 8, 3, gradflow.Init(), rng)
    gradflow.save_weights(tmp / "w.npz", "rnn", params)
    np.save(tmp / "x.npy", rng.standard_normal((20, 2, 3)))


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, done.stderr.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        _make_case(tmp)
        base = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
        modes = {
            "no cache": {**base, "GRADFLOW_CACHE": "0"},
            "warm cache": {**base, "GRADFLOW_CACHE_DIR": str(tmp / "kernels")},
        }
        print(f"{'command':34} {'cache':10} {'CPU s':>7} {'wall s':>7}  sympy imported")
        for label, cmd in _commands(tmp).items():
            for mode, env in modes.items():
                if mode == "warm cache":
                    _run(cmd, env)  # fill the cache
                runs = [_run(cmd, env) for _ in range(args.repeat)]
                cpu = min(r[0] for r in runs)
                wall = min(r[1] for r in runs)
                print(f"{label:34} {mode:10} {cpu:7.2f} {wall:7.2f}  {runs[-1][2]}")


if __name__ == "__main__":
    main()
