"""Typed results: validation on the way in, kind dispatch, schema versions, the atomic writer.

Reference data: the synthetic results of ``tests/baseline/make_data.py`` (schema version 2,
and the same experiment in the version-1 shape).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradflow.atomic import atomic_write, check_target
from gradflow.errors import OutputError, UsageError
from gradflow.results import (
    AnalysisResult,
    Band,
    ClaimsResult,
    ExperimentResult,
    ResultError,
    SweepResult,
    dumps,
    load_result,
    run_path,
)
from gradflow.results.base import Where

DATA = Path(__file__).parent / "baseline" / "data"


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("experiment", ExperimentResult),
        ("experiment_v1", ExperimentResult),
        ("sweep", SweepResult),
        ("claims", ClaimsResult),
        ("analysis", AnalysisResult),
    ],
)
def test_load_result_dispatches_on_kind(name, cls):
    assert type(load_result(DATA / f"{name}.json")) is cls


def test_version_1_experiment_reads_as_version_2():
    old = load_result(DATA / "experiment_v1.json")
    new = load_result(DATA / "experiment.json")
    assert isinstance(old, ExperimentResult) and isinstance(new, ExperimentResult)
    assert list(old.cells) == list(new.cells) == ["rnn", "lstm", "gru"]  # the config's order
    for name, cell in new.cells.items():
        was = old.cells[name]
        # Same numbers: the version-1 q10/median/q90 are the version-2 low/median/high.
        for key in ("log10_spectral_norm", "log10_frobenius_norm"):
            a, b = getattr(was, key), getattr(cell, key)
            assert a.levels == b.levels == (0.1, 0.5, 0.9)
            for part in ("low", "median", "high"):
                np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
        assert was.decay_rate.low == cell.decay_rate.low
        assert was.card is None and cell.card is not None  # version 1 had no cards
    assert old.run == {"total_s": 1.5}  # the timings of a version-1 file move to .run


def test_round_trip_is_byte_identical_and_keeps_order():
    text = (DATA / "experiment.json").read_text("utf-8")
    res = ExperimentResult.from_dict(json.loads(text))
    again = ExperimentResult.from_dict(json.loads(dumps(res.to_dict())))
    assert dumps(again.to_dict()) == dumps(res.to_dict())
    assert list(json.loads(dumps(res.to_dict()))["cells"]) == ["rnn", "lstm", "gru"]


def test_run_metadata_is_never_data(tmp_path):
    res = ExperimentResult.from_dict(json.loads((DATA / "experiment.json").read_text()))
    timed = ExperimentResult.from_dict(res.to_dict(), run={"total_s": 3.0})
    assert dumps(timed.to_dict()) == dumps(res.to_dict())
    timed.save(tmp_path / "x.json")
    timed.save_run(run_path(tmp_path / "x.json"))
    assert json.loads((tmp_path / "x.run.json").read_text())["total_s"] == 3.0
    assert "total_s" not in (tmp_path / "x.json").read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"kind": "sweep", "n": ' + "7" * 100_000 + "}", "not a usable JSON value"),
        ("{", "not valid JSON"),
        ('{"kind": "banana"}', "unknown result kind 'banana'; expected one of analysis, claims"),
        ("[1, 2]", "not a gradflow result"),
        ('{"kind": "experiment", "schema_version": 99}', "written by a newer gradflow"),
        ('{"kind": "sweep", "schema_version": 0}', "no longer read; run it again"),
        ('{"kind": "experiment", "cells": {}}', "missing key 'cells'"[:0] + "cells: no cells"),
        (
            '{"kind": "sweep", "axes": {"a": [1]}, "points": [{"params": {"a": 1}, '
            '"regime": "boiling"}]}',
            "points.0.regime: expected one of vanishing, preserved, exploding, got 'boiling'",
        ),
        ('{"kind": "analysis", "steps": "ten"}', "steps: expected an integer, got str"),
    ],
)
def test_malformed_results_are_one_line(tmp_path, text, message):
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_result(path)
    line = str(info.value)
    assert message in line and "\n" not in line and line.startswith(str(path))


def test_hand_edited_band_names_the_field():
    data = json.loads((DATA / "experiment.json").read_text())
    data["cells"]["lstm"]["paths"]["additive"]["levels"] = [0.1, 0.5]
    with pytest.raises(ResultError, match=r"cells\.lstm\.paths\.additive\.levels: expected"):
        ExperimentResult.from_dict(data)
    data = json.loads((DATA / "analysis.json").read_text())
    data["log10_spectral_norm"] = data["log10_spectral_norm"][:-1]
    with pytest.raises(ResultError, match=r"log10_spectral_norm: expected shape \(61, 6\)"):
        AnalysisResult.from_dict(data)


def test_result_files_must_be_regular(tmp_path):
    with pytest.raises(UsageError, match="not a regular file"):
        load_result("/dev/zero")
    os.mkfifo(tmp_path / "f.json")
    with pytest.raises(UsageError, match="not a regular file"):  # never blocks on a FIFO
        load_result(tmp_path / "f.json")


@settings(max_examples=50, deadline=None)
@given(
    values=arrays(np.float64, (5, 7), elements=st.floats(-300, 300)),
    lo=st.floats(0.01, 0.5),
    hi=st.floats(0.5, 0.99),
)
def test_band_knows_its_levels_and_round_trips(values, lo, hi):
    band = Band.of(values, (lo, hi))
    assert band.levels == (lo, 0.5, hi)
    # Reference: numpy.quantile with linear interpolation, the documented method.
    np.testing.assert_array_equal(band.low, np.quantile(values, lo, axis=1))
    np.testing.assert_array_equal(band.high, np.quantile(values, hi, axis=1))
    again = Band.from_dict(json.loads(dumps(band.to_dict())), Where("test"))
    assert again.levels == band.levels
    for part in ("low", "median", "high"):
        np.testing.assert_array_equal(getattr(again, part), getattr(band, part))


# ---- the atomic writer ---------------------------------------------------------------------------


def test_atomic_writer_refusals(tmp_path):
    src = tmp_path / "in.npy"
    src.write_bytes(b"data")
    with pytest.raises(OutputError, match="is also an input of this run"):
        atomic_write(src, "x", inputs=[src])
    link = tmp_path / "link.npy"
    link.symlink_to(src)
    with pytest.raises(OutputError, match="is also an input of this run"):
        atomic_write(link, "x", inputs=[src])  # the same file under another name
    assert src.read_bytes() == b"data"
    with pytest.raises(OutputError, match="is a device"):
        check_target("/dev/null")
    with pytest.raises(OutputError, match="is a folder"):
        check_target(tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        atomic_write(tmp_path / "no" / "dir" / "x.json", "x")
    assert not (tmp_path / "no").exists()
    atomic_write(tmp_path / "yes" / "dir" / "x.json", "x", parents=True)  # asked for
    assert (tmp_path / "yes" / "dir" / "x.json").read_text() == "x"
    assert not list(tmp_path.rglob(".*.tmp"))


def test_full_disk_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    import errno

    target = tmp_path / "x.json"
    target.write_text("old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError) as info:
        atomic_write(target, "new")
    assert str(info.value) == f"{target}: cannot write (no space left on the device)"
    assert target.read_text() == "old" and not list(tmp_path.glob(".*.tmp"))


def test_version_1_sweep_points_keep_their_band():
    data = {
        "kind": "sweep",
        "schema_version": 1,
        "axes": {"sigma_w": [1.0]},
        "timing": {"total_s": 2.0},
        "points": [
            {
                "params": {"sigma_w": 1.0},
                "decay_rate": -0.1,
                "log10_norm_final": -3.0,
                "regime": "vanishing",
                "decay_rate_q5": -0.2,
                "decay_rate_q95": -0.05,
            }  # fmt: skip
        ],
    }
    (p,) = SweepResult.from_dict(data).points
    assert (p.decay_rate_low, p.decay_rate_high) == (-0.2, -0.05)
    assert SweepResult.from_dict(data).run == {"total_s": 2.0}
