"""Lyapunov diagnostics of an experiment (analysis.lyapunov.experiment_lyapunov), their typed
result (results.lyapunov), and the report's "Lyapunov diagnostics" section and lyapunov.csv."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from gradflow.analysis import lyapunov as lyap
from gradflow.analysis.config import ExperimentConfig
from gradflow.analysis.experiment import run_experiment
from gradflow.cells import get_cell
from gradflow.cells.spec import load_cell_file
from gradflow.citations import text
from gradflow.initialisers import Init, initialise, make_inputs
from gradflow.report import build_report
from gradflow.results import ExperimentResult, ResultError, dumps, load_json
from gradflow.results.base import Where
from gradflow.results.lyapunov import LyapunovSummary

LINEAR = """\
name = "linear-rnn"
state = ["h"]
input = "x"
description = "a linear RNN: h_t = U h_{t-1} + W x_t + b, so J_t = U"

[equations]
a = "U @ h + W @ x + b"
h_new = "a"

[update]
h = "h_new"
"""


def test_linear_map_has_the_log_moduli_of_its_eigenvalues(tmp_path: Path) -> None:
    # J_t = U = V diag(10^l) V^-1 for every t: the exponents are l exactly (reference: the
    # eigenvalues we built U from), the frame converges geometrically (gaps >= 0.3 decades,
    # transient 50 steps: error ~10^-15); log10|det U| = sum(l) (reference: the same).
    path = tmp_path / "linear.toml"
    path.write_text(LINEAR)
    cell = load_cell_file(path)
    logs = np.array([0.2, -0.1, -0.4, -0.9])
    rng = np.random.default_rng(3)
    V = rng.standard_normal((4, 4))
    runs = []
    for seed in range(2):
        r = np.random.default_rng(seed)
        params = {
            "U": V @ np.diag(10.0**logs) @ np.linalg.inv(V),
            "W": r.standard_normal((4, 2)),
            "b": r.standard_normal(4),
        }
        runs.append((params, make_inputs("gaussian", 300, 2, 2, r)))
    s = lyap.experiment_lyapunov(cell, runs)
    assert s is not None and s.complete and s.state_size == 4 and s.sequences == 2
    assert np.abs(s.exponents - logs).max() < 1e-10
    assert np.allclose(s.stderr, 0.0, atol=1e-10)  # a constant map: every block agrees
    # D_KY = 1 + 0.2 / |-0.1| ... partial sums 0.2, 0.1, -0.3: j = 2, 2 + 0.1/0.4 (by hand)
    assert abs(s.kaplan_yorke - 2.25) < 1e-9
    assert abs(s.entropy_rate - 0.2) < 1e-10 and not s.entropy_rate_lower_bound
    assert abs(s.entropy_rate_nats - 0.2 * math.log(10)) < 1e-10
    assert s.log10_det_mean is not None and abs(s.log10_det_mean - logs.sum()) < 1e-12
    assert s.det_passes is True and abs(s.det_residual) < 1e-12  # type: ignore[arg-type]


def _tanh_reference(params: dict, x: np.ndarray, transient: int) -> tuple[np.ndarray, float]:
    """The tanh RNN's exponents and mean log10|det J_t| written out independently: the
    forward pass by hand, J_t = diag(1 - h_t^2) W_hh (PyTorch's nn.RNN), a direct QR per step
    and numpy.linalg.slogdet."""
    T, B, _ = x.shape
    n = params["W_hh"].shape[0]
    h = np.zeros((B, n))
    Q = np.broadcast_to(np.eye(n), (B, n, n)).copy()
    logs, dets = [], []
    for t in range(T):
        h = np.tanh(
            x[t] @ params["W_ih"].T + params["b_ih"] + h @ params["W_hh"].T + params["b_hh"]
        )
        J = (1 - h**2)[:, :, None] * params["W_hh"][None]
        Q, R = np.linalg.qr(J @ Q)
        if t >= transient:
            logs.append(np.log10(np.abs(np.diagonal(R, axis1=1, axis2=2))))
            dets.append(np.linalg.slogdet(J)[1] / math.log(10))
    lam = np.sort(np.mean(logs, axis=0), axis=-1)[:, ::-1].mean(axis=0)
    return lam, float(np.mean(dets))


def test_tanh_rnn_against_an_independent_forward_qr() -> None:
    cell = get_cell("rnn")
    runs = []
    for seed in range(3):
        r = np.random.default_rng(seed)
        p = initialise(cell, 5, 2, Init(scheme="gaussian", sigma_w=1.6), r)
        runs.append((p, make_inputs("gaussian", 120, 2, 2, r)))
    s = lyap.experiment_lyapunov(cell, runs, sequences=1)
    assert s is not None and s.transient == 20 and s.steps == 100 and s.sequences == 3
    # the reference on the same sequences (the first of each seed), stacked as one batch
    lam_ref, det_ref = [], []
    for p, x in runs:
        lam, det = _tanh_reference(p, x[:, :1], 20)
        lam_ref.append(lam)
        det_ref.append(det)
    # same arithmetic up to the order of operations: 1e-10 decades per step
    assert np.abs(s.exponents - np.mean(lam_ref, axis=0)).max() < 1e-10
    assert abs(s.log10_det_mean - np.mean(det_ref)) < 1e-10  # type: ignore[operator]
    assert s.det_passes is True


def test_chunks_and_a_partial_spectrum(monkeypatch: pytest.MonkeyPatch) -> None:
    cell = get_cell("lstm")
    r = np.random.default_rng(2)
    runs = [(initialise(cell, 3, 2, Init(scheme="gaussian", sigma_w=4.0), r), None)]
    runs = [(runs[0][0], make_inputs("gaussian", 90, 1, 2, r))]
    whole = lyap.experiment_lyapunov(cell, runs)
    monkeypatch.setattr(lyap, "CHUNK_BYTES", 8 * 6 * 6 * 7)  # chunks of 7 steps
    chunked = lyap.experiment_lyapunov(cell, runs)
    assert whole is not None and chunked is not None
    # the same Jacobians in the same order: bitwise the same numbers
    assert np.array_equal(whole.exponents, chunked.exponents)
    assert whole.det_residual == chunked.det_residual
    part = lyap.experiment_lyapunov(cell, runs, max_state=2)
    assert part is not None and part.count == 2 and not part.complete
    assert part.exponent_sum is None and part.det_passes is None and part.log10_det_mean is None
    # the leading exponents do not depend on the frame's size (to 5 standard errors)
    assert np.all(np.abs(part.exponents - whole.exponents[:2]) < 5 * whole.stderr[:2] + 1e-3)


def test_lower_bounds_when_the_spectrum_is_cut() -> None:
    # an expanding linear map seen through 2 of its 3 exponents: D_KY >= 2, entropy >= sum
    J = np.broadcast_to(np.diag(10.0 ** np.array([0.3, 0.2, -1.0])), (60, 1, 3, 3))
    d = lyap.lyapunov_diagnostics(J, 2, blocks=3)
    assert d.kaplan_yorke == 2.0 and d.kaplan_yorke_lower_bound
    assert d.det_residual is None


def test_singular_jacobians_give_minus_infinity_not_nan() -> None:
    # rnn-relu: units that are off make J_t singular (rank = units on), so the product's
    # trailing exponents are exactly -inf; the QR sees some of them as rounding noise
    # (|R_ii| <= m u ||J_t Q||_F at a step: flagged unresolved), the det check does not apply
    # (both sides -inf), and nothing is NaN where it is shown
    cell = get_cell("rnn-relu")
    r = np.random.default_rng(0)
    p = initialise(cell, 8, 2, Init(scheme="gaussian", sigma_w=1.0), r)
    s = lyap.experiment_lyapunov(cell, [(p, make_inputs("gaussian", 60, 1, 2, r))])
    assert s is not None and s.singular_steps > 0
    ok = s.resolved_mask
    assert np.isfinite(s.exponents[0]) and ok[0]
    assert np.isneginf(s.exponents[-1]) and not ok[-1]
    # a finite but unresolved exponent: rank lost at some step, the QR kept rounding noise
    assert np.any(np.isfinite(s.exponents) & ~ok)
    assert np.all(ok[: int(np.argmin(ok))])  # resolved ones lead, unresolved ones follow
    assert s.exponent_sum == -math.inf and s.log10_det_mean is None and s.det_passes is None
    back = LyapunovSummary.from_dict(json.loads(dumps(s.to_dict())), Where("experiment"))
    assert np.array_equal(back.exponents, s.exponents)  # -inf survives JSON (as null)
    assert np.array_equal(back.resolved_mask, ok)
    assert back.exponent_sum == -math.inf


def test_summary_round_trip_and_bad_files() -> None:
    s = LyapunovSummary(
        exponents=np.array([0.01, -0.2]),
        stderr=np.array([0.001, 0.002]),
        state_size=2,
        kaplan_yorke=1.05,
        kaplan_yorke_stderr=0.01,
        kaplan_yorke_lower_bound=False,
        entropy_rate=0.01,
        entropy_rate_nats=0.01 * math.log(10),
        entropy_rate_lower_bound=False,
        exponent_sum=-0.19,
        log10_det_mean=-0.19,
        det_residual=0.0,
        det_tol=1e-8,
        det_passes=True,
        singular_steps=0,
        sequences=3,
        steps=250,
        transient=50,
        blocks=10,
        block_steps=25,
    )
    d = json.loads(dumps(s.to_dict()))
    back = LyapunovSummary.from_dict(d, Where("experiment"))
    assert back.to_dict() == s.to_dict()
    with pytest.raises(ResultError, match="stderr"):
        LyapunovSummary.from_dict({**d, "stderr": [0.1]}, Where("experiment"))
    with pytest.raises(ResultError, match="state_size"):
        LyapunovSummary.from_dict({**d, "state_size": 1}, Where("experiment"))
    with pytest.raises(ResultError, match="resolved"):
        LyapunovSummary.from_dict({**d, "resolved": [True]}, Where("experiment"))
    old = {k: v for k, v in d.items() if k != "resolved"}  # a file without the flags
    assert LyapunovSummary.from_dict(old, Where("experiment")).resolved_mask.all()


# ---- the report --------------------------------------------------------------------------------

TINY = {
    "name": "tiny lyapunov",
    "cells": ["rnn", "rnn-relu", "lstm-nofg"],
    "hidden_size": 8,
    "input_size": 2,
    "steps": 90,
    "batch": 2,
    "seeds": [0, 1],
    "quantities": {"lyapunov": 3},
}


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exp = run_experiment(ExperimentConfig.from_dict(TINY), progress=False, cards=False)
    out = tmp_path_factory.mktemp("lyap") / "report"
    return build_report(exp, None, None, out, formats=("svg",))


def test_report_section_table_and_data_file(tiny_report: Path) -> None:
    exp = ExperimentResult.from_dict(load_json(tiny_report / "data" / "experiment.json"))
    md = (tiny_report / "report.md").read_text(encoding="utf-8")
    page = (tiny_report / "index.html").read_text(encoding="utf-8")
    assert "### Lyapunov diagnostics" in md and 'id="lyapunov-diagnostics"' in page
    # after the decay table, before the figures
    assert md.index("## Decay rates") < md.index("### Lyapunov diagnostics") < md.index("## Fig")
    table = (tiny_report / "data" / "lyapunov.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(table.splitlines()))
    head = rows[0]
    assert [r[0] for r in rows[1:]] == ["rnn", "rnn-relu", "lstm-nofg"]
    for row in rows[1:]:
        s = exp.cells[row[0]].lyapunov
        assert s is not None
        got = dict(zip(head, row, strict=True))
        # the CSV holds the result's own numbers (repr round trip: exact)
        assert float(got["lambda_1"]) == s.exponents[0]
        assert float(got["kaplan_yorke"]) == s.kaplan_yorke
        assert float(got["entropy_rate_nats"]) == s.entropy_rate_nats
        m = 16 if row[0] == "lstm-nofg" else 8  # [h; c] for the LSTM
        assert int(got["state_size"]) == m and int(got["exponents_computed"]) == m
        # the table shows lambda_1 with its standard error, to 4 decimals
        lam = f"{s.exponents[0]:+.4f}".replace("-", "\u2212")
        assert f"| {row[0]} | {lam} \u00b1 " in md
    relu = dict(zip(head, rows[2], strict=True))
    assert relu["lambda_5"] == "-inf" and relu["det_passes"] == ""  # check does not apply
    rnn = exp.cells["rnn"].lyapunov
    assert rnn is not None and rnn.det_passes is True and abs(rnn.det_residual) < 1e-8  # type: ignore[arg-type]
    assert "| passes |" in md and "n/a (det J\\_t = 0 at" in md
    assert '<span class="holds">passes</span>' in page


def test_report_cites_what_the_section_cites(tiny_report: Path) -> None:
    page = (tiny_report / "index.html").read_text(encoding="utf-8")
    md = (tiny_report / "report.md").read_text(encoding="utf-8")
    bib = (tiny_report / "data" / "references.bib").read_text(encoding="utf-8")
    section = md[md.index("### Lyapunov diagnostics") : md.index("## Fig")]
    refs = md[md.index("## References") :]
    for key, cited in (
        ("benettin1980", "Benettin et al. 1980"),
        ("kaplan1979", "Kaplan & Yorke 1979"),
        ("eckmann1985", "Eckmann & Ruelle 1985"),
        ("flyvbjerg1989", "Flyvbjerg & Petersen 1989"),
    ):
        assert cited.replace("&", "&amp;") in section  # cited in the text ...
        assert text(key).split(",")[0].replace("&", "&amp;") in refs  # ... and listed
        assert f"{{{key}," in bib
        assert text(key).split(" (")[0].replace("&", "&amp;") in page


def test_spectrum_figure_has_two_standard_error_bars(tiny_report: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from gradflow import plots
    from gradflow.plots.spectra import ERRORBAR_GID

    exp = ExperimentResult.from_dict(load_json(tiny_report / "data" / "experiment.json"))
    ax = plots.plot_lyapunov(exp, Figure().add_subplot(), cells=["rnn"])
    bars = [c for c in ax.collections if c.get_gid() == ERRORBAR_GID]
    assert len(bars) == 1
    segs = bars[0].get_segments()
    # reference: the mean over runs +- 2 standard errors of the runs' exponents, in decades
    # (numpy here, from the saved nats); drawn in float64: 1e-12
    lam = np.asarray(exp.cells["rnn"].lyapunov_exponents) / math.log(10)
    mean = lam.mean(axis=0)
    se = lam.std(axis=0, ddof=1) / math.sqrt(lam.shape[0])
    assert len(segs) == lam.shape[1]
    lo = np.array([s[:, 1].min() for s in segs])
    hi = np.array([s[:, 1].max() for s in segs])
    assert np.allclose(lo, mean - 2 * se, rtol=0, atol=1e-12)
    assert np.allclose(hi, mean + 2 * se, rtol=0, atol=1e-12)
    assert all(t.get_text() != "_nolegend_" for t in ax.get_legend().get_texts())


def test_forward_qr_and_the_engines_backward_chain_agree(tiny_report: Path) -> None:
    # two estimates of lambda_1 from different computations: the diagnostics' forward QR on
    # the first sequence of each seed (after a transient) and the engine's backward QR on
    # every run (saved in nats). Reference: each other; tolerance 5 combined standard errors
    # plus 0.005 decades per step for the finite windows (T = 90, 75 steps after the
    # transient); measured differences 0.0008 (rnn) and 0.0005 (lstm-nofg, s.e. 0.0011)
    exp = ExperimentResult.from_dict(load_json(tiny_report / "data" / "experiment.json"))
    for name in ("rnn", "lstm-nofg"):
        s = exp.cells[name].lyapunov
        top = exp.cells[name].largest_lyapunov()
        assert s is not None and top is not None
        tol = 5 * math.hypot(float(s.stderr[0]), top[1]) + 0.005
        assert abs(s.exponents[0] - top[0]) < tol, (name, s.exponents[0], top)
