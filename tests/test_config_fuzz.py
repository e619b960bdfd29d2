"""Fuzzing the experiment-config loader: random tables and random TOML text.

Whatever arrives, ``ExperimentConfig.from_dict`` / ``load_config`` either returns a config or
raises a :class:`~gradflow.errors.GradflowError`; never anything else. CI runs a bounded number
of examples (printed in the test ids' docstrings below); longer local runs use
``HYPOTHESIS_PROFILE=long``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradflow.analysis.experiment import ExperimentConfig, load_config
from gradflow.errors import GradflowError

EXAMPLES = 2000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 300
KEYS = [
    "name",
    "cells",
    "hidden_size",
    "input_size",
    "steps",
    "batch",
    "seeds",
    "init",
    "inputs",
    "quantities",
    "lag_window",
    "backend",
    "quantiles",
    "sigma_w",
    "bogus",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["rnn", "lstm", "gru", "gaussian", "torch", "last", "numpy", "cupy"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS + ["kind", "scheme"]), inner, max_size=4),
    ),
    max_leaves=12,
)
tables = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables)
def test_random_tables_raise_only_gradflow_errors(data):
    try:
        ExperimentConfig.from_dict(data)
    except GradflowError:
        pass


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_random_toml_text_raises_only_gradflow_errors(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except GradflowError:
        pass
