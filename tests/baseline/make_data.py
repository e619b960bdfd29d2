"""Write the fixed synthetic results that the figure and report tests draw from.

The numbers are synthetic but shaped like real ones (an RNN decaying at about 0.05 decades per
step, an LSTM and a GRU decaying slowly, a sweep whose decay rate changes sign where
``sigma_w`` crosses about 1.2). They follow the experiment, sweep, claims and analysis JSON
schemas of :mod:`gradflow.results` exactly (``experiment_v1.json`` keeps the schema-version-1
shape, which :mod:`gradflow.results` still reads). Run ``python tests/baseline/make_data.py``
to regenerate them; the golden images in ``tests/baseline/`` must then be regenerated too
(``GRADFLOW_REGEN=1``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradflow.analysis.cellcard import cell_card
from gradflow.cells import get_cell
from gradflow.results import save_json

HERE = Path(__file__).parent / "data"
T = 60


def _band(rng: np.random.Generator, slope: float, spread: float, offset: float = 0.0):
    k = np.arange(T + 1)
    median = offset + slope * k + 0.01 * rng.standard_normal(T + 1).cumsum() * (k > 0)
    median[0] = offset
    width = spread * np.sqrt(k)
    return {"q10": median - width, "median": median, "q90": median + width}


def _v2_band(band: dict) -> dict:
    return {"levels": [0.1, 0.5, 0.9], "low": band["q10"], "median": band["median"],
            "high": band["q90"]}  # fmt: skip


def experiment() -> dict:
    """Schema version 2: bands that carry their levels, a card per cell, no timings."""
    data = experiment_v1()
    for name, c in data["cells"].items():
        for key in ("log10_spectral_norm", "log10_frobenius_norm", "log10_spectral_norm_hidden"):
            c[key] = _v2_band(c[key])
        c["paths"] = {p: _v2_band(b) for p, b in c["paths"].items()}
        c["quantiles"] = [0.1, 0.9]
        c["init"] = {"scheme": "torch"}
        r = c["decay_rate"]
        c["decay_rate"] = {
            "median": r["median"],
            "low": r["q10"],
            "high": r["q90"],
            "levels": [0.1, 0.5, 0.9],
            "window": r["window"],
            "units": r["units"],
        }
        c["card"] = cell_card(get_cell(name)).to_dict()
    data["schema_version"] = 2
    del data["timing"]
    return data


def experiment_v1() -> dict:
    rng = np.random.default_rng(0)
    cells = {}
    spec = {"rnn": (-0.05, 1, 0.02), "lstm": (-0.012, 2, 0.01), "gru": (-0.006, 1, 0.008)}
    for name, (slope, blocks, spread) in spec.items():
        n = 16
        runs = 12
        full = _band(rng, slope, spread)
        paths = {}
        if name != "rnn":
            paths = {
                "additive": _band(rng, slope * 1.2, spread),
                "multiplicative": _band(rng, -0.09, spread),
            }
        svs = {}
        for lag in (1, 10, 50):
            base = np.sort(rng.uniform(-3, 0, (runs, 8)), axis=1)[:, ::-1]
            svs[str(lag)] = base * (0.2 + lag / 40) + slope * lag * 0.2
        lyap = np.sort(rng.normal(slope * 2.3, 0.4, (runs, 8)), axis=1)[:, ::-1]
        cells[name] = {
            "cell": name,
            "hidden_size": n,
            "input_size": 4,
            "steps": T,
            "batch": 4,
            "runs": runs,
            "lags": list(range(T + 1)),
            "quantiles": [0.1, 0.5, 0.9],
            "log10_spectral_norm": full,
            "log10_frobenius_norm": {
                k: v + 0.5 * np.log10(blocks * n) * 0.8 for k, v in full.items()
            },
            "log10_spectral_norm_hidden": {k: v - 0.05 for k, v in full.items()},
            "paths": paths,
            "log10_singular_values": svs,
            "lyapunov_exponents": lyap,
            "decay_rate": {
                "median": slope,
                "q10": slope * 1.1,
                "q90": slope * 0.9,
                "window": [5, 50],
                "units": "decades per step",
            },
            "pascanu": (
                {"log10_bound": 0.01 * np.arange(T + 1), "holds": True} if name == "rnn" else None
            ),
            "meanfield": (
                {"predicted_slope": -0.048, "chi": 0.801, "q_star": 0.31} if name == "rnn" else None
            ),
        }
    return {
        "schema_version": 1,
        "kind": "experiment",
        "name": "synthetic comparison",
        "config": {"name": "synthetic comparison", "steps": T, "cells": list(spec)},
        "gradflow_version": "0.1.0",
        "seeds": [0, 1, 2],
        "timing": {"total_s": 1.5},
        "cells": cells,
    }


def sweep() -> dict:
    sigma_w = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    sigma_b = [0.0, 0.1, 0.2, 0.3]
    points = []
    for sw in sigma_w:
        for sb in sigma_b:
            rate = float(np.log10(sw) - 0.08 - 0.1 * sb)
            regime = "vanishing" if rate < -0.005 else "exploding" if rate > 0.005 else "preserved"
            points.append(
                {
                    "params": {"sigma_w": sw, "sigma_b": sb},
                    "decay_rate": rate,
                    "log10_norm_final": rate * T,
                    "regime": regime,
                }
            )
    return {
        "schema_version": 2,
        "kind": "sweep",
        "name": "rnn sigma_w x sigma_b",
        "config": {"cell": "rnn", "steps": T},
        "axes": {"sigma_w": sigma_w, "sigma_b": sigma_b},
        "points": points,
    }


def claims() -> dict:
    rows = [
        (
            "a",
            "RNN gradients vanish",
            "The vanilla RNN norm decays geometrically.",
            {"rnn_decay_rate": -0.05},
            True,
        ),
        (
            "b",
            "LSTM cell path",
            "The additive path keeps the LSTM norm alive.",
            {"lstm_decay_rate": -0.012, "ratio": 4.2},
            True,
        ),
        ("c", "GRU leak", "The GRU decays slowest.", {"gru_decay_rate": -0.006}, True),
        ("d", "Pascanu bound", "The bound is never violated.", {"violations": 0}, True),
        (
            "e",
            "Mean field",
            "The mean-field slope matches.",
            {"predicted": -0.048, "measured": -0.05},
            False,
        ),
    ]
    return {
        "schema_version": 2,
        "kind": "claims",
        "claims": [
            {
                "id": i,
                "title": t,
                "statement": s,
                "measured": m,
                "holds": h,
                "summary": f"{t}: measured {', '.join(f'{k} = {v}' for k, v in m.items())}.",
            }
            for i, t, s, m, h in rows
        ],
    }


def analysis() -> dict:
    rng = np.random.default_rng(1)
    B, n = 6, 8
    k = np.arange(T + 1)[:, None]
    slopes = rng.normal(-0.03, 0.004, B)[None, :]
    spec = slopes * k + 0.02 * rng.standard_normal((T + 1, B)).cumsum(axis=0) * (k > 0)
    return {
        "schema_version": 1,
        "kind": "analysis",
        "cell": "lstm",
        "hidden_size": n,
        "input_size": 3,
        "steps": T,
        "batch": B,
        "lags": list(range(T + 1)),
        "log10_spectral_norm": spec,
        "log10_frobenius_norm": spec + 0.4,
        "log10_spectral_norm_hidden": spec - 0.1,
        "final_hidden": rng.uniform(-0.5, 0.5, (B, n)),
        "paths": {
            "additive": {
                "log10_spectral_norm": spec * 1.2,
                "log10_frobenius_norm": spec * 1.2 + 0.4,
            },
            "multiplicative": {
                "log10_spectral_norm": spec * 3,
                "log10_frobenius_norm": spec * 3 + 0.4,
            },
        },
        "log10_singular_values": {
            "1": np.sort(rng.uniform(-1, 0, (B, 4)))[:, ::-1],
            "20": np.sort(rng.uniform(-2, -0.5, (B, 4)))[:, ::-1],
        },
        "lyapunov_exponents": np.sort(rng.normal(-0.07, 0.1, (B, 4)))[:, ::-1],
        "meta": {"backend": "numpy", "dtype": "float64"},
    }


if __name__ == "__main__":
    for name, fn in (
        ("experiment", experiment),
        ("experiment_v1", experiment_v1),
        ("sweep", sweep),
        ("claims", claims),
        ("analysis", analysis),
    ):
        save_json(HERE / f"{name}.json", fn())
