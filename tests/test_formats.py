"""Whole PyTorch models: every state_dict layout loads into a Model that computes what torch did.

Reference: ``tests/data/formats/torch_*`` were written by
``tests/reference/make_format_fixtures.py`` (torch 2.13, float64): the state_dict as saved by
``safetensors.torch.save_file`` and the module's own outputs. Each test rolls the loaded model
forward with gradflow's generated step kernels (``gradflow.engine.rollout``, one layer and
direction at a time) and compares with torch's outputs to 1e-10 absolute (float64 rounding
over 7 steps is ~1e-15).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

from gradflow.engine import rollout
from gradflow.errors import WeightsError
from gradflow.formats import (
    Direction,
    Layer,
    Model,
    describe_weights,
    load_model,
    model_from_state_dict,
    single_layer_model,
)
from gradflow.formats.select import select
from gradflow.weights import to_torch_tensors

DATA = Path(__file__).parent / "data" / "formats"
TOL = 1e-10  # absolute, against torch's float64 outputs


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def _proj_lstm(d: Direction, x: np.ndarray) -> np.ndarray:
    """nn.LSTM(proj_size) written out (PyTorch docs): h_t = W_hr (o * tanh(c_t))."""
    p = d.params
    n = p.hidden_size
    h = np.zeros((x.shape[1], d.projection.shape[0]))  # type: ignore[union-attr]
    c = np.zeros((x.shape[1], n))
    out = []
    for xt in x:
        a = {
            g: xt @ p[f"W_i{g}"].T + h @ p[f"W_h{g}"].T + p[f"b_i{g}"] + p[f"b_h{g}"]
            for g in "ifgo"
        }
        c = _sigmoid(a["f"]) * c + _sigmoid(a["i"]) * np.tanh(a["g"])
        h = (_sigmoid(a["o"]) * np.tanh(c)) @ d.projection.T  # type: ignore[union-attr]
        out.append(h)
    return np.stack(out)


def model_outputs(model: Model, x: np.ndarray) -> np.ndarray:
    """The top layer's outputs (T, B, dirs * h_out), layer by layer with gradflow's kernels."""
    for layer in model.layers:
        outs = []
        for d in layer.directions:
            xi = x[::-1] if d.reverse else x
            if d.projection is not None:
                h = _proj_lstm(d, xi)
            else:
                h = rollout(layer.cell, d.params, xi)[1:, :, : layer.hidden_size]
            outs.append(h[::-1] if d.reverse else h)
        x = np.concatenate(outs, axis=-1)
    return x


CASES = {
    # name: (cells per layer, directions, proj_size, bias, unrelated tensors)
    "lstm2": (
        ["lstm", "lstm"],
        1,
        0,
        True,
        ("encoder.bias", "encoder.weight", "head.bias", "head.weight"),
    ),
    "gru_bi": (["gru"], 2, 0, True, ()),
    "gru2_bi": (["gru", "gru"], 2, 0, True, ()),
    "lstm_proj": (["lstm-proj", "lstm-proj"], 1, 2, True, ()),
    "rnn_nobias": (["rnn", "rnn"], 1, 0, False, ()),
    "lstmcell": (["lstm"], 1, 0, True, ()),
    "grucell": (["gru"], 1, 0, True, ()),
    "rnncell": (["rnn"], 1, 0, True, ()),
    "rnn_weightnorm": (["rnn"], 1, 0, True, ()),
    "gru_spectral": (["gru"], 1, 0, True, ()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_loaded_model_computes_what_torch_computed(name: str) -> None:
    cells, dirs, proj, bias, unrelated = CASES[name]
    model = load_model(DATA / f"torch_{name}.safetensors")
    assert [layer.cell for layer in model.layers] == cells
    assert all(len(layer.directions) == dirs for layer in model.layers)
    assert all(layer.proj_size == proj and layer.bias == bias for layer in model.layers)
    assert model.unrelated == unrelated
    assert model.format == "pytorch"
    io = np.load(DATA / f"torch_{name}_io.npz")
    got = model_outputs(model, io["inputs"])
    assert got.shape == io["outputs"].shape
    np.testing.assert_allclose(got, io["outputs"], rtol=0, atol=TOL)


def test_relu_rnn_needs_the_option_and_the_default_is_noted() -> None:
    path = DATA / "torch_rnn_relu.safetensors"
    io = np.load(DATA / "torch_rnn_relu_io.npz")
    tanh = load_model(path)
    assert tanh.layers[0].cell == "rnn" and "taken as tanh" in tanh.notes[0]
    relu = load_model(path, nonlinearity="relu")
    assert relu.layers[0].cell == "rnn-relu" and relu.notes == ()
    np.testing.assert_allclose(model_outputs(relu, io["inputs"]), io["outputs"], atol=TOL)
    # tanh and relu differ on these weights: the option matters
    assert np.abs(model_outputs(tanh, io["inputs"]) - io["outputs"]).max() > 1e-3
    with pytest.raises(WeightsError, match="applies to nn.RNN only, not lstm"):
        load_model(DATA / "torch_lstmcell.safetensors", nonlinearity="relu")


def test_bias_false_is_zero_and_recorded() -> None:
    model = load_model(DATA / "torch_rnn_nobias.safetensors")
    d = model.layers[1].directions[0]
    assert not model.layers[1].bias
    assert np.array_equal(d.params["b_ih"], np.zeros(4))
    assert "b_ih" not in d.sources  # absent in the file
    assert d.sources["W_hh"] == "weight_hh_l1"
    assert [layer.name for layer in model.layers] == ["l0", "l1"]


def test_gate_blocks_follow_torch_order() -> None:
    raw = load_file(DATA / "torch_lstm2.safetensors")
    model = load_model(DATA / "torch_lstm2.safetensors", prefix="rnn")
    p = model.layers[1].directions[0].params
    n = 4
    for k, gate in enumerate("ifgo"):  # PyTorch docs: row blocks i, f, g, o
        assert np.array_equal(p[f"W_h{gate}"], raw["rnn.weight_hh_l1"][k * n : (k + 1) * n])
    assert p.input_size == 4 and p.hidden_size == 4
    assert p["W_hf"].flags.writeable is False


def test_two_modules_need_a_prefix(tmp_path: Path) -> None:
    a = load_file(DATA / "torch_grucell.safetensors")
    b = load_file(DATA / "torch_lstm2.safetensors")
    sd = {f"dec.cell.{k}": v for k, v in a.items()} | b
    save_file(sd, tmp_path / "two.safetensors")
    with pytest.raises(WeightsError) as info:
        load_model(tmp_path / "two.safetensors")
    msg = str(info.value)
    assert "\n" not in msg
    assert (
        "holds 2 recurrent modules (prefixes 'dec.cell.', 'rnn.'); choose one with --prefix" in msg
    )
    assert load_model(tmp_path / "two.safetensors", prefix="dec.cell").layers[0].cell == "gru"
    m = load_model(tmp_path / "two.safetensors", prefix="rnn.")
    assert len(m.layers) == 2 and "dec.cell.weight_hh" in m.unrelated
    with pytest.raises(WeightsError, match="no recurrent module under prefix 'enc' "):
        load_model(tmp_path / "two.safetensors", prefix="enc")


def _sd(name: str) -> dict[str, np.ndarray]:
    return dict(load_file(DATA / f"torch_{name}.safetensors"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda sd: sd.pop("weight_hh_l1_reverse"),
            "weight_hh_l1_reverse is missing for the "
            "2-layer bidirectional nn.GRU under prefix '(none)'",
        ),
        (lambda sd: sd.pop("bias_ih_l1"), "bias_ih_l1 is missing for the 2-layer"),
        (
            lambda sd: sd.update(weight_hr_l1=np.ones((2, 3))),
            "weight_hr_l1 does not fit the nn.GRU",
        ),
        (
            lambda sd: sd.update(
                weight_ih_l1=np.ones((9, 5)), weight_ih_l1_reverse=np.ones((9, 5))
            ),
            "weight_ih_l1: layer 1 has input size 5, but layer 0 outputs 6 (= 3 x 2 directions); "
            "the layers do not stack: check the file, or analyse the layers below with --layers 1",
        ),
        (
            lambda sd: sd.update(weight_hh_l0=np.ones((10, 3))),
            "weight_hh_l0 has shape (10, 3); "
            "rows must be G*n with G = 1 (RNN), 3 (GRU) or 4 (LSTM) and n = 3",
        ),
        (
            lambda sd: sd.update(bias_hh_l0=np.full(9, np.nan)),
            "bias_hh_l0 has 9 non-finite values (first at index 0)",
        ),
        (
            lambda sd: sd.update(bias_hh_l0=np.ones(9, dtype=np.int64)),
            "bias_hh_l0 has dtype int64; weights must be floating point",
        ),
        (lambda sd: sd.update(weight_hh_l1=np.ones((9, 4))), "weight_hh_l1: W_hr has shape (3, 4)"),
    ],
)
def test_bad_state_dicts_get_one_line_naming_the_tensor(change: object, expected: str) -> None:
    sd = _sd("gru2_bi")
    change(sd)  # type: ignore[operator]
    with pytest.raises(WeightsError) as info:  # on reading, or (layers that do not stack)
        select(model_from_state_dict(sd))  # when they are chosen for the analysis
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("state_dict: ")  # names the file (here: the mapping)
    assert expected in str(info.value)


def test_orthogonal_parametrization_is_refused_with_advice() -> None:
    sd = _sd("rnncell")
    w = sd.pop("weight_hh")
    sd["parametrizations.weight_hh.original"] = w
    sd["parametrizations.weight_hh.0.base"] = np.eye(4)
    with pytest.raises(
        WeightsError,
        match=r"parametrizations.weight_hh is a orthogonal.*"
        r"remove_parametrizations\(module, 'weight_hh'\)",
    ):
        model_from_state_dict(sd)


def test_no_rnn_in_file(tmp_path: Path) -> None:
    save_file({"fc.weight": np.ones((2, 2))}, tmp_path / "w.safetensors")
    with pytest.raises(
        WeightsError, match=r"no PyTorch RNN/LSTM/GRU tensors .* \(found: fc.weight\)"
    ):
        load_model(tmp_path / "w.safetensors")


def test_npz_state_dict_loads_the_same(tmp_path: Path) -> None:
    sd = _sd("lstm_proj")
    np.savez(tmp_path / "w.npz", **sd)
    a = load_model(tmp_path / "w.npz")
    b = load_model(DATA / "torch_lstm_proj.safetensors")
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert la.directions[0].params == lb.directions[0].params
        assert np.array_equal(la.directions[0].projection, lb.directions[0].projection)


def test_model_validation_names_the_tensor() -> None:
    rng = np.random.default_rng(0)
    p = {
        "W_ih": rng.normal(size=(4, 3)),
        "W_hh": rng.normal(size=(4, 5)),
        "b_ih": np.zeros(4),
        "b_hh": np.zeros(4),
    }
    with pytest.raises(WeightsError, match=r"W_hh has shape \(4, 5\); expected \(4, 4\) for rnn"):
        single_layer_model("rnn", p)
    p["W_hh"] = rng.normal(size=(4, 4))
    one = single_layer_model("rnn", p).layers[0]
    two = Model((one, one))  # kept as the file holds it; refused when chosen for analysis
    assert two.stacked == 1 and len(select(two, layers=1)) == 1
    with pytest.raises(WeightsError, match="layer 1 has input size 3, but layer 0 outputs 4"):
        select(two)
    with pytest.raises(WeightsError, match="proj_size=2 is only defined for lstm"):
        Layer("rnn", 4, 3, one.directions, proj_size=2)


def test_describe_lists_modules_layers_and_the_command(tmp_path: Path) -> None:
    desc = describe_weights(DATA / "torch_lstm2.safetensors")
    text = str(desc)
    assert desc.format == "pytorch state_dict (safetensors)"
    (module,) = desc.modules
    assert module.prefix == "rnn." and module.module == "nn.LSTM"
    assert [str(layer) for layer in module.layers] == [
        "layer 0: lstm forward, n=4, d=3",
        "layer 1: lstm forward, n=4, d=4",
    ]
    assert module.command.startswith("gradflow analyze --weights ")
    assert "--cell lstm --layers all --inputs INPUTS.npy --output result.json" in module.command
    assert [n for n, _ in desc.unrelated] == [
        "encoder.bias",
        "encoder.weight",
        "head.bias",
        "head.weight",
    ]
    assert "head.weight (1, 3)" in text
    bi = describe_weights(DATA / "torch_gru_bi.safetensors")
    assert "--direction both" in bi.modules[0].command
    assert str(bi.modules[0].layers[0]) == "layer 0: gru forward+reverse, n=4, d=3"
    proj = describe_weights(DATA / "torch_lstm_proj.safetensors")
    assert str(proj.modules[0].layers[1]) == "layer 1: lstm-proj forward, n=5, d=2, proj_size=2"
    assert "--cell lstm-proj --layers all" in proj.modules[0].command
    # two modules: both listed, each command with its --prefix
    sd = {f"dec.{k}": v for k, v in _sd("grucell").items()} | _sd("rnn_nobias")
    save_file(sd, tmp_path / "two.safetensors")
    two = describe_weights(tmp_path / "two.safetensors")
    assert [m.prefix for m in two.modules] == ["", "dec."]
    assert "--prefix dec." in two.modules[1].command
    chosen = describe_weights(tmp_path / "two.safetensors", prefix="dec")
    assert [m.prefix for m in chosen.modules] == ["dec."]
    assert "--prefix dec." in chosen.modules[0].command  # still needed: the file holds two
    assert "bias=False" in str(two) and "taken as tanh" in str(two)


def test_describe_reads_no_tensor_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gradflow.tensorfile as tensorfile

    def fail(*args: object) -> None:
        raise AssertionError("tensor data was read")

    monkeypatch.setattr(tensorfile, "_read_safetensors_tensor", fail)
    monkeypatch.setattr(tensorfile, "_read_npz_member", fail)
    np.savez(tmp_path / "w.npz", **_sd("gru2_bi"))
    assert len(describe_weights(tmp_path / "w.npz").modules[0].layers) == 2
    assert len(describe_weights(DATA / "torch_gru2_bi.safetensors").modules[0].layers) == 2


# ---- properties -------------------------------------------------------------------------------


@st.composite
def state_dicts(draw: st.DrawFn) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """A random nn.RNN/LSTM/GRU(-Cell) state_dict as PyTorch lays it out, and its config."""
    kind = draw(st.sampled_from(["rnn", "lstm", "gru"]))
    cellstyle = draw(st.booleans())
    layers = 1 if cellstyle else draw(st.integers(1, 3))
    dirs = 1 if cellstyle else draw(st.sampled_from([1, 2]))
    n, d = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    proj = draw(st.integers(0, n - 1)) if kind == "lstm" and not cellstyle and n > 1 else 0
    bias = draw(st.booleans())
    prefix = draw(st.sampled_from(["", "rnn.", "model.encoder.cell."]))
    G = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    out = n if not proj else proj
    sd: dict[str, np.ndarray] = {}
    for k in range(layers):
        for r in range(dirs):
            sfx = "" if cellstyle else f"_l{k}" + ("_reverse" if r else "")
            d_in = d if k == 0 else out * dirs
            sd[f"{prefix}weight_ih{sfx}"] = rng.normal(size=(G * n, d_in))
            sd[f"{prefix}weight_hh{sfx}"] = rng.normal(size=(G * n, out))
            if bias:
                sd[f"{prefix}bias_ih{sfx}"] = rng.normal(size=G * n)
                sd[f"{prefix}bias_hh{sfx}"] = rng.normal(size=G * n)
            if proj:
                sd[f"{prefix}weight_hr{sfx}"] = rng.normal(size=(proj, n))
    sd["head.weight"] = rng.normal(size=(2, out * dirs))
    config = {
        "kind": kind,
        "layers": layers,
        "dirs": dirs,
        "n": n,
        "d": d,
        "proj": proj,
        "bias": bias,
        "prefix": prefix,
        "cellstyle": cellstyle,
    }
    return sd, config


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(case=state_dicts())
def test_every_state_dict_layout_round_trips_exactly(
    case: tuple[dict[str, np.ndarray], dict[str, object]],
) -> None:
    sd, c = case
    model = model_from_state_dict(sd)
    assert len(model.layers) == c["layers"] and model.prefix == c["prefix"]
    assert model.unrelated == ("head.weight",)
    for k, layer in enumerate(model.layers):
        assert (layer.hidden_size, layer.proj_size, layer.bias) == (c["n"], c["proj"], c["bias"])
        assert len(layer.directions) == c["dirs"]
        for direction in layer.directions:
            sfx = "" if c["cellstyle"] else f"_l{k}" + ("_reverse" if direction.reverse else "")
            back = to_torch_tensors(layer.cell, direction.params)  # gate blocks restacked
            for slot, arr in back.items():
                base = slot.removesuffix("_l0")
                name = f"{c['prefix']}{base}{sfx}"
                if name in sd:
                    assert np.array_equal(arr, sd[name]), name  # bit-exact: only reshuffled
                else:  # bias=False: zeros
                    assert not c["bias"] and not arr.any()
            if c["proj"]:
                assert np.array_equal(direction.projection, sd[f"{c['prefix']}weight_hr{sfx}"])


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(case=state_dicts(), data=st.data())
def test_damaged_state_dicts_raise_only_weights_error(
    case: tuple[dict[str, np.ndarray], dict[str, object]], data: st.DataObject
) -> None:
    sd, _ = case
    names = sorted(sd)
    action = data.draw(st.sampled_from(["drop", "reshape", "rename", "nan", "int"]))
    victim = data.draw(st.sampled_from(names))
    if action == "drop":
        del sd[victim]
    elif action == "reshape":
        sd[victim] = np.ones(data.draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    elif action == "rename":
        sd[victim + data.draw(st.sampled_from(["_l7", "_reverse", "x", ".original"]))] = sd.pop(
            victim
        )
    elif action == "nan":
        sd[victim] = np.full_like(sd[victim], np.nan)
    else:
        sd[victim] = sd[victim].astype(np.int64)
    try:
        model = model_from_state_dict(sd)
    except WeightsError as exc:
        assert "\n" not in str(exc)
        return
    assert model.layers  # some damage leaves a valid model (e.g. the head was touched)
