"""examples/record_inputs.py records exactly what the recurrent module receives (needs torch).

Reference: the embedding's own output for the same tokens, transposed to (T, B, d); the hook
must reproduce it bit for bit (it only transposes and upcasts float64 to float64).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

EXAMPLE = Path(__file__).parent.parent / "examples" / "record_inputs.py"


def _example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("record_inputs", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recorded_inputs_are_the_modules_inputs_time_first() -> None:
    ex = _example()
    model = ex.build_model()
    tokens = list(ex.batches())
    got = ex.record(model, model.lstm, iter(tokens))
    with torch.no_grad():
        want = np.concatenate([model.embed(t).transpose(0, 1).numpy() for t in tokens], axis=1)
    assert got.shape == (20, 8, 8) and got.dtype == np.float64
    assert np.array_equal(got, want)


def test_hook_is_removed_and_packed_sequences_are_unpacked() -> None:
    ex = _example()
    lstm = torch.nn.LSTM(3, 4).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, [5, 5])
    got = ex.record(lstm, lstm, iter([packed]))
    assert np.array_equal(got, x.numpy())
    assert not lstm._forward_pre_hooks  # the hook does not outlive the recording
