"""Sweeps: config validation, grid and seeds, executors (inline, processes, Dask), resume after
an interruption, and the ``gradflow sweep`` command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import gradflow.analysis.sweep as sweep
from gradflow.analysis.experiment import ExperimentConfig
from gradflow.analysis.sweep import (
    SweepConfig,
    SweepResult,
    load_sweep_config,
    regime,
    run_sweep,
)
from gradflow.cli import cli
from gradflow.errors import BackendError, ConfigError, NumericalError
from gradflow.initialisers import Init
from gradflow.results import dumps

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "experiments"

BASE = ExperimentConfig(
    name="tiny",
    cells=("rnn",),
    hidden_size=4,
    input_size=2,
    steps=20,
    batch=1,
    seeds=(0,),
    init=Init(scheme="gaussian"),
)


def big_sweep() -> SweepConfig:
    """4 cells x 13 gains x 2 sizes x 2 lengths = 208 tiny points (n 4..8, T 20..30, B 1)."""
    return SweepConfig(
        BASE,
        (
            ("cell", ("rnn", "gru", "lstm", "mgu")),
            ("init.sigma_w", tuple(0.5 + 0.25 * i for i in range(13))),
            ("hidden_size", (4, 8)),
            ("steps", (20, 30)),
        ),
    )


def small_sweep() -> SweepConfig:
    return SweepConfig(BASE, (("cell", ("rnn", "gru")), ("init.sigma_w", (0.5, 1.0, 2.0, 4.0))))


# ---- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        (
            {"init.sigma_ww": [1.0]},
            "unknown key 'sweep.axes.init.sigma_ww' in the sweep config; "
            "did you mean 'sweep.axes.init.sigma_w'?",
        ),
        ({"cells": ["rnn"]}, "did you mean 'sweep.axes.cell'?"),
        ({"hidden_size": []}, "sweep.axes.hidden_size must be a non-empty list"),
        ({"hidden_size": [4, 4]}, "sweep.axes.hidden_size lists a value twice"),
        (
            {"hidden_size": [4, 0]},
            'sweep point {"hidden_size":0}: hidden_size must be an integer in [1, 1000000], got 0',
        ),
        (
            {"init.sigma_w": {"start": 0, "stop": 1}},
            "sweep.axes.init.sigma_w needs start, stop and num (missing num)",
        ),
        (
            {"init.sigma_w": {"start": 0, "stop": 1, "num": 3, "log": True}},
            "sweep.axes.init.sigma_w.start must be a finite number in (0, inf)",
        ),
        (
            {"init.sigma_w": {"start": 0, "stop": 1, "nun": 3}},
            "did you mean 'sweep.axes.init.sigma_w.num'?",
        ),
        ({"cell": ["rnn", "lsmt"]}, "unknown cell 'lsmt'; did you mean 'lstm'?"),
        ({}, "a sweep needs at least one axis"),
    ],
)
def test_config_errors(axes, message):
    with pytest.raises(ConfigError) as info:
        SweepConfig.from_dict({"cells": ["rnn"], "sweep": {"axes": axes}})
    assert message in str(info.value)


def test_config_errors_outside_the_axes():
    with pytest.raises(ConfigError, match="needs a \\[sweep\\] table"):
        SweepConfig.from_dict({"cells": ["rnn"]})
    with pytest.raises(ConfigError, match="unknown key 'sweep.tl'.*did you mean 'sweep.tol'"):
        SweepConfig.from_dict({"sweep": {"tl": 1, "axes": {"steps": [10]}}})
    with pytest.raises(ConfigError, match="sweep.tol must be a finite number in \\[0, 10\\]"):
        SweepConfig.from_dict({"sweep": {"tol": -1, "axes": {"steps": [10]}}})


def test_grid_order_and_implicit_cell_axis():
    cfg = SweepConfig.from_dict(
        {
            "cells": ["rnn", "gru"],
            "sweep": {"axes": {"init.sigma_w": {"start": 1, "stop": 4, "num": 3, "log": False}}},
        }
    )
    assert [a for a, _ in cfg.axes] == ["cell", "init.sigma_w"]
    points = list(cfg.points())
    assert points[:2] == [
        {"cell": "rnn", "init.sigma_w": 1.0},
        {"cell": "rnn", "init.sigma_w": 2.5},
    ]
    assert len(points) == 6
    assert cfg.point_config(points[4]).cells == ("gru",)
    assert cfg.point_config(points[4]).init.sigma_w == 2.5
    log = SweepConfig.from_dict(
        {"sweep": {"axes": {"init.sigma_w": {"start": 0.5, "stop": 8, "num": 5, "log": True}}}}
    )
    assert [a for a, _ in log.axes] == ["cell", "init.sigma_w"]  # default cells: 3 of them
    assert log.axes[1][1] == pytest.approx((0.5, 1.0, 2.0, 4.0, 8.0), rel=1e-12)


def test_point_seeds_depend_on_coordinates_only():
    a = SweepConfig(
        BASE.replace(seeds=(0, 1)), (("init.sigma_w", (0.5, 1.0)), ("hidden_size", (4, 8)))
    )
    b = SweepConfig(
        BASE.replace(seeds=(0, 1)), (("hidden_size", (8, 4)), ("init.sigma_w", (1.0, 0.5)))
    )
    p = {"init.sigma_w": 1.0, "hidden_size": 8}
    assert a.point_config(p) == b.point_config(p)
    seeds = [a.point_config(q).seeds for q in a.points()]
    assert len(set(seeds)) == 4 and all(len(s) == 2 for s in seeds)


def test_example_loads():
    cfg = load_sweep_config(EXAMPLES / "phase-diagram.toml")
    assert len(list(cfg.points())) == 18


def test_regimes():
    tol = 1e-3
    assert regime(-0.01, tol) == "vanishing"
    assert regime(0.01, tol) == "exploding"
    assert regime(-1e-3, tol) == "preserved" and regime(5e-4, tol) == "preserved"
    assert regime(None, tol, "overflow") == "exploding"
    assert regime(None, tol, "zero") == "vanishing"


# ---- running ---------------------------------------------------------------------------------


def test_sweep_result_schema(tmp_path):
    result = run_sweep(small_sweep(), tmp_path, progress=False)
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["kind"] == "sweep" and data["schema_version"] == 2
    assert "timing" not in data  # run metadata lives apart, in run.json
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["evaluated"] == 8 and run["reused"] == 0 and run["total_s"] > 0
    assert data["axes"] == {"cell": ["rnn", "gru"], "init.sigma_w": [0.5, 1.0, 2.0, 4.0]}
    assert len(data["points"]) == 8 and len(list((tmp_path / "points").glob("*.json"))) == 8
    first = data["points"][0]
    assert first["params"] == {"cell": "rnn", "init.sigma_w": 0.5}
    assert {"decay_rate", "log10_norm_final", "regime"} <= set(first)
    # sigma_w = 0.5 is deep in the vanishing phase of the tanh RNN (mean-field chi < 0.25).
    assert first["regime"] == "vanishing" and first["decay_rate"] < -0.1
    assert first["predicted_slope"] < 0  # the mean-field slope for the Gaussian tanh RNN
    assert result.evaluated == 8 and result.reused == 0
    assert "8 points" in result.table()


@pytest.fixture(scope="module")
def inline_big(tmp_path_factory) -> SweepResult:
    return run_sweep(big_sweep(), tmp_path_factory.mktemp("inline"), jobs=1, progress=False)


def test_inline_and_process_pool_agree_on_200_points(tmp_path, inline_big):
    pooled = run_sweep(big_sweep(), tmp_path, jobs=2, progress=False)
    assert len(inline_big.points) == 208 and pooled.evaluated == 208
    assert pooled.comparable() == inline_big.comparable()
    counts = inline_big.regime_counts()
    assert counts["vanishing"] > 0 and counts["exploding"] > 0


def test_dask_local_cluster_agrees(tmp_path, inline_big):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=False, dashboard_address=":0") as lc:
        on_dask = run_sweep(big_sweep(), tmp_path, scheduler=lc.scheduler_address, progress=False)
    assert on_dask.evaluated == 208
    assert on_dask.comparable() == inline_big.comparable()


def test_missing_dask_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import now raises ImportError
    with pytest.raises(BackendError, match=r"pip install 'gradflow\[dask\]'"):
        run_sweep(small_sweep(), tmp_path, scheduler="tcp://127.0.0.1:1", progress=False)


class Interrupt:
    """A progress callback that presses Ctrl-C after ``k`` points."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, done: int, total: int) -> None:
        if done >= self.k:
            raise KeyboardInterrupt


@pytest.mark.parametrize("jobs", [1, 2])
def test_resume_after_interruption(tmp_path, jobs, monkeypatch):
    cfg = small_sweep()
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg, tmp_path / "run", jobs=jobs, progress=Interrupt(3))
    kept = len(list((tmp_path / "run" / "points").glob("*.json")))
    assert 3 <= kept < 8  # the points finished before the interruption are kept
    assert not (tmp_path / "run" / "sweep.json").exists()
    calls = []
    evaluate = sweep.evaluate_point
    monkeypatch.setattr(sweep, "evaluate_point", lambda c: calls.append(c) or evaluate(c))
    resumed = run_sweep(cfg, tmp_path / "run", jobs=1, progress=False)
    assert len(calls) == resumed.evaluated == 8 - kept and resumed.reused == kept
    whole = run_sweep(cfg, tmp_path / "whole", jobs=1, progress=False)
    assert resumed.comparable() == whole.comparable()
    again = run_sweep(cfg, tmp_path / "run", jobs=1, progress=False)
    assert again.evaluated == 0 and again.comparable() == whole.comparable()


def test_corrupt_point_files_are_recomputed(tmp_path):
    cfg = small_sweep()
    whole = run_sweep(cfg, tmp_path, progress=False)
    files = sorted((tmp_path / "points").glob("*.json"))
    files[0].write_text('{"kind": "sweep-point", "key": "x"')  # truncated
    rec = json.loads(files[1].read_text())
    rec["key"] = "another"
    files[1].write_text(json.dumps(rec))
    again = run_sweep(cfg, tmp_path, progress=False)
    assert again.evaluated == 2
    assert again.comparable() == whole.comparable()
    assert SweepResult.load(tmp_path / "sweep.json").comparable() == json.loads(
        dumps(whole.comparable())
    )


def test_overflowing_points_are_kept_as_exploding(tmp_path, monkeypatch):
    # A stand-in for the engine's NumericalError on float64 overflow (a ReLU RNN with a large
    # gain), so that this test does not depend on how the engine reaches it.
    real = sweep.run_experiment

    def run(cfg, progress, **kwargs):
        if cfg.init.sigma_w > 10:
            raise NumericalError("the rollout of 'rnn-relu' produced NaN or inf at step 9")
        return real(cfg, progress, **kwargs)

    monkeypatch.setattr(sweep, "run_experiment", run)
    cfg = SweepConfig(BASE.replace(cells=("rnn-relu",)), (("init.sigma_w", (0.5, 30.0)),))
    result = run_sweep(cfg, tmp_path, progress=False)
    low, high = result.points
    assert low.regime == "vanishing" and low.decay_rate < 0
    assert high.regime == "exploding" and high.decay_rate is None
    assert "NaN or inf" in high.error
    assert run_sweep(cfg, tmp_path, progress=False).evaluated == 0  # kept, not retried


# ---- command line ----------------------------------------------------------------------------


def _write(path: Path, axes: str = 'cell = ["rnn", "gru"]\n"init.sigma_w" = [0.5, 2.0]\n') -> Path:
    path.write_text(
        'name = "cli"\ncells = ["rnn"]\nhidden_size = 4\ninput_size = 2\n'
        'steps = 20\nbatch = 1\nseeds = 1\n[init]\nscheme = "gaussian"\n'
        "[sweep.axes]\n" + axes
    )
    return path


def test_cli_sweep(tmp_path):
    cfg = _write(tmp_path / "s.toml")
    res = CliRunner().invoke(
        cli, ["sweep", str(cfg), "--out", str(tmp_path / "out"), "--jobs", "2"]
    )
    assert res.exit_code == 0, res.output
    assert "4 points:" in res.stdout and "init.sigma_w" in res.stdout
    assert (tmp_path / "out" / "sweep.json").is_file()
    again = CliRunner().invoke(cli, ["sweep", str(cfg), "-o", str(tmp_path / "out"), "-q"])
    assert again.exit_code == 0 and again.output == ""


def test_cli_sweep_errors(tmp_path):
    bad = _write(tmp_path / "bad.toml", '"init.sigma_ww" = [1.0]\n')
    res = CliRunner().invoke(cli, ["sweep", str(bad), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert "did you mean 'sweep.axes.init.sigma_w'?" in res.output
    both = CliRunner().invoke(
        cli,
        [
            "sweep",
            str(_write(tmp_path / "s.toml")),
            "--jobs",
            "2",
            "--scheduler",
            "tcp://127.0.0.1:1",
        ],
    )
    assert both.exit_code == 2 and "either --jobs or --scheduler" in both.output


def test_cli_sweep_interrupted(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "run_sweep", interrupted)
    out = tmp_path / "o"
    res = CliRunner().invoke(cli, ["sweep", str(_write(tmp_path / "s.toml")), "-o", str(out)])
    assert res.exit_code == 130
    assert f"interrupted; finished points kept in {out}" in res.output


def test_cell_files_on_the_cell_axis_resolve_against_the_config(tmp_path, monkeypatch):
    # Regression: a relative cell path in a sweep's `cell` axis resolved against the working
    # folder, while `cells = [...]` resolved against the config's folder.
    folder = tmp_path / "cfg"
    (folder / "cells").mkdir(parents=True)
    leaky = Path(__file__).resolve().parents[1] / "examples" / "cells" / "leaky-rnn.toml"
    (folder / "cells" / "leaky.toml").write_text(leaky.read_text())
    (folder / "s.toml").write_text(
        'name = "rel"\nhidden_size = 2\ninput_size = 1\nsteps = 6\nbatch = 1\nseeds = 1\n'
        '[sweep.axes]\ncell = ["rnn", "cells/leaky.toml"]\n'
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder
    cfg = load_sweep_config(folder / "s.toml")
    assert dict(cfg.axes)["cell"] == ("rnn", str(folder / "cells" / "leaky.toml"))


# ---- a scheduler address that cannot work fails fast, with one line (issue 13) ---------------


def _sweep_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``gradflow sweep`` in a real process: a Dask Client that failed to start used to wait
    60 s at exit and print a traceback there, which only a real exit shows. ``timeout`` only
    turns such a hang into a failure."""
    cfg = _write(tmp_path / "s.toml")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-c", "from gradflow.cli import main; main()", "sweep", str(cfg)]
        + ["-o", str(tmp_path / "o"), "-q", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=50,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("address", "message"),
    [
        (
            "not a url",
            "(missing port number in address 'not a url'); give an address like tcp://host:8786",
        ),
        ("tcp://127.0.0.1:PORT", "(Connection refused within 5 s)"),
    ],
)
def test_bad_scheduler_address_is_one_line_at_once(tmp_path, address, message):
    pytest.importorskip("distributed")
    address = address.replace("PORT", str(_free_port()))  # nothing listens there
    res = _sweep_cli(tmp_path, "--scheduler", address)
    assert res.returncode == 1
    assert res.stderr == f"Error: cannot reach the Dask scheduler at {address!r} {message}\n"
    assert not (tmp_path / "o").exists()


def test_a_peer_that_is_no_dask_scheduler_is_one_line(tmp_path):
    # Something listens, but answers with bytes that are no Dask message (an HTTP server,
    # say): the Client's own failure becomes one line, and its exit does not wait.
    pytest.importorskip("distributed")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + b"\xff" * 64)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        res = _sweep_cli(tmp_path, "--scheduler", address)
    finally:
        stop.set()
        thread.join()
        server.close()
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith(f"Error: cannot reach the Dask scheduler at {address!r} (")
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_check_scheduler_leaves_other_transports_to_the_client():
    pytest.importorskip("distributed")
    sweep.check_scheduler("inproc://10.0.0.1/1/1")  # no host:port to try; no error here
    with pytest.raises(BackendError, match="missing port number"):
        sweep.check_scheduler("tcp://host-without-port")


def test_an_interrupted_dask_sweep_closes_its_client(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as lc:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(
                small_sweep(), tmp_path, scheduler=lc.scheduler_address, progress=Interrupt(2)
            )
        deadline = time.monotonic() + 10  # the scheduler hears of the close asynchronously
        while set(lc.scheduler.clients) != {"fire-and-forget"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(lc.scheduler.clients) == {"fire-and-forget"}  # the scheduler's own only
    assert 2 <= len(list((tmp_path / "points").glob("*.json"))) < 8


def test_a_point_skips_the_cell_card_and_keeps_the_same_record(monkeypatch):
    # A point keeps rates only, so it runs without the cell's card (SymPy typesetting, a
    # fifth of the default sweep's CPU time); its record is the one a full run reduces to.
    import gradflow.analysis.run as run

    cfg = next(iter(small_sweep().points()))
    point = small_sweep().point_config(cfg)
    full = run.run_experiment(point, progress=False)  # with the card: the reference
    (summary,) = full.cells.values()
    assert summary.card is not None

    def no_card(*args, **kwargs):
        raise AssertionError("a sweep point typeset a cell card")

    monkeypatch.setattr(run, "cell_card", no_card)
    rec = sweep.evaluate_point(point.to_dict())
    assert rec["status"] == "ok"
    assert rec["decay_rate"] == summary.decay_rate.median  # exact: the same runs
    assert rec["log10_norm_final"] == float(summary.log10_spectral_norm.median[-1])
