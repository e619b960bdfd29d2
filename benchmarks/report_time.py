"""``gradflow report`` (the README's main command, default options) timed as a user runs it.

Issue 14's bar: on a 2-core machine, under 30 s quiet and under 45 s beside a busy process.

Each run is ``gradflow report --out TMP --quiet --jobs J`` in a child process
whose environment has the thread variables removed (``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``GRADFLOW_THREADS``: gradflow's own thread policy
decides, as for a new user). Wall time is measured around the child; CPU time is that of the
whole process tree (the command, its forkserver and the pool's workers), read from
``/proc`` through psutil every 50 ms (each process's last reading: up to 50 ms short per
process). ``--busy`` runs a CPU-bound ``while True: pass`` process beside every run (started
before, stopped by its pid after). The load average before each run is printed: on a shared
machine it says how quiet "quiet" was. Best of ``--repeat`` runs, with every run listed.

``--stages`` instead runs the report's stages one after another in this process (``--jobs 1``
order: experiment, claims, trained networks, sweep, then the figures and pages, under the
report's BLAS limit) and prints the CPU and wall time of each: where the time goes.

``--blas1`` sets ``OPENBLAS_NUM_THREADS=1`` in the child (how trees before the report's own
thread policy were timed). ``--tree DIR`` measures another gradflow tree the same way (e.g.
the code before a change: ``git archive <commit> gradflow | tar -x -C DIR``); run both in one
session and compare.

Run: ``python benchmarks/report_time.py [--jobs 2] [--repeat 3] [--busy] [--stages]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The console script ``gradflow`` (``[project.scripts]``), without an installed package.
ENTRY = "import sys; from gradflow.cli import main; main(sys.argv[1:])"
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GRADFLOW_THREADS")


def tree_cpu(root: int, seen: dict[int, float]) -> None:
    """Record the CPU seconds (user + system) of ``root`` and its descendants in ``seen``."""
    import psutil

    try:
        procs = [psutil.Process(root)]
        procs += procs[0].children(recursive=True)
    except psutil.Error:
        return
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        seen[p.pid] = max(seen.get(p.pid, 0.0), t.user + t.system)


def run_once(
    tree: Path, jobs: int, formats: list[str], busy: bool, blas1: bool = False
) -> tuple[float, float, float]:
    """One report: ``(wall s, CPU s of the process tree, 1-minute load before)``."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["PYTHONPATH"] = str(tree)
    if blas1:
        env["OPENBLAS_NUM_THREADS"] = "1"
    hog = None
    if busy:
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1.0)  # let it take its core
    load = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="gradflow-report-time-") as tmp:
            cmd = [sys.executable, "-c", ENTRY, "report", "--out", f"{tmp}/r", "-q"]
            cmd += ["--jobs", str(jobs)] + [a for f in formats for a in ("--format", f)]
            seen: dict[int, float] = {}
            start = time.perf_counter()
            child = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
            while child.poll() is None:
                tree_cpu(child.pid, seen)
                time.sleep(0.05)
            wall = time.perf_counter() - start
            if child.returncode != 0:
                raise SystemExit(f"report failed with exit code {child.returncode}")
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return wall, sum(seen.values()), load


def stages(jobs_out: Path) -> None:
    """Each stage's CPU and wall time, one after another in this process."""
    sys.path.insert(0, str(ROOT))
    c0, w0 = time.process_time(), time.perf_counter()
    from threadpoolctl import ThreadpoolController

    from gradflow.analysis.claims import run_claims
    from gradflow.analysis.defaults import default_report_config, default_sweep_config
    from gradflow.analysis.experiment import run_experiment
    from gradflow.analysis.sweep import run_sweep
    from gradflow.analysis.trained import analyze_trained
    from gradflow.report import build_report, report_threads

    print(f"{'imports':12s} cpu {time.process_time() - c0:6.2f} s")
    # the BLAS limit run_report applies to its whole run (without it, OpenBLAS's threads spin)
    blas = report_threads(default_report_config())
    ThreadpoolController().limit(limits=blas, user_api="blas")
    total = {"cpu": 0.0}

    def timed(label: str, fn):  # type: ignore[no-untyped-def]
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        cpu = time.process_time() - c
        total["cpu"] += cpu
        print(f"{label:12s} cpu {cpu:6.2f} s  wall {time.perf_counter() - w:6.2f} s", flush=True)
        return out

    exp = timed("experiment", lambda: run_experiment(default_report_config(), progress=False))
    clm = timed("claims", lambda: run_claims(True, False))
    trn = timed("trained", analyze_trained)
    with tempfile.TemporaryDirectory() as work:
        swp = timed("sweep", lambda: run_sweep(default_sweep_config(), work, progress=False))
    timed("figures+pages", lambda: build_report(exp, swp, clm, jobs_out, trained=trn))
    print(
        f"{'all':12s} cpu {time.process_time() - c0:6.2f} s  "
        f"wall {time.perf_counter() - w0:6.2f} s (one process, one after another)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--busy", action="store_true", help="a CPU-bound process beside each run")
    ap.add_argument("--format", action="append", default=[], help="figure format (repeat)")
    ap.add_argument("--tree", type=Path, default=ROOT, help="the gradflow tree to time")
    ap.add_argument("--stages", action="store_true", help="CPU and wall time per stage")
    ap.add_argument("--blas1", action="store_true", help="OPENBLAS_NUM_THREADS=1 (for older trees)")
    args = ap.parse_args()
    if args.stages:
        with tempfile.TemporaryDirectory() as tmp:
            stages(Path(tmp) / "r")
        return
    print(
        f"gradflow report --jobs {args.jobs}{' beside a busy process' if args.busy else ''}"
        f"{', OPENBLAS_NUM_THREADS=1' if args.blas1 else ''}, "
        f"tree {args.tree}, {os.cpu_count()} cores"
    )
    runs = []
    for _ in range(args.repeat):
        wall, cpu, load = run_once(args.tree, args.jobs, args.format, args.busy, args.blas1)
        runs.append((wall, cpu))
        print(f"  wall {wall:6.1f} s  cpu {cpu:6.1f} s  (load average before: {load:.2f})")
    print(
        f"best of {args.repeat}: wall {min(r[0] for r in runs):.1f} s, "
        f"cpu {min(r[1] for r in runs):.1f} s"
    )


if __name__ == "__main__":
    main()
