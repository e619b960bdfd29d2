"""The report's "Trained networks" section: figures, table, data files, from a TrainedResult.

Everything here is drawn or copied from a :class:`~gradflow.results.TrainedResult`
(:func:`gradflow.analysis.trained.analyze_trained`); nothing is recomputed. Every number the
section shows is in ``data/trained.json`` (the whole result), ``data/trained_networks.csv``
(the decay table) and ``data/trained_claims.csv`` (claims (a)-(f) at initialisation and after
training: each number with its interval over the input sequences).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..plots.panels import small_multiples
from ..plots.stack import (
    plot_cross_layer_reach,
    plot_lag_gradient,
    plot_layer_decay,
    plot_memory_curves,
    plot_tail_fraction,
)
from ..plots.trained import (
    STACK_VIEWS,
    plot_additive_share,
    plot_stack_stages,
    plot_trained_norms,
    plot_training_curves,
)
from ..results import TrainedResult, dumps
from ..results.trained import STAGES, ClaimMeasure
from .figures import ReportFigure
from .html import format_number

#: Citation keys of the section: the task and the lag split.
CITATIONS = ("hochreiter1997", "le2015irnn", "pascanu2013")
#: What each whole-model view of :data:`~gradflow.plots.trained.STACK_VIEWS` shows, for the
#: caption (the views and their order are that one list's).
_VIEW_TEXT = {
    plot_layer_decay: "each layer's own chain log10 ||ds^l_T/ds^l_{T-k}||_2",
    plot_cross_layer_reach: (
        "the cross-layer reach log10 ||ds^L_T/ds^l_{T-k}||_2, how much of the top layer's "
        "state at T reaches layer l's state k steps back (lag 0 of the lower layer is an "
        "exact zero, not drawn)"
    ),
    plot_memory_curves: (
        "the memory curves log10 ||dS_T/dx_{T-k}||_2 of the joint state and of each layer"
    ),
    plot_lag_gradient: (
        "log10 ||G_k|| per parameter tensor, the part of the gradient of L = sum h_T that "
        "travelled k steps (Pascanu et al. 2013, sec. 2; one colour per layer)"
    ),
    plot_tail_fraction: (
        "the fraction ||sum_{j>k} G_j|| / ||dL/dθ|| of each tensor's gradient that comes from "
        "lags beyond k"
    ),
}


def stack_rows_text() -> str:
    """The rows of the stacked network's figure in words, in the order of
    :data:`~gradflow.plots.trained.STACK_VIEWS`; a view without a description is an error."""
    missing = [v.__name__ for v in STACK_VIEWS if v not in _VIEW_TEXT]
    if missing:
        raise KeyError(f"no caption text for the stack view(s) {', '.join(missing)}")
    return "; ".join(f"row {i + 1}: {_VIEW_TEXT[v]}" for i, v in enumerate(STACK_VIEWS))


def _stack_name(result: TrainedResult) -> str | None:
    return next((n.name for n in result.networks if n.stack), None)


def _inputs_text(result: TrainedResult) -> str:
    i = result.inputs
    return (
        f"{i.get('batch')} sequences of the {result.task.get('name', 'task')} of length "
        f"{i.get('steps')} (seed {i.get('seed')})"
    )


def trained_figures(result: TrainedResult) -> list[ReportFigure]:
    """The section's figures: norms at initialisation and after training per network, the
    training curves, and the whole-model views of the stacked network at both stages."""
    names = [n.name for n in result.networks]
    inputs = _inputs_text(result)
    figs = [
        ReportFigure(
            "trained_norms",
            "Trained networks: initialisation against training",
            "log10 of the spectral norm of the Jacobian product against the lag k, at "
            "initialisation (dashed) and after training (solid), median over "
            f"{inputs} with the 10%\u201390% band; one panel per network (a stack: its joint "
            "state).",
            lambda f: small_multiples(
                f,
                names,
                lambda ax, name, first: plot_trained_norms(result, ax, network=name, legend=first),
            ),
            panels=len(names),
        ),
        ReportFigure(
            "trained_training",
            "Training curves",
            "Training loss (mean squared error) per optimiser step of every network; dotted: "
            "the baseline of always predicting the target's mean.",
            lambda f: plot_training_curves(result, f.add_subplot()),
        ),
    ]
    if result.additive_share:
        figs.append(
            ReportFigure(
                "trained_additive_share",
                "The additive path's share, at initialisation and after training",
                "log10 ||S_0||_F / ||P_k||_F against the lag k for the gated networks: the "
                "share of the Jacobian product P_k that the pure additive chain S_0 (the "
                "j = 0 term of P_k = sum_j S_j, no weight matrix) carries, at initialisation "
                "(dashed) and after training (solid), median over the claims' "
                f"{_claims_inputs_text(result)} with the 10%\u201390% band (claim b).",
                lambda f: plot_additive_share(result, f.add_subplot()),
            )
        )
    stack = _stack_name(result)
    if stack is not None:
        rows = stack_rows_text()
        figs.append(
            ReportFigure(
                "trained_stack",
                f"{stack}: the whole model at initialisation and after training",
                f"The stacked network {stack}, left at initialisation, right after training "
                f"({rows}); median over {inputs} with the 10%\u201390% band.",
                lambda f: plot_stack_stages(result, f, STACK_VIEWS, network=stack),
                # sized as rows of small multiples: three panel widths a row
                panels=3 * len(STACK_VIEWS),
            )
        )
    return figs


def _rows(result: TrainedResult) -> list[dict[str, Any]]:
    rows = []
    for net in result.networks:
        for view, stages in net.views.items():
            row: dict[str, Any] = {
                "network": net.name,
                "view": view,
                "cell": net.cell,
                "hidden_size": net.hidden_size,
                "test_mse": net.test_mse,
                "baseline_mse": net.baseline_mse,
            }
            for stage in STAGES:
                s = stages.get(stage)
                row[f"{stage}_rate"] = s.rate.median if s else None
                row[f"{stage}_rate_low"] = s.rate.low if s else None
                row[f"{stage}_rate_high"] = s.rate.high if s else None
                row[f"{stage}_at"] = [
                    float(s.norms.median[k]) if s and k < len(s.norms.median) else None
                    for k in result.lags
                ]
            rows.append(row)
    return rows


#: Columns of ``trained_claims.csv`` after the claim and network: per stage the estimate and
#: its interval over the sequences (empty for an exact number).
CLAIM_HEADER = ["claim", "network", "quantity", "label", "units", "exact", "statistic"] + [
    f"{stage}_{part}" for stage in STAGES for part in ("estimate", "low", "high", "sequences")
]


def _claim_line(cid: str, m: ClaimMeasure) -> list[Any]:
    stat = next(iter(m.intervals.values()), {}).get("statistic", "") if m.intervals else ""
    line: list[Any] = [cid, m.network, m.quantity, m.label, m.units, m.exact, stat]
    for stage in STAGES:
        iv = m.intervals.get(stage)
        if iv is None:
            line += [m.estimate(stage), None, None, len(m.values[stage])]
        else:
            line += [iv["estimate"], iv["low"], iv["high"], iv["draws"]]
    return line


def _interval_text(m: ClaimMeasure, stage: str) -> str:
    if m.exact:
        v = m.estimate(stage)
        return str(int(v)) if float(v).is_integer() else format_number(v, 4, False)
    iv = m.intervals[stage]
    signed = m.quantity not in ("z_mean", "clipped")
    digits = 3

    def f(x: Any) -> str:
        return format_number(float(x), digits, signed)

    return f"{f(iv['estimate'])} [{f(iv['low'])}, {f(iv['high'])}]"


def claim_rows(result: TrainedResult) -> list[dict[str, Any]]:
    """One row per (claim, network, quantity): the claim's letter on its first row only."""
    rows = []
    for claim in result.claims:
        for i, m in enumerate(claim.measures):
            rows.append(
                {
                    "claim": f"({claim.id})" if i == 0 else "",
                    "network": m.network,
                    "label": m.label + (f" ({m.units})" if m.units else ""),
                    "init": _interval_text(m, "init"),
                    "trained": _interval_text(m, "trained"),
                }
            )
    return rows


def _claims_inputs_text(result: TrainedResult) -> str:
    i = result.claim_inputs
    batch, shared, seed = int(i.get("batch", 0)), int(i.get("shared", 0)), int(i.get("seed", 0))
    text = f"{batch} sequences of the {result.task.get('name', 'task')} of length {i.get('steps')}"
    if 0 < shared < batch:
        return text + (
            f" (the {shared} of the decay table and {batch - shared} more, seed {seed + 1})"
        )
    return text + (" (those of the decay table)" if shared else f" (seed {seed})")


def write_trained_tables(result: TrainedResult, data_dir: Path) -> list[Path]:
    """``trained.json`` (the whole result), ``trained_networks.csv`` (the decay table) and,
    with claims, ``trained_claims.csv``."""
    atomic_write(data_dir / "trained.json", dumps(result.to_dict(), compact=True), parents=True)
    header = ["network", "view", "cell", "hidden_size", "test_mse", "baseline_mse"]
    for stage in STAGES:
        header += [f"{stage}_decay_rate", f"{stage}_decay_rate_q10", f"{stage}_decay_rate_q90"]
        header += [f"{stage}_log10_norm_lag{k}" for k in result.lags]
    table: list[list[Any]] = [header]
    for r in _rows(result):
        line = [r[k] for k in header[:6]]
        for stage in STAGES:
            line += [r[f"{stage}_rate"], r[f"{stage}_rate_low"], r[f"{stage}_rate_high"]]
            line += r[f"{stage}_at"]
        table.append(line)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(table)
    atomic_write(data_dir / "trained_networks.csv", buf.getvalue())
    written = [data_dir / "trained.json", data_dir / "trained_networks.csv"]
    if result.claims:
        lines: list[list[Any]] = [CLAIM_HEADER]
        lines += [_claim_line(c.id, m) for c in result.claims for m in c.measures]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(lines)
        atomic_write(data_dir / "trained_claims.csv", buf.getvalue())
        written.append(data_dir / "trained_claims.csv")
    return written


def trained_context(
    result: TrainedResult, figures: list[dict[str, Any]], first_figure: int
) -> dict[str, Any]:
    """What the templates show of the section (``figures`` as drawn by the report)."""
    prov = result.provenance
    seeds = prov.get("seeds") or {}
    return {
        "task": result.task.get("name", ""),
        "steps": result.task.get("sequence_length"),
        "inputs": _inputs_text(result),
        "lags": list(result.lags),
        "script": prov.get("script", ""),
        "torch_version": prov.get("torch_version", ""),
        "seeds": ", ".join(f"{k} {v}" for k, v in seeds.items()),
        "networks": [
            {
                "name": n.name,
                "cell": n.cell,
                "hidden_size": n.hidden_size,
                "layers": n.layers,
                "steps": n.config.get("training_steps"),
                "test_mse": n.test_mse,
                "baseline_mse": n.baseline_mse,
                "ratio": n.test_mse / n.baseline_mse,
            }
            for n in result.networks
        ],
        "rows": _rows(result),
        "claims": [
            {"id": c.id, "title": c.title, "statement": c.statement, "says": c.says}
            for c in result.claims
        ],
        "claim_rows": claim_rows(result),
        "claim_inputs": _claims_inputs_text(result) if result.claims else "",
        "figures": figures,
        "first_figure": first_figure,
        "stack": _stack_name(result),
    }
