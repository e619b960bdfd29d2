r"""Built-in configurations: the report's comparison, a small phase diagram, and the claims.

Each function returns a fresh, validated config; nothing runs at import. Sizes are chosen so
the defaults finish quickly on a 2-core laptop (the numbers in ``docs/experiments.md``).

Examples:
    >>> cfg = default_report_config()
    >>> len(cfg.cells), cfg.hidden_size, cfg.steps
    (11, 32, 300)
    >>> len(list(default_sweep_config().points()))
    40
"""

from __future__ import annotations

from ..cells.catalogue import CLASSIC, FAMILIES
from ..errors import UsageError
from ..initialisers import Init
from .experiment import ExperimentConfig, InputsConfig, Quantities
from .meanfield import tanh_fixed_point
from .sweep import SweepConfig

#: Lags the claims compare norms at (claim b).
CLAIM_LAGS = (100, 1000)
#: Weight draws per claim: (quick, full). Every interval is over at least 10 draws.
CLAIM_DRAWS = (10, 20)
#: Values of sigma_w the explosion thresholds are bracketed on (claim c), per cell.
EXPLOSION_GRID = {"lstm": (3.0, 4.0, 5.0, 6.0), "rnn": (1.5, 2.0, 2.5, 3.0)}
#: Hidden sizes the explosion threshold is measured at (claim c): (quick, full).
EXPLOSION_WIDTHS = ((32, 64), (32, 128))
#: GRU update-gate biases (claim d).
UPDATE_BIASES = (-2.0, 0.0, 2.0, 4.0)
#: LSTM forget-gate biases compared with the RNN (claim b): (quick, full); 1 is
#: [jozefowicz2015]'s advice.
FORGET_BIASES = ((1.0,), (1.0, 3.0))
#: Gain of the exploding LSTM of the clipping analysis (claim f), above every threshold of c.
CLIP_SIGMA_W = 8.0
#: The clip threshold on the global 2-norm of dL/dθ (claim f): PyTorch's common max_norm.
CLIP_THRESHOLD = 1.0


#: What ``gradflow report --cells`` may show: the classic cells, or every catalogue cell.
REPORT_CELLS = ("classic", "all")


def default_report_config(cells: str = "classic") -> ExperimentConfig:
    """The comparison ``gradflow report`` runs: the catalogue's cells, PyTorch's default init
    with a forget-gate bias of 1 for the cells that have a forget gate ([jozefowicz2015]'s
    advice; it applies to no other cell), so the LSTM's additive cell path shows.

    11 cells x 10 weight draws (seeds 0-9) x 1 sequence, ``n = 32``, ``T = 300``, Gaussian
    inputs (the draws analysed in one grouped engine call per cell, ``analyze(draws=10)``;
    ten draws so that every interval of the report is over at least 10 weight draws); paths (with
    the expansion by multiplicative factors at lags 10 and 30, :mod:`gradflow.analysis.exact`),
    certified singular values at lags 10 and 100, 8 Lyapunov exponents and the annealed mean
    field of every cell. About 29 s of CPU time (one core; beside a busy process), of which the
    grouped engine calls take about 15 s and the certified spectra and Lyapunov diagnostics
    (first 5 draws, ``EXACT_DRAWS``), the expansion and the mean fields the rest; the LSTM
    family takes two thirds of it. The cells are grouped by family in the report's figures.
    ``cells="all"`` (``gradflow report --cells all``) adds the 13 cells of 2018-2026
    (``FAMILIES`` in :mod:`gradflow.cells.catalogue`: 25 cells in six families), about 40 s
    more CPU time; the default leaves them out so that the report stays a short run.

    References:
        [paszke2019] for the default initialisation; [jozefowicz2015] for the forget bias.
    """
    if cells not in REPORT_CELLS:
        raise UsageError(f"cells must be one of {', '.join(REPORT_CELLS)}, got {cells!r}")
    chosen = CLASSIC if cells == "classic" else tuple(n for f in FAMILIES.values() for n in f)
    return ExperimentConfig(
        name="Gradient flow through the recurrent cell catalogue",
        cells=chosen,
        hidden_size=32,
        input_size=8,
        steps=300,
        batch=1,
        seeds=tuple(range(10)),
        init=Init(scheme="torch", forget_bias=1.0),
        inputs=InputsConfig("gaussian", 1.0),
        quantities=Quantities(paths=True, singular_lags=(10, 100), lyapunov=8),
    )


def default_sweep_config() -> SweepConfig:
    """A phase diagram: recurrent gain ``sigma_w`` (Gaussian init) against the cell.

    8 gains from 0.5 to 4 times the 5 cells rnn, lstm, lstm-cifg, gru, mgu: 40 points of
    ``n = 16``, ``T = 100``, 2 sequences of unit-variance Gaussian inputs, one seed (about
    2.5 s with 2 processes). The decay rate rises with the gain for every cell; the inputs
    push the units into saturation, so the tanh RNN crosses zero well above ``sigma_w = 1``
    (the input-free mean-field edge of chaos).

    References:
        [poole2016], [chen2018minimalrnn].
    """
    base = ExperimentConfig(
        name="phase-diagram",
        cells=("rnn",),
        hidden_size=16,
        input_size=4,
        steps=100,
        batch=2,
        seeds=(0,),
        init=Init(scheme="gaussian"),
        lag_window=(10, 100),
    )
    gains = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
    return SweepConfig(
        base, (("cell", ("rnn", "lstm", "lstm-cifg", "gru", "mgu")), ("init.sigma_w", gains))
    )


def claim_configs(quick: bool = True) -> dict[str, ExperimentConfig]:
    """The experiments behind claims (a)-(d) and (f) (claim e needs no run).

    Every claim runs one sequence per weight draw on ``seeds = 0..D-1`` (``D`` from
    :data:`CLAIM_DRAWS`: 10 quick, 20 full), so its intervals are over ``D`` draws. ``quick``
    keeps every run small (``n`` 16-64, short ``T``); otherwise ``n`` 64-128. Keys: ``a``,
    ``a-tight`` (the Pascanu bound where it is tight); ``b-rnn`` (PyTorch's init), ``b-edge``
    (Gaussian weights at the tanh RNN's mean-field critical gain with these inputs),
    ``b-1``/``b-3`` (LSTM, forget bias 1 and, full only, 3); ``c-lstm``/``c-rnn`` (``sigma_w``
    and ``n`` set per point); ``d`` (update bias set per value); ``f`` (the exploding LSTM of
    the clipping analysis, 8 sequences per draw).
    """
    seeds = tuple(range(CLAIM_DRAWS[0] if quick else CLAIM_DRAWS[1]))
    n_big, n_small = (64, 16) if quick else (128, 64)
    gauss = InputsConfig("gaussian", 1.0)
    base = ExperimentConfig(
        name="claim",
        cells=("rnn",),
        hidden_size=n_small,
        input_size=8,
        steps=200,
        batch=1,
        seeds=seeds,
        init=Init(scheme="gaussian"),
        inputs=gauss,
    )
    gaussian = Init(scheme="gaussian")
    lo, hi = 0.5, 4.0  # chi(sigma_w) rises through 1 between these (unit-variance inputs)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        chi = tanh_fixed_point(mid, gaussian.sigma_u, gaussian.sigma_b, gauss.scale**2)[1]
        lo, hi = (mid, hi) if chi < 1.0 else (lo, mid)
    edge = round(0.5 * (lo + hi), 4)
    T_b = max(CLAIM_LAGS)
    out = {
        # (a) tanh RNN, Gaussian weights with sigma_w = 0.8: chi < 1, clearly vanishing.
        "a": base.replace(
            name="claim-a-meanfield",
            hidden_size=n_big,
            init=Init(scheme="gaussian", sigma_w=0.8),
            lag_window=(20, 200),
        ),
        # (a) the Pascanu bound where it is tight: orthogonal W, zero inputs and biases, so
        # h_t = 0, J_t = W and ||W^k|| = 1 = the bound at every lag (rounding decides).
        "a-tight": base.replace(
            name="claim-a-pascanu-tight",
            hidden_size=n_small,
            steps=100,
            init=Init(scheme="orthogonal"),
            inputs=InputsConfig("zeros"),
            lag_window=(10, 100),
        ),
        "b-rnn": base.replace(
            name="claim-b-rnn-torch", steps=T_b, init=Init(), lag_window=(100, T_b)
        ),
        "b-edge": base.replace(
            name="claim-b-rnn-edge-of-chaos",
            steps=T_b,
            init=Init(scheme="gaussian", sigma_w=edge),
            lag_window=(100, T_b),
        ),
        # (c) Gaussian weights: the gain at which the decay rate crosses zero.
        "c-lstm": base.replace(
            name="claim-c-lstm-explodes",
            cells=("lstm",),
            steps=60 if quick else 200,
            lag_window=(10, 60) if quick else (20, 200),
        ),
        # (d) GRU with PyTorch's init and a fixed update-gate bias; paths on.
        "d": base.replace(
            name="claim-d-gru-leak",
            cells=("gru",),
            steps=60 if quick else 500,
            init=Init(update_bias=0.0),
            quantities=Quantities(paths=True),
            lag_window=(10, 60) if quick else (50, 500),
        ),
        # (f) an exploding LSTM (sigma_w above every threshold of claim c), clipped.
        "f": base.replace(
            name="claim-f-clipping",
            cells=("lstm",),
            steps=60 if quick else 200,
            batch=8,
            init=Init(scheme="gaussian", sigma_w=CLIP_SIGMA_W),
            lag_window=(10, 60) if quick else (20, 200),
        ),
    }
    out["c-rnn"] = out["c-lstm"].replace(name="claim-c-rnn-explodes", cells=("rnn",))
    # (b) the LSTM at each forget bias (the RNNs above are the same runs for every bias).
    for fb in FORGET_BIASES[0 if quick else 1]:
        out[f"b-{fb:g}"] = base.replace(
            name=f"claim-b-forget-bias-{fb:g}",
            cells=("lstm",),
            steps=T_b,
            init=Init(forget_bias=fb),
            quantities=Quantities(paths=True),
            lag_window=(100, T_b),
        )
    return out
