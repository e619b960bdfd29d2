"""The BLAS thread policy (gradflow.threads): what compute regions run with, and restoring."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from gradflow import spectral, threads
from gradflow.cells import get_cell
from gradflow.engine import analyze
from gradflow.errors import UsageError


def _blas_threads() -> set[int]:
    return {int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"}


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    for var in threads.BLAS_VARS:
        monkeypatch.delenv(var, raising=False)
    threads.set_threads(None)
    threads.set_worker_share(None)
    yield
    threads.set_threads(None)
    threads.set_worker_share(None)


def test_policy_order_explicit_then_process_then_environment_then_size(monkeypatch):
    small, large = threads.PARALLEL_FROM - 1, threads.PARALLEL_FROM
    assert threads.blas_threads(small) == 1
    assert threads.blas_threads(large) == threads.cores()
    monkeypatch.setenv(threads.ENV, "3")
    assert threads.blas_threads(small) == 3 and threads.blas_threads(large) == 3
    threads.set_threads(2)
    assert threads.blas_threads(large) == 2
    assert threads.blas_threads(large, threads=5) == 5
    threads.set_threads(None)
    assert threads.blas_threads(small) == 3


@pytest.mark.parametrize("bad", ["zero", "0", "-2", "1.5"])
def test_bad_environment_value_is_one_line(monkeypatch, bad):
    monkeypatch.setenv(threads.ENV, bad)
    with pytest.raises(UsageError, match="GRADFLOW_THREADS must be a whole number"):
        threads.blas_threads(8)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(UsageError, match="threads must be a whole number"):
        threads.set_threads(bad)
    with pytest.raises(UsageError, match="threads must be a whole number"):
        threads.blas_threads(8, threads=bad)


def test_a_blas_thread_variable_caps_the_size_rule(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert threads.blas_threads(threads.PARALLEL_FROM) == 1
    assert threads.blas_threads(threads.PARALLEL_FROM, threads=2) == 2  # explicit still wins
    monkeypatch.setenv(threads.ENV, "2")
    assert threads.blas_threads(8) == 2  # and so does GRADFLOW_THREADS


def test_threads_per_worker_shares_the_cores():
    c = threads.cores()
    assert threads.threads_per_worker(1) == c
    assert threads.threads_per_worker(c) == 1
    assert threads.threads_per_worker(4 * c) == 1
    assert threads.threads_per_worker(2) * 2 <= max(2, c)


def _record_inside_analyze(monkeypatch, **kwargs):
    seen: list[set[int]] = []
    real = spectral.Spectral.step

    def spy(self, *args, **kw):
        seen.append(_blas_threads())
        return real(self, *args, **kw)

    monkeypatch.setattr(spectral.Spectral, "step", spy)
    rng = np.random.default_rng(0)
    cell = get_cell("rnn")
    params = {p.name: rng.standard_normal(p.numeric_shape(4, 2)) / 2 for p in cell.parameters}
    # the NumPy reference path: its estimator's steps are what the spy sees
    res = analyze(cell, params, rng.standard_normal((5, 2, 2)), compiled=False, **kwargs)
    return seen, res


@pytest.mark.parametrize("outside", [1, 2])
def test_compute_regions_run_with_the_policy_and_restore_after(monkeypatch, outside):
    if not _blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library in this NumPy")
    two = min(2, threads.cores())
    with threadpool_limits(limits=outside, user_api="blas"):
        before = _blas_threads()
        # Default policy at n = 4: one thread inside, whatever the caller had.
        seen, res = _record_inside_analyze(monkeypatch)
        assert seen and all(s == {1} for s in seen)
        assert res.meta["threads"] == 1
        assert _blas_threads() == before
        # threads= overrides the policy for this call.
        seen, res = _record_inside_analyze(monkeypatch, threads=two)
        assert all(s == {two} for s in seen) and res.meta["threads"] == two
        assert _blas_threads() == before
        # GRADFLOW_THREADS overrides the size rule.
        monkeypatch.setenv(threads.ENV, str(two))
        seen, _ = _record_inside_analyze(monkeypatch)
        assert all(s == {two} for s in seen)
        assert _blas_threads() == before


def test_setting_is_restored_when_the_region_raises():
    if not _blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library in this NumPy")
    before = _blas_threads()
    with pytest.raises(RuntimeError), threads.compute_region(1):
        assert _blas_threads() == {1}
        raise RuntimeError("inside")
    assert _blas_threads() == before


def test_compute_region_looks_again_after_an_import(monkeypatch):
    # A BLAS loaded after the first region (SciPy's, which numba's kernels call) must be
    # limited too: the controller is rebuilt whenever a module was imported since.
    with threads.compute_region(1):
        first = threads._controller
    with threads.compute_region(1):
        assert threads._controller is first  # nothing imported: the same controller
    monkeypatch.setitem(sys.modules, "gradflow_test_fake_module", sys)
    with threads.compute_region(1):
        assert threads._controller is not first


def test_a_workers_share_caps_the_policy_but_keeps_the_size_rule(monkeypatch):
    # A pool worker's share of the cores is a cap, not a count: small states keep one thread
    # (an override would have given every worker its whole share), large ones get the share.
    threads.set_worker_share(1)
    assert threads.blas_threads(threads.PARALLEL_FROM) == 1
    assert threads.blas_threads(threads.PARALLEL_FROM, threads=2) == 2  # explicit still wins
    threads.set_worker_share(2)
    assert threads.blas_threads(8) == 1
    assert threads.blas_threads(threads.PARALLEL_FROM) == min(2, threads.cores())
    monkeypatch.setenv(threads.ENV, "5")
    assert threads.blas_threads(8) == 2 and threads.batch_threads(16) == 2
    threads.set_threads(4)
    assert threads.blas_threads(8) == 2
    threads.set_worker_share(None)
    assert threads.blas_threads(8) == 4


def _spy_outside_analyze(monkeypatch) -> list[set[int]]:
    """Record the BLAS thread counts in force where a run summarises a cell: after its runs,
    outside every compute region of the engine."""
    import gradflow.analysis.run as run

    seen: list[set[int]] = []
    real = run.summarise_cell

    def spy(*args, **kw):
        seen.append(_blas_threads())
        return real(*args, **kw)

    monkeypatch.setattr(run, "summarise_cell", spy)
    return seen


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_run_and_sweep_hold_the_policy_for_the_whole_run(monkeypatch, tmp_path, command):
    # `gradflow run` and a sweep (inline) limit BLAS for the whole run, as the report does,
    # not only inside analyze: the caller's 2 threads become the policy's 1 (n = 3, far below
    # PARALLEL_FROM) where the run summarises, and come back after.
    from click.testing import CliRunner

    from gradflow.cli import cli

    if not _blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library in this NumPy")
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        'name = "tiny"\ncells = ["rnn"]\nhidden_size = 3\ninput_size = 2\nsteps = 6\n'
        "batch = 1\nseeds = 1\n"
        + ("[sweep.axes]\nhidden_size = [3, 4]\n" if command == "sweep" else "")
    )
    seen = _spy_outside_analyze(monkeypatch)
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        if before != {2}:
            pytest.skip("this BLAS cannot be set to two threads")
        args = [
            command,
            str(cfg),
            "-q",
            "-o",
            str(tmp_path / ("out" if command == "sweep" else "o.json")),
        ]
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
        assert _blas_threads() == before
    assert len(seen) == (2 if command == "sweep" else 1)
    assert all(s == {1} for s in seen)
