"""Damaged Keras and ONNX files raise WeightsError (one line) and nothing else.

Damage: random bytes, truncation, and byte flips of the valid fixtures in tests/data/formats.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradflow.errors import WeightsError
from gradflow.formats import load_model

DATA = Path(__file__).parent / "data" / "formats"
EXAMPLES = 60


def _damage(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=256),
        st.integers(0, len(valid) - 1).map(lambda k: valid[:k]),
        st.lists(
            st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)), min_size=1, max_size=8
        ).map(lambda flips: bytes(_flip(bytearray(valid), flips))),
    )


def _flip(data: bytearray, flips: list[tuple[int, int]]) -> bytearray:
    for pos, value in flips:
        data[pos] = value
    return data


@pytest.mark.parametrize(
    ("fixture", "module"),
    [("keras_bi_gru_rnn.keras", "h5py"), ("onnx_bi_stack.onnx", "onnx")],
)
def test_fuzz_damaged_model_files(fixture: str, module: str, tmp_path: Path) -> None:
    pytest.importorskip(module)
    valid = (DATA / fixture).read_bytes()
    target = tmp_path / fixture
    ran = {"examples": 0, "loaded": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(data=_damage(valid))
    def check(data: bytes) -> None:
        ran["examples"] += 1
        target.write_bytes(data)
        try:
            load_model(target)
            ran["loaded"] += 1  # a flip inside float data can leave a valid file
        except WeightsError as exc:
            assert "\n" not in str(exc)

    check()
    print(f"fuzz {fixture}: {ran['examples']} examples, {ran['loaded']} still valid")
    assert ran["examples"] >= EXAMPLES // 2
