"""Keras 3 files: the loaded model computes what Keras computed, without importing Keras.

Reference: ``tests/data/formats/keras_*`` were written by
``tests/reference/make_keras_fixtures.py`` (Keras 3.15, torch backend, float64, known weights):
the saved model and ``model.predict`` outputs. The loaded model is rolled forward with
gradflow's generated step kernels and compared to 1e-10 absolute.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gradflow.errors import WeightsError
from gradflow.formats import describe_weights, load_model

pytest.importorskip("h5py")

from test_formats import model_outputs  # noqa: E402

DATA = Path(__file__).parent / "data" / "formats"
TOL = 1e-10  # absolute, against Keras' float64 outputs

CASES = {
    # name: (cells per layer, directions per layer, bias)
    "lstm_stack": (["lstm", "lstm"], [1, 1], True),
    "gru_after": (["gru"], [1], True),
    "gru_before": (["gru-reset-before"], [1], True),
    "simple_relu": (["rnn-relu"], [1], True),
    "lstm_nobias": (["lstm"], [1], False),
    "bi_gru_rnn": (["gru", "rnn"], [2, 1], True),
}


def _check(model: object, name: str) -> None:
    cells, dirs, bias = CASES[name]
    assert [layer.cell for layer in model.layers] == cells  # type: ignore[attr-defined]
    assert [len(layer.directions) for layer in model.layers] == dirs  # type: ignore[attr-defined]
    assert model.layers[0].bias == bias  # type: ignore[attr-defined]
    ref = np.load(DATA / f"keras_{name}_io.npz")
    x = np.ascontiguousarray(ref["inputs"].transpose(1, 0, 2))  # Keras is batch first
    got = model_outputs(model, x).transpose(1, 0, 2)  # type: ignore[arg-type]
    np.testing.assert_allclose(got, ref["outputs"], rtol=0, atol=TOL)


@pytest.mark.parametrize("name", sorted(CASES))
def test_keras_archive_computes_what_keras_computed(name: str) -> None:
    model = load_model(DATA / f"keras_{name}.keras")
    assert model.format == "keras" and model.notes == ()
    _check(model, name)


@pytest.mark.parametrize("name", ["lstm_stack", "bi_gru_rnn"])
def test_weights_h5_with_config(name: str, tmp_path: Path) -> None:
    with zipfile.ZipFile(DATA / f"keras_{name}.keras") as zf:
        (tmp_path / "config.json").write_bytes(zf.read("config.json"))
    model = load_model(DATA / f"keras_{name}.weights.h5", config=tmp_path / "config.json")
    _check(model, name)


def test_weights_h5_without_config_single_class() -> None:
    model = load_model(DATA / "keras_lstm_stack.weights.h5")
    assert "no config" in model.notes[0]
    _check(model, "lstm_stack")


def test_weights_h5_without_config_mixed_classes_is_refused() -> None:
    with pytest.raises(WeightsError, match="several classes and no config.json.*pass config="):
        load_model(DATA / "keras_bi_gru_rnn.weights.h5")


def test_prefix_selects_one_layer_and_the_rest_is_unrelated() -> None:
    model = load_model(DATA / "keras_lstm_stack.keras", prefix="enc2")
    assert len(model.layers) == 1 and model.layers[0].input_size == 4
    assert model.unrelated == ("enc1", "head")


def test_keras_gru_gate_order_maps_to_torch() -> None:
    import h5py

    model = load_model(DATA / "keras_gru_after.keras")
    p = model.layers[0].directions[0].params
    with zipfile.ZipFile(DATA / "keras_gru_after.keras") as zf:
        blob = io.BytesIO(zf.read("model.weights.h5"))
    with h5py.File(blob) as f:
        kernel = f["layers/gru/cell/vars/0"][()]
        bias = f["layers/gru/cell/vars/2"][()]
    n = 4  # Keras column blocks z, r, h; PyTorch names r, z, n
    assert np.array_equal(p["W_iz"], kernel[:, :n].T)
    assert np.array_equal(p["W_ir"], kernel[:, n : 2 * n].T)
    assert np.array_equal(p["b_hn"], bias[1, 2 * n :])


def _edit_config(tmp_path: Path, name: str, edit: object) -> Path:
    with zipfile.ZipFile(DATA / f"keras_{name}.keras") as src:
        members = {i: src.read(i) for i in src.namelist()}
    config = json.loads(members["config.json"])
    edit(config)  # type: ignore[operator]
    members["config.json"] = json.dumps(config).encode()
    out = tmp_path / f"{name}.keras"
    with zipfile.ZipFile(out, "w") as dst:
        for member, data in members.items():
            dst.writestr(member, data)
    return out


def _layer_cfg(config: dict, k: int) -> dict:
    return config["config"]["layers"][k]["config"]


@pytest.mark.parametrize(
    ("name", "edit", "expected"),
    [
        (
            "gru_after",
            lambda c: _layer_cfg(c, 1).update(recurrent_activation="hard_sigmoid"),
            "recurrent_activation='hard_sigmoid'; only the defaults 'tanh' and 'sigmoid' have a "
            "catalogue cell (describe another cell in a cell file: gradflow analyze --cell-file)",
        ),
        (
            "gru_after",
            lambda c: _layer_cfg(c, 1).update(go_backwards=True),
            "go_backwards=True outside Bidirectional reverses the layer's output order; not "
            "supported (wrap the layer in Bidirectional, or analyse the layers below it with "
            "--prefix NAME)",
        ),
        (
            "bi_gru_rnn",
            lambda c: _layer_cfg(c, 1).update(merge_mode="sum"),
            "merge_mode='sum'; only 'concat' keeps both directions' outputs (analyse the layers "
            "below it with --prefix NAME)",
        ),
        (
            "lstm_stack",
            lambda c: c["config"]["layers"][2].update(class_name="Dense"),
            "sits between recurrent layers 'enc1' and 'enc2'; the stack is not direct",
        ),
    ],
)
def test_unsupported_keras_settings_are_refused(
    name: str, edit: object, expected: str, tmp_path: Path
) -> None:
    path = _edit_config(tmp_path, name, edit)
    with pytest.raises(WeightsError) as info:
        load_model(path)
    assert "\n" not in str(info.value) and expected in str(info.value)


def test_corrupt_archives(tmp_path: Path) -> None:
    bad = tmp_path / "x.keras"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(WeightsError, match="truncated or corrupt .keras archive"):
        load_model(bad)
    with zipfile.ZipFile(tmp_path / "y.keras", "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(WeightsError, match=r"not a Keras 3 archive \(no model.weights.h5 inside\)"):
        load_model(tmp_path / "y.keras")
    deep = _edit_config(tmp_path, "gru_after", lambda c: None)
    with zipfile.ZipFile(deep) as zf:
        members = {i: zf.read(i) for i in zf.namelist()}
    members["config.json"] = b"[" * 100_000 + b"]" * 100_000
    with zipfile.ZipFile(tmp_path / "deep.keras", "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    with pytest.raises(WeightsError, match="config.json"):
        load_model(tmp_path / "deep.keras")


def test_describe_keras() -> None:
    desc = describe_weights(DATA / "keras_bi_gru_rnn.keras")
    text = str(desc)
    assert desc.format == "keras"
    assert "layer 0 (bi): gru forward+reverse, n=3, d=3" in text
    assert "layer 1 (top): rnn forward, n=2, d=6" in text
    assert "--direction both" in desc.modules[0].command


def test_keras_is_never_imported() -> None:
    load_model(DATA / "keras_lstm_stack.keras")
    assert "keras" not in sys.modules and "tensorflow" not in sys.modules
