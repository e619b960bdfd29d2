"""Experiment configs (validation, TOML), run_experiment (schema, reproducibility, seeds), and
the ``gradflow run`` command."""

from __future__ import annotations

import json
import os
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gradflow.analysis.decay import decay_rate
from gradflow.analysis.experiment import (
    ExperimentConfig,
    ExperimentResult,
    InputsConfig,
    Quantities,
    band_names,
    cell_init,
    load_config,
    run_cell,
    run_decay_rates,
    run_experiment,
    seed_sequence,
)
from gradflow.cells import get_cell
from gradflow.cli import cli
from gradflow.engine import analyze
from gradflow.errors import ConfigError
from gradflow.initialisers import Init, initialise, make_inputs
from gradflow.results import dumps

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "experiments"

SCHEMA_KEYS = {
    "cell",
    "hidden_size",
    "input_size",
    "steps",
    "batch",
    "runs",
    "lags",
    "quantiles",
    "log10_spectral_norm",
    "log10_frobenius_norm",
    "log10_spectral_norm_hidden",
    "paths",
    "log10_singular_values",
    "lyapunov_exponents",
    "decay_rate",
    "pascanu",
    "meanfield",
    "card",
}


def tiny(**changes) -> ExperimentConfig:
    base = ExperimentConfig(
        name="tiny",
        cells=("rnn", "lstm"),
        hidden_size=4,
        input_size=3,
        steps=24,
        batch=2,
        seeds=(0, 1),
    )
    return base.replace(**changes)


# ---- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"hiden_size": 8},
            "unknown key 'hiden_size' in the experiment config; did you mean 'hidden_size'?",
        ),
        (
            {"init": {"sigma_ww": 1.0}},
            "unknown key 'init.sigma_ww' in the experiment config; did you mean 'init.sigma_w'?",
        ),
        ({"inputs": {"scael": 1.0}}, "did you mean 'inputs.scale'?"),
        ({"quantities": {"path": True}}, "did you mean 'quantities.paths'?"),
        ({"zzz": 1}, "unknown key 'zzz' in the experiment config; valid keys: name, cells,"),
    ],
)
def test_unknown_keys_name_the_nearest_valid_key(data, message):
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict(data)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hidden_size": -3}, "hidden_size must be an integer in [1, 1000000], got -3"),
        ({"steps": 0}, "steps must be an integer in [1, 1000000], got 0"),
        ({"batch": 2.5}, "batch must be an integer in [1, 1000000], got 2.5"),
        ({"input_size": True}, "input_size must be an integer"),
        (
            {"init": {"sigma_w": -1.0}},
            "init.sigma_w must be a finite number in [0, 1e+06], got -1.0",
        ),
        ({"init": {"sigma_b": float("nan")}}, "init.sigma_b must be a finite number"),
        (
            {"init": {"scheme": "gausian"}},
            "init.scheme must be one of torch, gaussian, orthogonal, "
            "identity, paper, got 'gausian'; did you mean 'gaussian'?",
        ),
        ({"init": {"chrono_tmax": 2.0}}, "init.chrono_tmax must be a finite number in (2, 1e+12]"),
        ({"quantiles": [0.1, 1.5]}, "quantiles[1] must be a finite number in [0.5, 1], got 1.5"),
        ({"quantiles": [0.0, 0.9]}, "quantiles[0] must be a finite number in (0, 0.5], got 0.0"),
        ({"quantiles": [0.1, 1.0]}, "quantiles[1] must lie in [0.5, 1), got 1.0"),
        ({"cells": ["lstn"]}, "unknown cell 'lstn'; did you mean 'lstm'?"),
        ({"cells": []}, "cells must name at least one cell"),
        ({"cells": ["rnn", "rnn"]}, "cells lists a cell twice"),
        ({"cells": ["missing.toml"]}, "cell file 'missing.toml' not found"),
        ({"seeds": 0}, "seeds (a count) must be an integer in [1, 100000], got 0"),
        (
            {"seeds": [1, -2]},
            "seeds entries must be an integer in [0, 9223372036854775807], got -2",
        ),
        ({"seeds": [3, 3]}, "seeds must be a non-empty list of distinct integers"),
        ({"inputs": {"kind": "file"}}, "inputs.kind = 'file' needs inputs.path"),
        ({"inputs": {"scale": -1}}, "inputs.scale must be a finite number in [0, 1e+06]"),
        (
            {"quantities": {"gradient": "first"}},
            "quantities.gradient must be one of none, last, sum, got 'first'",
        ),
        (
            {"quantities": {"singular_lags": [500]}},
            "quantities.singular_lags must lie in [1, steps = 300], got 500",
        ),
        ({"quantities": {"lyapunov": 64}}, "quantities.lyapunov must lie in [0, hidden_size = 32]"),
        ({"lag_window": [10, 400]}, "lag_window[1] must be an integer in [11, 300], got 400"),
        ({"lag_window": [5]}, "lag_window must be [k0, k1]"),
        ({"backend": "jax"}, "backend must be one of numpy, cupy, got 'jax'"),
        ({"init": 3}, "init must be a table, got 3"),
    ],
)
def test_out_of_range_values_name_the_allowed_range(data, message):
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict(data)
    assert message in str(info.value)


def test_defaults_and_seed_count():
    cfg = ExperimentConfig.from_dict({"seeds": 3, "lag_window": [5, 50], "steps": 50})
    assert cfg.seeds == (0, 1, 2)
    assert cfg.window == (5, 50)
    assert ExperimentConfig().window == (30, 300)  # decay.default_window: (max(1, T // 10), T)


def test_dict_round_trip():
    cfg = tiny(
        init=Init(scheme="gaussian", sigma_w=0.9, forget_bias=1.0),
        quantities=Quantities.from_dict({"paths": True, "singular_lags": [10, 5], "lyapunov": 2}),
        lag_window=(2, 20),
        quantiles=(0.25, 0.75),
    )
    again = ExperimentConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert again.quantities.singular_lags == (5, 10)


def test_toml_loading_and_relative_paths(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((30, 2, 3)))
    (tmp_path / "exp.toml").write_text(
        'name = "file-inputs"\ncells = ["gru"]\nhidden_size = 4\ninput_size = 3\nsteps = 30\n'
        'batch = 2\nseeds = [5]\n[inputs]\nkind = "file"\npath = "x.npy"\n'
    )
    cfg = load_config(tmp_path / "exp.toml")
    assert Path(cfg.inputs.path) == tmp_path / "x.npy"
    assert cfg.seeds == (5,)
    (tmp_path / "bad.toml").write_text("cells = [\n")
    with pytest.raises(ConfigError, match="not a valid TOML file"):
        load_config(tmp_path / "bad.toml")
    (tmp_path / "sweep.toml").write_text('[sweep.axes]\ncell = ["rnn"]\n')
    with pytest.raises(ConfigError, match="gradflow sweep"):
        load_config(tmp_path / "sweep.toml")
    (tmp_path / "typo.toml").write_text("stesp = 3\n")
    with pytest.raises(ConfigError, match=r"typo.toml: unknown key 'stesp'.*'steps'"):
        load_config(tmp_path / "typo.toml")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize("name", ["rnn-vs-lstm.toml", "meanfield.toml"])
def test_examples_load(name):
    assert load_config(EXAMPLES / name).name


def test_cell_files_resolve_against_the_config_file(tmp_path):
    (tmp_path / "cells").mkdir()
    source = EXAMPLES.parent / "cells" / "leaky-rnn.toml"
    (tmp_path / "cells" / "leaky.toml").write_text(source.read_text())
    (tmp_path / "exp.toml").write_text(
        'cells = ["rnn", "cells/leaky.toml"]\nhidden_size = 4\nsteps = 20\nbatch = 1\nseeds = 1\n'
    )
    result = run_experiment(load_config(tmp_path / "exp.toml"), progress=False)
    assert set(result.cells) == {"rnn", "leaky-rnn"}  # summaries are keyed by the cell's name


def test_cell_init_drops_options_a_cell_has_no_gate_for():
    init = Init(forget_bias=1.0, update_bias=2.0)
    assert cell_init(init, get_cell("rnn")) == Init()
    assert cell_init(init, get_cell("lstm")) == Init(forget_bias=1.0)
    assert cell_init(init, get_cell("gru")) == Init(update_bias=2.0)


# ---- running ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_result() -> ExperimentResult:
    cfg = tiny(
        cells=("rnn", "lstm"),
        init=Init(forget_bias=1.0),
        quantities=Quantities(paths=True, singular_lags=(1, 10), lyapunov=2, gradient="last"),
    )
    return run_experiment(cfg, progress=False)


def test_summary_schema(full_result):
    data = json.loads(dumps(full_result.to_dict()))  # strict JSON
    assert data["kind"] == "experiment" and data["schema_version"] == 4
    assert data["seeds"] == [0, 1] and "timing" not in data  # timings live apart
    assert set(full_result.run) == {"total_s"}
    assert list(data["cells"]) == ["rnn", "lstm"]  # the order the cells ran in
    assert data["config"]["cells"] == ["rnn", "lstm"]
    rnn = data["cells"]["rnn"]
    assert SCHEMA_KEYS <= set(rnn)
    assert rnn["runs"] == 4 and rnn["lags"] == list(range(25))
    assert rnn["quantiles"] == [0.1, 0.9]
    assert set(rnn["log10_spectral_norm"]) == {"levels", "low", "median", "high"}
    assert rnn["log10_spectral_norm"]["levels"] == [0.1, 0.5, 0.9]
    assert len(rnn["log10_frobenius_norm"]["median"]) == 25
    assert set(data["cells"]["lstm"]["paths"]) == {"additive", "multiplicative"}
    assert set(rnn["paths"]) == {"multiplicative"}  # the Elman cell has no weight-free path
    assert np.asarray(rnn["log10_singular_values"]["10"]).shape == (2, 4)  # 1 sequence a seed
    assert np.asarray(rnn["singular_values_certified"]["10"]).shape == (2, 4)
    assert np.asarray(data["cells"]["lstm"]["lyapunov_exponents"]).shape == (4, 2)
    assert set(rnn["decay_rate"]) == {"median", "low", "high", "levels", "window", "units", "runs"}
    assert rnn["decay_rate"]["window"] == [2, 24]
    assert rnn["init"]["forget_bias"] is None  # not applied: the RNN has no forget gate
    assert data["cells"]["lstm"]["init"]["forget_bias"] == 1.0
    assert len(rnn["log10_gradient_norm"]["median"]) == 25
    # Pascanu's bound applies to the Elman cell only; mean field needs Gaussian weights.
    assert rnn["pascanu"]["holds"] is True and len(rnn["pascanu"]["log10_bound"]) == 25
    assert data["cells"]["lstm"]["pascanu"] is None
    assert rnn["meanfield"] is None


def test_bands_are_quantiles_of_the_individual_runs():
    cfg = tiny(cells=("gru",))
    result = run_experiment(cfg, progress=False)
    runs = np.concatenate(
        [run_cell(cfg, get_cell("gru"), s)[0].log10_spectral_norm for s in cfg.seeds], axis=1
    )
    band = result.cells["gru"].log10_spectral_norm
    # Reference: numpy.quantile (linear interpolation) over the 2 seeds x 2 sequences.
    np.testing.assert_allclose(band.low, np.quantile(runs, 0.1, axis=1), rtol=0, atol=0)
    np.testing.assert_allclose(band.median, np.median(runs, axis=1), rtol=0, atol=1e-12)
    rates = decay_rate(runs, cfg.window)
    assert result.cells["gru"].decay_rate.median == pytest.approx(np.median(rates), abs=1e-12)


def test_reproducible_apart_from_timing(full_result):
    again = run_experiment(ExperimentConfig.from_dict(full_result.config), progress=False)
    assert again.comparable() == full_result.comparable()
    assert dumps(again.to_dict()) == dumps(full_result.to_dict())  # the same bytes
    assert "timing" not in again.comparable()


def test_cells_run_on_worker_processes_give_the_same_bytes(full_result):
    # The report runs the cells as tasks on its process pool: the result must not depend on
    # where a cell ran (every draw is seeded from the config; one BLAS thread per worker).
    from concurrent.futures import ProcessPoolExecutor

    from gradflow.analysis.sweep import init_worker, worker_context

    cfg = ExperimentConfig.from_dict(full_result.config)
    with ProcessPoolExecutor(2, mp_context=worker_context(), initializer=init_worker,
                             initargs=(1, False)) as pool:  # fmt: skip
        pooled = run_experiment(cfg, progress=False, executor=pool)
    assert list(pooled.cells) == list(full_result.cells)  # the config's order
    assert dumps(pooled.to_dict()) == dumps(full_result.to_dict())


def test_runs_do_not_depend_on_the_order_of_cells_or_seeds():
    a = run_experiment(tiny(cells=("rnn", "gru"), seeds=(3, 7)), progress=False).cells
    b = run_experiment(tiny(cells=("gru", "rnn"), seeds=(7, 3)), progress=False).cells
    for cell in ("rnn", "gru"):
        assert dumps(a[cell].to_dict()) == dumps(b[cell].to_dict())


def test_seed_derivation_is_documented_one():
    cfg = tiny(cells=("gru",), seeds=(11,))
    cell = get_cell("gru")
    ss = np.random.SeedSequence([11, zlib.crc32(b"gru")])
    assert seed_sequence(11, "gru").entropy == ss.entropy
    params = initialise(cell, 4, 3, Init(), np.random.default_rng(ss))
    x = make_inputs(
        "gaussian",
        24,
        2,
        3,
        np.random.default_rng(np.random.SeedSequence([11, zlib.crc32(b"inputs")])),
    )
    expected = analyze(cell, params, x).log10_spectral_norm
    np.testing.assert_array_equal(run_cell(cfg, cell, 11)[0].log10_spectral_norm, expected)


def test_meanfield_entry_for_the_gaussian_tanh_rnn():
    cfg = tiny(
        cells=("rnn",),
        init=Init(scheme="gaussian", sigma_w=0.8),
        inputs=InputsConfig("constant", value=0.5),
    )
    mf = run_experiment(cfg, progress=False).cells["rnn"].meanfield.to_dict()
    from gradflow.analysis.meanfield import tanh_fixed_point

    q_star, chi = tanh_fixed_point(0.8, 1.0, 0.0, 0.25)  # constant 0.5: second moment 0.25
    assert mf == {
        "predicted_slope": pytest.approx(0.5 * np.log10(chi), abs=1e-12),
        "chi": chi,
        "q_star": q_star,
    }


def test_zero_products_give_minus_infinity_rates():
    norms = np.array([[0.0, 0.0], [-1.0, -0.5], [-2.0, -np.inf], [-3.0, -np.inf]])
    rates = run_decay_rates(norms, (1, 3))
    assert rates[0] == pytest.approx(-1.0, abs=1e-12)  # exact line of slope -1
    assert rates[1] == -np.inf


# The engine's subspace iteration divides 0 by 0 once a product is exactly zero (numpy warns,
# the engine's result is still exact); remove this filter when the engine avoids it.
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
def test_zero_products_in_a_real_run():
    # IndRNN, h = relu(W x + u * h + b), with PyTorch's init: u ~ U(-1/2, 1/2) at n = 4, so
    # ds_t/ds_{t-1} = diag(relu' * u) and every unit is inactive at some step within 300.
    s = run_experiment(tiny(cells=("indrnn",), steps=300), progress=False).cells["indrnn"]
    data = json.loads(dumps(s.to_dict()))  # strict JSON: -inf becomes null
    assert s.log10_spectral_norm.median[-1] == -np.inf
    assert s.decay_rate.median is None and data["decay_rate"]["median"] is None


def test_custom_quantiles_name_their_keys():
    assert band_names((0.1, 0.9)) == ("q10", "median", "q90")
    assert band_names((0.05, 0.95)) == ("q5", "median", "q95")
    s = run_experiment(tiny(cells=("rnn",), quantiles=(0.25, 0.75)), progress=False).cells
    assert s["rnn"].log10_spectral_norm.levels == (0.25, 0.5, 0.75)
    assert s["rnn"].decay_rate.levels == (0.25, 0.5, 0.75)
    assert s["rnn"].quantiles == (0.25, 0.75)


def test_progress_callable_and_save_load(tmp_path):
    calls = []
    result = run_experiment(tiny(), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    result.save(tmp_path / "r.json")
    loaded = ExperimentResult.load(tmp_path / "r.json")
    assert loaded.comparable() == json.loads(dumps(result.comparable()))
    assert "rnn" in loaded.table() and "decades per step" in loaded.table()


# ---- command line ----------------------------------------------------------------------------


def _write_config(path: Path, text: str = "") -> Path:
    path.write_text(
        'name = "cli"\ncells = ["rnn", "gru"]\nhidden_size = 4\ninput_size = 2\n'
        "steps = 20\nbatch = 1\nseeds = 1\n" + text
    )
    return path


def test_cli_run(tmp_path):
    cfg = _write_config(tmp_path / "exp.toml")
    out = tmp_path / "res.json"
    res = CliRunner().invoke(cli, ["run", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "rnn" in res.stdout and "gru" in res.stdout
    assert ExperimentResult.load(out).cells.keys() == {"rnn", "gru"}
    quiet = CliRunner().invoke(cli, ["run", str(cfg), "--out", str(out), "--quiet"])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_cli_run_bad_config_is_one_line_exit_2(tmp_path):
    cfg = _write_config(tmp_path / "bad.toml", "[init]\nsigma_w = -1\n")
    res = CliRunner().invoke(cli, ["run", str(cfg), "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1
    assert "init.sigma_w must be a finite number in [0, 1e+06], got -1" in res.output
    assert not (tmp_path / "r.json").exists()


def test_cli_run_interrupted(tmp_path, monkeypatch):
    import gradflow.analysis.experiment as experiment

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "run_experiment", interrupted)
    res = CliRunner().invoke(cli, ["run", str(_write_config(tmp_path / "e.toml"))])
    assert res.exit_code == 130
    assert "interrupted" in res.output


# ---- bounded config reading (issue 13): one line, never a hang or a traceback ----------------


def _fifo(path: Path) -> Path:
    os.mkfifo(path)  # nothing ever writes to it: opening it for reading would block
    return path


@pytest.mark.parametrize("command", ["run", "sweep", "report"])
@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_a_config_that_is_no_regular_file_is_refused_before_it_is_opened(
    tmp_path, command, special
):
    path = _fifo(tmp_path / "c.toml") if special == "fifo" else Path(special)
    args = [command, "--config", str(path)] if command == "report" else [command, str(path)]
    res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert res.output == f"Error: {path}: not a regular file (a config must be a TOML file)\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 5000 + "]" * 5000,  # deeper than tomllib recurses
        "a = " + "{b = " * 5000 + "1" + "}" * 5000,
        "cells = " + "[" * 11 + '"rnn"' + "]" * 11,  # parsed, but deeper than a config is
        "[sweep.axes]\nhidden_size = [[[[[[[[[[[4]]]]]]]]]]]",
    ],
)
def test_deeply_nested_configs_are_one_line(tmp_path, text):
    path = tmp_path / "deep.toml"
    path.write_text(text)
    for command in ("run", "sweep"):
        res = CliRunner().invoke(cli, [command, str(path), "--out", str(tmp_path / "out")])
        assert res.exit_code == 2, res.output
        assert res.output.startswith(f"Error: {path}: TOML nested too deeply to be a config")
        assert res.output.count("\n") == 1


def test_a_config_larger_than_the_bound_is_refused_unread(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text("# padding\n" * 110_000)  # 1.1 MB of comments: valid TOML
    with pytest.raises(ConfigError, match=r"big.toml: 1100000 bytes is larger than a config"):
        load_config(path)


def test_cell_file_and_inputs_path_fifos_are_refused(tmp_path):
    fifo = _fifo(tmp_path / "cell.toml")
    res = CliRunner().invoke(cli, ["derive", "--cell-file", str(fifo)])
    assert res.exit_code == 2
    assert res.output == f"Error: {fifo}: not a regular file (a cell file must be a TOML file)\n"
    inputs = _fifo(tmp_path / "x.npy")
    cfg = _write_config(tmp_path / "e.toml", '[inputs]\nkind = "file"\npath = "x.npy"\n')
    res = CliRunner().invoke(cli, ["run", str(cfg), "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 2
    assert res.output == f"Error: {inputs}: not a regular file\n"


def test_the_issue_13_table_names_tests_that_exist():
    # docs/bad-inputs.md: every row fixed on this branch names the test that checks it.
    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "bad-inputs.md").read_text()
    section = doc[doc.index("### Shutdown, schedulers") : doc.index("### Rows fixed elsewhere")]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert len(rows) >= 14
    named = re.findall(r"`(test_\w+\.py)(?:::(\w+))?", section)
    assert len(named) >= 10
    for file, name in named:
        text = (root / "tests" / file).read_text()
        assert not name or f"def {name}(" in text, f"{file}::{name} does not exist"
    # the rows fixed elsewhere name tests too: `tests/test_x.py::name`, `::other` (same file)
    elsewhere = doc[doc.index("### Rows fixed elsewhere") :].split("\n## ")[0]
    checked = 0
    for cell in re.findall(r"\|([^|]*)\|\s*$", elsewhere, re.M):
        file = None
        for f, name in re.findall(r"`(?:tests/(test_\w+\.py))?(?:::(\w+))?`", cell):
            file = f or file
            if file and name:
                assert f"def {name}(" in (root / "tests" / file).read_text(), (file, name)
                checked += 1
    assert checked >= 12
