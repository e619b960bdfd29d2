"""Clean shutdown (issue 13, item 4): SIGTERM and SIGINT, sent to a real ``gradflow`` process
while ``sweep --jobs 2`` or ``report`` runs, stop every worker process (pool workers, the
forkserver, the resource tracker), remove every temporary folder, and exit with 143 (SIGTERM)
or 130 (SIGINT) and one line.

Each command runs in its own session (``start_new_session``), so every process it starts,
however deep, shares that session id; after the command exits, none may remain. The loops
below poll with generous deadlines only so that a regression fails instead of hanging; no
assertion is about time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gradflow.shutdown import Terminated, exit_code, handle_signals

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

SWEEP = """name = "stop"
cells = ["rnn"]
hidden_size = 8
input_size = 2
steps = 400
batch = 2
seeds = 2

[sweep.axes]
"init.sigma_w" = {start = 0.5, stop = 2.0, num = 40}
"""


def session_members(sid: int) -> list[int]:
    """Every live process whose session id is ``sid`` (zombies excluded)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry))
    return members


def start(
    args: list[str], cwd: Path, tmpdir: Path, script: str | None = None
) -> subprocess.Popen[str]:
    """``gradflow ARGS`` (or ``python SCRIPT ARGS``) in its own session."""
    command = [script] if script else ["-c", "from gradflow.cli import main; main()"]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OPENBLAS_NUM_THREADS": "1",
        "TMPDIR": str(tmpdir),
    }
    return subprocess.Popen(
        [sys.executable, *command, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(cond: Callable[[], bool], proc: subprocess.Popen[str], limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {proc.stderr.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the command never reached the state to interrupt")
        time.sleep(0.02)


def stop_and_check(proc: subprocess.Popen[str], sig: int) -> str:
    """Send ``sig``; return stderr after checking the exit code and that nothing remains."""
    os.kill(proc.pid, sig)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()  # reap it: a live Popen would fail the next test with a warning
        raise
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    deadline = time.monotonic() + 30  # the forkserver and tracker exit once the parent has
    while (left := session_members(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert left == [], f"processes left running: {left}"
    return err


def points(out: Path) -> list[Path]:
    return list((out / "points").glob("*.json")) if (out / "points").is_dir() else []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_parallel_sweep_stops_every_process(tmp_path, sig):
    (tmp_path / "s.toml").write_text(SWEEP)
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "out"
    proc = start(
        ["sweep", "s.toml", "-o", str(out), "--jobs", "2", "-q"], tmp_path, tmp_path / "tmp"
    )
    wait_for(lambda: len(points(out)) >= 2, proc)  # the pool is running
    err = stop_and_check(proc, sig)
    word = "terminated" if sig == signal.SIGTERM else "interrupted"
    assert err == f"{word}; finished points kept in {out}\n"
    assert not (out / "sweep.json").exists()
    assert 2 <= len(points(out)) < 40  # what finished is kept for a resume
    assert [p.name for p in out.iterdir()] == ["points"]
    assert not [p for p in (out / "points").iterdir() if p.suffix != ".json"]  # no temp file
    assert list((tmp_path / "tmp").iterdir()) == []


def _sweep_points_in(tmpdir: Path) -> bool:
    return any(any((d / "points").glob("*.json")) for d in tmpdir.glob("gradflow-sweep-*"))


def _report_tmp(folder: Path) -> bool:
    return any(folder.glob(".rep.*.tmp"))


@pytest.mark.parametrize(
    ("sig", "stage"),
    [(signal.SIGTERM, "sweep"), (signal.SIGTERM, "build"), (signal.SIGINT, "build")],
)
def test_signal_during_report_leaves_no_process_and_no_folder(tmp_path, sig, stage):
    (tmp_path / "s.toml").write_text(SWEEP.replace("num = 40", "num = 12"))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    reports = tmp_path / "reports"
    reports.mkdir()
    args = ["report", "--config", "s.toml", "--out", str(reports / "rep"), "--jobs", "2", "-q"]
    proc = start([*args, "--format", "svg"], tmp_path, tmp)
    if stage == "sweep":
        wait_for(lambda: _sweep_points_in(tmp), proc)
    else:
        wait_for(lambda: _report_tmp(reports), proc)
    err = stop_and_check(proc, sig)
    assert err == ("terminated\n" if sig == signal.SIGTERM else "interrupted\n")
    assert list(reports.iterdir()) == []  # no report, no hidden .rep.*.tmp or .old folder
    assert list(tmp.iterdir()) == []  # the sweep's work folder is gone too


HALF_A_RESULT = """import multiprocessing, struct, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from gradflow.analysis.sweep import stop_workers


def half_a_result(flag):
    queue = sys._getframe(1).f_locals["result_queue"]  # concurrent.futures' _process_worker
    queue._writer._send(struct.pack("!i", 1 << 20) + b"the start of a 1 MiB result")
    Path(flag).touch()
    time.sleep(600)


if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver"))
    future = pool.submit(half_a_result, sys.argv[1])
    while not Path(sys.argv[1]).exists():
        time.sleep(0.01)
    time.sleep(0.2)  # the manager thread now waits in recv() for the rest of the message
    manager = pool._executor_manager_thread
    stop_workers(pool)
    manager.join(20)
    print("alive" if manager.is_alive() else "ended", type(future.exception()).__name__)
"""


def test_stopping_a_worker_that_was_sending_its_result_lets_the_process_end(tmp_path):
    """A worker stopped halfway through sending its result (the CI failure of stop 21: the
    report hung after printing "terminated") must not leave the pool's manager thread waiting
    for the rest of the message, which the interpreter would join forever at exit."""
    (tmp_path / "half.py").write_text(HALF_A_RESULT)
    proc = start([str(tmp_path / "flag")], tmp_path, tmp_path, script="half.py")
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("the process never ended after stop_workers") from None
    assert (proc.returncode, out) == (0, "ended BrokenProcessPool\n"), err


def test_exit_codes_follow_the_shell_convention():
    assert exit_code(KeyboardInterrupt()) == 130  # 128 + SIGINT (2)
    assert exit_code(Terminated(signal.SIGTERM)) == 143  # 128 + SIGTERM (15)
    assert isinstance(Terminated(), KeyboardInterrupt)  # every Ctrl-C cleanup applies


def test_handle_signals_raises_terminated_and_restores_the_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as info, handle_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this at once
    assert info.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
