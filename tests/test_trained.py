"""Trained checkpoints: they load and match their provenance; their analysis matches autograd.

The checkpoints in gradflow/data/trained/ and the reference numbers in tests/data/trained/
were made by tests/reference/make_trained.py (PyTorch, development time).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file

from gradflow.analysis import checkpoints
from gradflow.analysis.adding import BASELINE_MSE, adding_problem
from gradflow.analysis.trained import (
    CHECKPOINTS,
    TRAINED_DIR,
    analyze_checkpoint,
    analyze_trained,
    checkpoint_config,
    load_checkpoint,
    provenance,
)
from gradflow.errors import UsageError, WeightsError
from gradflow.results import ResultError, TrainedResult, dumps, load_result
from gradflow.results.io import loads

REF = json.loads((Path(__file__).parent / "data" / "trained" / "reference.json").read_text("utf-8"))
STAGES = ("init", "trained")


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_checkpoints_load_and_match_their_provenance(name):
    cfg = checkpoint_config(name)
    prov = provenance()
    assert prov["models"][name]["files"] == cfg["files"]
    assert prov["task"]["generator"] == "gradflow.analysis.adding.adding_problem"
    for stage in STAGES:
        path = TRAINED_DIR / cfg["files"][stage]["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == cfg["files"][stage]["sha256"]
        raw = load_file(str(path))
        assert {k: list(v.shape) for k, v in raw.items()} == cfg["shapes"]
        assert all(v.dtype == np.float32 for v in raw.values())  # as trained
        model = load_checkpoint(name, stage)
        assert len(model.layers) == cfg["num_layers"]
        assert {layer.cell for layer in model.layers} == {cfg["cell"]}
        assert model.layers[0].hidden_size == cfg["hidden_size"]
        assert model.layers[0].input_size == 2
        assert sorted(model.unrelated) == ["head.bias", "head.weight"]
        # exact: float32 -> float64 is lossless, and the loader must not change a value
        w = model.layers[-1].directions[0].params
        top = cfg["num_layers"] - 1
        key = "W_hh" if cfg["cell"] == "rnn" else "W_hi" if cfg["cell"] == "lstm" else "W_hr"
        rows = slice(0, cfg["hidden_size"])
        assert np.array_equal(w[key], raw[f"rnn.weight_hh_l{top}"][rows].astype(np.float64))
    assert len(cfg["training_loss"]) == cfg["training_steps"]
    assert cfg["baseline_mse"] == BASELINE_MSE


def test_package_data_is_small():
    total = sum(p.stat().st_size for p in TRAINED_DIR.iterdir())
    assert total < 1_000_000  # the budget: < 1 MB of package data


def test_trained_gated_networks_beat_the_baseline():
    # what the training script measured on 1000 test sequences (gradflow/data/trained/*.json)
    for name in ("lstm", "gru", "lstm2"):
        assert checkpoint_config(name)["test_mse"] < 0.1 * BASELINE_MSE


def test_a_tampered_checkpoint_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "trained"
    shutil.copytree(TRAINED_DIR, copy)
    path = copy / "rnn_trained.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    monkeypatch.setattr(checkpoints, "TRAINED_DIR", copy)
    with pytest.raises(WeightsError, match="SHA-256"):
        load_checkpoint("rnn", "trained")
    with pytest.raises(UsageError, match="unknown checkpoint"):
        load_checkpoint("lstm9", "init")


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("stage", STAGES)
def test_analysis_matches_torch_autograd(name, stage):
    inp = REF["inputs"]
    x, _ = adding_problem(inp["steps"], inp["batch"], inp["seed"])
    views, stack = analyze_checkpoint(name, stage, x)
    assert stack is None
    got = views["joint"][REF["lags"]].T  # (B, lags)
    want = np.array(REF["models"][name][stage]["log10_spectral_norm"])
    # torch.autograd.functional.jacobian of the k-step map, float64 from the stored float32
    # weights (tests/reference/make_trained.py): 1e-8 in log10, the bar
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)


def test_adding_problem_baseline_is_one_sixth():
    _, y = adding_problem(4, 100_000, seed=3)
    # E[(y - 1)^2] = 1/6, sd of the sample mean sqrt((1/15 - 1/36) / N) = 6.2e-4: 5 sd
    assert abs(np.mean((y - 1.0) ** 2) - 1 / 6) < 3.2e-3


@settings(max_examples=30, deadline=None)
@given(steps=st.integers(2, 60), batch=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_adding_problem_marks_one_step_in_each_half(steps, batch, seed):
    x, y = adding_problem(steps, batch, seed)
    marks = x[:, :, 1]
    half = steps // 2
    assert np.array_equal(marks[:half].sum(axis=0), np.ones(batch))
    assert np.array_equal(marks[half:].sum(axis=0), np.ones(batch))
    assert np.all((x[:, :, 0] >= 0) & (x[:, :, 0] < 1))
    np.testing.assert_allclose(y, (x[:, :, 0] * marks).sum(axis=0), rtol=1e-15)


def test_adding_problem_refuses_bad_sizes():
    with pytest.raises(UsageError, match="steps >= 2"):
        adding_problem(1, 3, 0)


@pytest.fixture(scope="module")
def small() -> TrainedResult:
    return analyze_trained(("rnn", "lstm2"), steps=20, batch=2, seed=1, lags=(5, 10, 20))


def test_trained_result_round_trips(small):
    back = load_result(loads(dumps(small.to_dict())))
    assert isinstance(back, TrainedResult)
    assert back.comparable() == small.comparable()
    assert back.network("lstm2").stack["trained"].layer_names == ["l0", "l1"]
    assert set(back.network("lstm2").views) == {"joint", "l0", "l1"}
    assert set(back.network("rnn").views) == {"joint"}


def test_trained_result_summaries_are_the_analysis(small):
    net = small.network("lstm2")
    stack = net.stack["trained"]
    assert stack.layer_log10_spectral_norm is not None
    np.testing.assert_array_equal(
        net.views["l1"]["trained"].norms.median, np.median(stack.layer_log10_spectral_norm[1], 1)
    )
    rate = net.views["joint"]["init"].rate
    assert rate.window == (2, 20) and rate.units == "decades per step"
    assert math.isfinite(rate.median)


def test_malformed_trained_result_is_one_line(small):
    data = small.to_dict()
    data["networks"][0]["views"]["joint"]["later"] = data["networks"][0]["views"]["joint"]["init"]
    with pytest.raises(ResultError, match=r"networks\.0\.views\.joint: unknown stage 'later'"):
        TrainedResult.from_dict(data)


def test_lags_beyond_the_sequence_are_refused():
    with pytest.raises(UsageError, match="lags must lie in 1..20"):
        analyze_trained(("rnn",), steps=20, lags=(10, 50))


def test_cli_plot_draws_a_trained_result(small, tmp_path):
    from click.testing import CliRunner

    from gradflow.cli import cli

    path = tmp_path / "trained.json"
    small.save(path)
    out = tmp_path / "figs"
    r = CliRunner().invoke(cli, ["plot", str(path), "--out", str(out), "--format", "svg"])
    assert r.exit_code == 0, r.output
    # the report's "Trained networks" figures, under the same stems (lstm2 is a stack)
    stems = ["trained_norms", "trained_stack", "trained_training"]
    assert sorted(p.name for p in out.iterdir()) == [f"{s}.svg" for s in stems]
    assert r.output.splitlines() == [str(out / f"{s}.svg") for s in sorted(stems, key=_order)]
    svg = (out / "trained_norms.svg").read_text(encoding="utf-8")
    assert "initialisation" in svg and "trained" in svg  # both stages, in the legend
    # same bytes twice (deterministic files)
    again = tmp_path / "again"
    CliRunner().invoke(cli, ["plot", str(path), "--out", str(again), "--format", "svg"])
    for s in stems:
        assert (again / f"{s}.svg").read_bytes() == (out / f"{s}.svg").read_bytes()


def _order(stem: str) -> int:
    return ["trained_norms", "trained_training", "trained_stack"].index(stem)
