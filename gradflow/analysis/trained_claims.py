r"""Claims (a)-(f) at initialisation and after training, on the shipped checkpoints.

The claims of :mod:`gradflow.analysis.claims` are measured over random weight draws. Here each
is looked at on the one-layer networks of :mod:`gradflow.analysis.trained` (tanh RNN, LSTM and
GRU, ``n = 64``, trained on the adding problem), once at initialisation and once after
training, on the same ``S`` input sequences of the task (per-sequence numbers from
:func:`gradflow.analysis.trained_measures.measure_checkpoint`):

(a) the tanh RNN's decay rate and the Pascanu bound's slack (bound minus norm) at lag ``T``;
(b) each network's ``log10 ||ds_T/ds_{T-k}||_2`` at lag ``T``, and the share of the gated
    networks' product that the additive path alone carries, ``||S_0||_F / ||P_k||_F``;
(c) the largest Lyapunov exponent (vanishing, at the edge, or exploding);
(d) the GRU's update gate: the mean of ``z_t``, the decay rate of the ``diag(z)`` path and of
    the full product;
(e) the parameter counts of the checkpoints (exact, from the files' tensor shapes);
(f) the norm of the task loss's weight gradient, its long-lag share
    ``||sum_{j>k} G_j|| / ||dL/dθ||`` and the fraction of sequences a clip at ``c = 1``
    would rescale.

**Uncertainty.** There is one network per stage: every interval is a 95 % percentile
bootstrap ([efron1993]) over the *input sequences* through that one network, not over weight
draws; it says how much a number varies with the input, not with training's randomness.

Every sentence of a claim's "what it says" is worded from the numbers: which way a number
moved, whether the intervals overlap, and whether the claim's statement still holds.

References:
    [pascanu2013], [hochreiter1997], [cho2014], [efron1993].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ..cells import get_cell
from ..errors import UsageError
from ..results.trained import STAGES, ClaimMeasure, TrainedClaim
from .adding import adding_problem
from .checkpoints import checkpoint_config
from .claimkit import ci_text
from .trained_measures import CLIP, measure_checkpoint, parameter_counts
from .uncertainty import bootstrap_interval

#: The networks the claims look at (one layer each).
NETWORKS = ("rnn", "lstm", "gru")
#: Input sequences of the claims (the interval's sample), their seed and the short lags.
CLAIM_BATCH, CLAIM_SEED = 6, 7
SHORT_LAGS = (10, 50)
#: |rate| below which a network counts as "at the edge" (decades per step).
EDGE = 0.01

Data = Mapping[tuple[str, str], Mapping[str, np.ndarray]]


def _measure(
    data: Data, name: str, quantity: str, label: str, units: str, stat: str = "median"
) -> ClaimMeasure:
    values = {s: np.asarray(data[(name, s)][quantity], dtype=float) for s in STAGES}
    ivs = {s: bootstrap_interval(v, stat).to_dict() for s, v in values.items()}
    return ClaimMeasure(name, quantity, label, units, values, ivs)


def _iv(m: ClaimMeasure, stage: str, fmt: str = "{:+.3f}") -> str:
    return ci_text(dict(m.intervals[stage]), fmt)


def _disjoint(m: ClaimMeasure) -> bool:
    a, b = (m.intervals[s] for s in STAGES)
    return bool(a["high"] < b["low"] or b["high"] < a["low"])


def _regime(m: ClaimMeasure, stage: str) -> str:
    iv = m.intervals[stage]
    if iv["low"] > 0:
        return "exploding" if iv["low"] > EDGE else "just above zero"
    if iv["high"] < -EDGE:
        return "vanishing"
    return "at the edge"


def _names(networks: Sequence[str]) -> list[str]:
    return [f"the {n.upper()}" for n in networks]


def claim_a(data: Data, steps: int) -> TrainedClaim:
    """(a): the tanh RNN's decay rate; the Pascanu bound's slack at lag ``steps``."""
    rate = _measure(data, "rnn", "rate", "decay rate", "decades per step")
    slack = _measure(
        data, "rnn", f"pascanu_slack_lag{steps}", f"Pascanu slack at k = {steps}", "decades"
    )
    viol = {s: int(np.sum(data[("rnn", s)]["pascanu_violations"])) for s in STAGES}
    i, t = rate.estimate("init"), rate.estimate("trained")
    moved = "steepened" if t < i else "flattened"
    holds = all(rate.intervals[s]["high"] < 0 for s in STAGES)
    says = (
        f"Training {moved} the tanh RNN's decay from {_iv(rate, 'init')} to "
        f"{_iv(rate, 'trained')} decades per step"
        + (" (intervals disjoint)" if _disjoint(rate) else " (intervals overlap)")
        + (
            ": its gradient still vanishes geometrically."
            if holds
            else ": the geometric vanishing does not hold after training."
        )
        + " The Pascanu bound holds ("
        + (
            "no violation at either stage"
            if not any(viol.values())
            else f"{viol['init']} and {viol['trained']} violations"
        )
        + ") but lies "
        f"{_iv(slack, 'init', '{:.1f}')} and {_iv(slack, 'trained', '{:.1f}')} decades above "
        f"the norm at k = {steps}: it says nothing about the decay."
    )
    return TrainedClaim(
        "a",
        "The vanilla RNN's gradient vanishes geometrically",
        "log10 ||ds_T/ds_{T-k}|| of a tanh RNN falls linearly in k; the Pascanu bound lies "
        "above every norm.",
        says,
        (rate, slack),
    )


def claim_b(data: Data, steps: int, short: Sequence[int] = SHORT_LAGS) -> TrainedClaim:
    """(b): the norm at lag ``steps`` of every network; the gated networks' additive share."""
    norms = [
        _measure(data, n, f"log10_norm_lag{steps}", f"log10 norm at k = {steps}", "")
        for n in NETWORKS
    ]
    shares = [
        _measure(
            data,
            n,
            f"log10_additive_share_lag{k}",
            f"additive share log10 ||S_0||/||P_k|| at k = {k}",
            "",
        )
        for n in ("lstm", "gru")
        for k in short
    ]
    by = {m.network: m for m in norms}
    rnn = by["rnn"]
    parts = []
    for stage in STAGES:
        gaps = {n: by[n].estimate(stage) - rnn.estimate(stage) for n in ("lstm", "gru")}
        above = [n for n in gaps if by[n].intervals[stage]["low"] > rnn.intervals[stage]["high"]]
        parts.append(
            f"{'at initialisation' if stage == 'init' else 'after training'} the LSTM keeps "
            f"{by['lstm'].estimate(stage):+.1f} and the GRU {by['gru'].estimate(stage):+.1f} "
            f"decades at k = {steps} against the RNN's {rnn.estimate(stage):+.1f} ("
            + ", ".join(f"{n} {gaps[n]:+.1f}" for n in gaps)
            + (
                " decades; "
                + ("both intervals above the RNN's" if len(above) == 2 else "not all above it")
                + ")"
            )
        )
    k = short[-1]
    sh = {n: next(m for m in shares if m.network == n and m.quantity.endswith(f"lag{k}"))
          for n in ("lstm", "gru")}  # fmt: skip
    lead = " and ".join(
        f"{by[n].estimate('init') - rnn.estimate('init'):+.1f}" for n in ("lstm", "gru")
    )
    far = all(
        by[n].estimate("trained") - rnn.estimate("trained") > 10 for n in ("lstm", "gru")
    ) and all(by[n].estimate("init") - rnn.estimate("init") < 10 for n in ("lstm", "gru"))
    joined = "; ".join(parts)
    says = (
        joined[:1].upper()
        + joined[1:]
        + f". The additive path alone carries 10^{sh['lstm'].estimate('init'):.1f} "
        f"(init) and 10^{sh['lstm'].estimate('trained'):.1f} (trained) of the LSTM's product "
        f"at k = {k}, 10^{sh['gru'].estimate('init'):.1f} and "
        f"10^{sh['gru'].estimate('trained'):.1f} of the GRU's. "
        + (
            "The gated networks keep gradients far longer only after training: at "
            f"initialisation their lead over the RNN is {lead} decades, so the additive path "
            "by itself does not keep them."
            if far
            else f"The gated networks' lead over the RNN at initialisation: {lead} decades."
        )
    )
    return TrainedClaim(
        "b",
        "The gated cells' additive path keeps gradients far longer",
        "The LSTM's diag(f) (the GRU's diag(z)) carries the gradient without a weight "
        "matrix, so ||ds_T/ds_{T-k}|| stays many decades above a tanh RNN's.",
        says,
        (*norms, *shares),
    )


def claim_c(data: Data) -> TrainedClaim:
    """(c): the largest Lyapunov exponent of each network, at both stages."""
    lyap = [
        _measure(data, n, "lyapunov", "largest Lyapunov exponent", "decades per step")
        for n in NETWORKS
    ]
    parts = [
        f"the {m.network.upper() if m.network != 'rnn' else 'RNN'} from {_iv(m, 'init')} "
        f"({_regime(m, 'init')}) to {_iv(m, 'trained')} ({_regime(m, 'trained')})"
        for m in lyap
    ]
    edge = [m.network for m in lyap if _regime(m, "trained") != "vanishing"]
    exploding = [m.network for m in lyap if _regime(m, "trained") == "exploding"]
    says = (
        "Training moved the largest Lyapunov exponent (decades per step) of "
        + "; ".join(parts)
        + ". "
        + (
            f"Training took {' and '.join(_names(edge))} to the edge of chaos (|lambda_1| within "
            f"{EDGE:g} of 0 or just above), not beyond it"
            if edge and not exploding
            else f"{' and '.join(_names(exploding))} "
            f"{'explode' if len(exploding) > 1 else 'explodes'} after training"
            if exploding
            else "No network moved towards the edge"
        )
        + (
            "; the LSTM's explosion with large weights is not where training takes it here."
            if "lstm" not in exploding
            else "."
        )
    )
    return TrainedClaim(
        "c",
        "Vanishing, edge or exploding: the largest Lyapunov exponent",
        "An LSTM can still explode when its recurrent weights are large; a network at the "
        "edge (exponent ~ 0) neither vanishes nor explodes.",
        says,
        tuple(lyap),
    )


def claim_d(data: Data) -> TrainedClaim:
    """(d): the GRU's update gate: mean ``z``, the ``diag(z)`` path's rate and the full rate."""
    z = _measure(data, "gru", "z_mean", "mean update gate z", "")
    add = _measure(data, "gru", "additive_rate", "decay rate of the diag(z) path", "dec/step")
    full = _measure(data, "gru", "rate", "decay rate of the full product", "dec/step")
    opened = z.estimate("trained") > z.estimate("init") and _disjoint(z)
    says = (
        f"Training moved the mean of z from {_iv(z, 'init', '{:.3f}')} to "
        f"{_iv(z, 'trained', '{:.3f}')}, the "
        f"diag(z) path's rate from {_iv(add, 'init')} to {_iv(add, 'trained')} and the full "
        f"product's from {_iv(full, 'init')} to {_iv(full, 'trained')} decades per step: "
        + (
            "the trained GRU keeps more of its old state, and the leaky shortcut is what "
            "carries its gradient."
            if opened and add.estimate("trained") > add.estimate("init")
            else "training did not open the shortcut."
        )
    )
    return TrainedClaim(
        "d",
        "The GRU's update gate is a leaky, highway-like shortcut",
        "diag(z) is a weight-free term of the GRU's Jacobian; a larger z keeps more of the old "
        "state and slows the decay.",
        says,
        (z, add, full),
    )


def claim_e() -> TrainedClaim:
    """(e): parameter counts from the checkpoints' tensor shapes against the cells' formula."""
    measures = []
    counts = {}
    size = (0, 0)
    for name in NETWORKS:
        cfg = checkpoint_config(name)
        per = {s: parameter_counts(name, s)["recurrent"] for s in STAGES}
        formula = get_cell(cfg["cell"]).parameter_count(cfg["hidden_size"], cfg["input_size"])
        if set(per.values()) != {formula}:
            raise AssertionError(f"{name}: file has {per} parameters, the cell's formula {formula}")
        counts[name] = formula
        size = (int(cfg["hidden_size"]), int(cfg["input_size"]))
        vals = {s: np.array([float(v)]) for s, v in per.items()}
        measures.append(ClaimMeasure(name, "parameters", "recurrent parameters", "", vals))
    ratio = Fraction(counts["gru"], counts["lstm"])
    measures.append(
        ClaimMeasure(
            "gru",
            "ratio_to_lstm",
            "GRU / LSTM parameters",
            "",
            {s: np.array([float(ratio)]) for s in STAGES},
        )
    )
    says = (
        f"The checkpoints' files hold {counts['gru']} (GRU) and {counts['lstm']} (LSTM) "
        f"recurrent parameters, as the cells' formulas give for n = {size[0]}, d = {size[1]}: "
        "the ratio is "
        f"{'exactly 3/4' if ratio == Fraction(3, 4) else str(ratio)} (PyTorch's two bias "
        "vectors in both); training changes values, not counts."
    )
    return TrainedClaim(
        "e",
        "A GRU has 3/4 of an LSTM's parameters",
        "3(nd + n^2 + 2n) against 4(nd + n^2 + 2n) with PyTorch's two bias vectors.",
        says,
        tuple(measures),
    )


def claim_f(data: Data, short: Sequence[int] = SHORT_LAGS) -> TrainedClaim:
    """(f): the task loss's gradient norm, its long-lag share and how often a clip bites."""
    norms = [
        _measure(data, n, "log10_gradient_norm", "log10 ||dL/dθ|| (task loss)", "")
        for n in NETWORKS
    ]
    k = short[-1]
    shares = [
        _measure(
            data, n, f"log10_long_lag_share_lag{k}", f"long-lag share log10, lags beyond {k}", ""
        )
        for n in NETWORKS
    ]
    clipped = [
        _measure(data, n, "clipped", f"fraction clipped at c = {CLIP:g}", "", "mean")
        for n in NETWORKS
    ]
    sh = {m.network: m for m in shares}
    cl = {m.network: m for m in clipped}

    def frac(stage: str) -> str:
        return ", ".join(f"{n} {cl[n].estimate(stage):.2f}" for n in NETWORKS)

    says = (
        f"Share of the gradient from lags beyond {k} (log10): the RNN "
        f"{sh['rnn'].estimate('init'):.1f} to {sh['rnn'].estimate('trained'):.1f}, the LSTM "
        f"{sh['lstm'].estimate('init'):.1f} to {sh['lstm'].estimate('trained'):.1f}, the GRU "
        f"{sh['gru'].estimate('init'):.1f} to {sh['gru'].estimate('trained'):.1f}"
        + (
            ": after training the gated networks learn from the distant marked value, the "
            "RNN's gradient never reaches it"
            if all(sh[n].estimate("trained") > -1 for n in ("lstm", "gru"))
            and sh["rnn"].estimate("trained") < -5
            else ""
        )
        + f". Fraction of sequences a clip at c = {CLIP:g} would rescale: {frac('init')} at "
        f"initialisation, {frac('trained')} after training."
    )
    return TrainedClaim(
        "f",
        "Gradient clipping and the long-lag share of the update",
        "Clipping by global norm rescales large gradients; the part of the gradient that "
        "travelled many steps is what a memory task needs.",
        says,
        (*norms, *shares, *clipped),
    )


def claim_sequences(
    steps: int, batch: int, seed: int, shared: int = 0
) -> tuple[np.ndarray, np.ndarray, str]:
    """The claims' input sequences ``(x (T, S, 2), y (S,), description)``.

    The first ``shared`` sequences are ``adding_problem(steps, shared, seed)`` (those of the
    trained-networks analysis, so one engine run serves both), the other ``batch - shared``
    are ``adding_problem(steps, batch - shared, seed + 1)``; ``batch <= shared`` takes the
    shared ones alone.
    """
    if shared <= 0:
        x, y = adding_problem(steps, batch, seed)
        return x, y, f"adding_problem({steps}, {batch}, seed {seed})"
    x, y = adding_problem(steps, shared, seed)
    if batch <= shared:
        return x, y, f"adding_problem({steps}, {shared}, seed {seed})"
    x2, y2 = adding_problem(steps, batch - shared, seed + 1)
    text = (
        f"adding_problem({steps}, {shared}, seed {seed}) followed by "
        f"adding_problem({steps}, {batch - shared}, seed {seed + 1})"
    )
    return np.concatenate([x, x2], axis=1), np.concatenate([y, y2]), text


def trained_claims(
    names: Sequence[str] = NETWORKS,
    *,
    steps: int = 100,
    batch: int = CLAIM_BATCH,
    seed: int = CLAIM_SEED,
    shared: int = 0,
) -> tuple[tuple[TrainedClaim, ...], dict[str, Any], Data]:
    """Claims (a)-(f) on the one-layer checkpoints at initialisation and after training.

    Args:
        names: the checkpoints (must be :data:`NETWORKS`: every claim compares them).
        steps, batch, seed, shared: the input sequences (:func:`claim_sequences`).

    Returns:
        ``(claims, claim_inputs, data)``: the :class:`~gradflow.results.trained.TrainedClaim`
        s, how the inputs were made, and the per-sequence measurements by
        ``(network, stage)`` (:func:`~gradflow.analysis.trained_measures.measure_checkpoint`,
        with the spectral norms of every lag under ``log10_spectral_norm``).

    Raises:
        UsageError: other networks than :data:`NETWORKS`.
    """
    if tuple(names) != NETWORKS:
        raise UsageError(f"the claims compare {', '.join(NETWORKS)}; got {list(names)}")
    x, y, made = claim_sequences(steps, batch, seed, shared)
    window = (max(1, steps // 10), steps)
    short = tuple(k for k in SHORT_LAGS if k < steps) or (steps // 2,)
    lags = (*short, steps)
    data = {
        (n, s): measure_checkpoint(n, s, x, y, window=window, lags=lags, tail_lags=short)
        for n in names
        for s in STAGES
    }
    claims = (
        claim_a(data, steps),
        claim_b(data, steps, short),
        claim_c(data),
        claim_d(data),
        claim_e(),
        claim_f(data, short),
    )
    inputs = {
        "generator": "gradflow.analysis.adding.adding_problem",
        "made": made,
        "steps": steps,
        "batch": int(x.shape[1]),
        "shared": min(shared, int(x.shape[1])),
        "seed": seed,
        "window": list(window),
        "short_lags": list(short),
        "clip_threshold": CLIP,
    }
    return claims, inputs, data
