"""Streamed result files (issue 13, item 6): :func:`gradflow.results.save_json` writes large
arrays a block of rows at a time, and the bytes are exactly those of the whole-text writer
:func:`gradflow.results.dumps` (the reference: ``json.dumps(..., indent=1)`` of the cleaned
data, the format every saved result has had).

The memory figure itself (``gradflow analyze`` at T = 10^6 peaks under 500 MB) is measured by
``benchmarks/analyze_memory.py``; here the property that gives it is checked without timing:
no piece the writer produces grows with T.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from gradflow.cells import get_cell
from gradflow.engine import analyze
from gradflow.initialisers import Init, initialise
from gradflow.results import AnalysisResult, dumps, save_json
from gradflow.results import io as results_io


def small_analysis(T: int, B: int = 2) -> AnalysisResult:
    rng = np.random.default_rng(7)
    cell = get_cell("rnn")
    params = initialise(cell, 3, 2, Init("gaussian"), rng)
    x = rng.standard_normal((T, B, 2))
    return analyze(cell, params, x, singular_lags=(1, T), lyapunov=2, gradient="last")


@pytest.mark.parametrize("T", [4, 20_000])
def test_saved_bytes_are_those_of_the_whole_text_writer(tmp_path, T):
    # T = 4: nothing is streamed; T = 20,000: (T + 1) x 2 arrays of 40,002 numbers are
    # (STREAM_MIN_SIZE is 16,384), in 5 blocks of 4,096 rows.
    result = small_analysis(T)
    path = tmp_path / "r.json"
    result.save(path)
    assert path.read_bytes() == dumps(result.to_dict()).encode("utf-8")
    back = AnalysisResult.load(path)
    assert back.comparable() == result.comparable()
    np.testing.assert_array_equal(back.log10_spectral_norm, result.log10_spectral_norm)


def test_no_piece_of_the_writer_grows_with_T():
    # 100,001 rows x 2 numbers x 4 arrays: about 14 MB of text as one string; the writer's
    # largest piece is one block of 4,096 rows (about 0.3 MB), whatever T is.
    T = 100_000
    rng = np.random.default_rng(0)
    data = {
        "kind": "analysis",
        "lags": np.arange(T + 1),
        **{
            k: rng.standard_normal((T + 1, 2)) * 10.0 ** rng.integers(-300, 300, (T + 1, 2))
            for k in ("a", "b", "c")
        },
    }
    pieces = list(results_io.iter_json(data))
    total = sum(map(len, pieces))
    assert total > 10_000_000
    assert max(map(len, pieces)) < 1_000_000
    assert "".join(pieces) == dumps(data)


def test_non_finite_numbers_and_odd_strings_in_streamed_arrays(monkeypatch):
    monkeypatch.setattr(results_io, "STREAM_MIN_SIZE", 2)
    monkeypatch.setattr(results_io, "STREAM_BLOCK_ROWS", 2)
    arr = np.array([[1.0, np.nan], [np.inf, -np.inf], [5e-324, 1.7976931348623157e308]])
    data = {"x": arr, "s": '\0gradflow-array-0"', "nested": [[arr[0]], {"y": arr}]}
    text = "".join(results_io.iter_json(data))
    assert text == dumps(data)
    assert json.loads(text)["x"][1] == [None, None]  # non-finite numbers are null


finite = st.floats(allow_nan=True, allow_infinity=True, width=64)
leaf = st.one_of(
    arrays(
        np.float64, array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5), elements=finite
    ),
    arrays(np.int64, array_shapes(min_dims=1, max_dims=2, max_side=6), elements=st.integers(-9, 9)),
    finite,
    st.integers(-(2**70), 2**70),
    st.text(max_size=8),
    st.none(),
    st.booleans(),
)
trees = st.recursive(
    leaf,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=5), kids, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(trees, st.integers(1, 8), st.integers(1, 4))
def test_streamed_text_equals_whole_text_for_any_data(data, min_size, block):
    # With tiny thresholds every array of the tree is streamed in blocks of 1 to 4 rows.
    old = results_io.STREAM_MIN_SIZE, results_io.STREAM_BLOCK_ROWS
    results_io.STREAM_MIN_SIZE, results_io.STREAM_BLOCK_ROWS = min_size, block
    try:
        assert "".join(results_io.iter_json(data)) == dumps(data)
    finally:
        results_io.STREAM_MIN_SIZE, results_io.STREAM_BLOCK_ROWS = old


def test_save_json_streams_into_the_atomic_writer(tmp_path, monkeypatch):
    monkeypatch.setattr(results_io, "STREAM_MIN_SIZE", 4)
    data = {"a": np.arange(12.0).reshape(6, 2), "b": "text"}
    save_json(tmp_path / "x.json", data)
    assert (tmp_path / "x.json").read_text() == dumps(data)
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary file left
