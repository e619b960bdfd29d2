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

from ..cells.catalogue import CLASSIC
from ..initialisers import Init
from .experiment import ExperimentConfig, InputsConfig, Quantities
from .sweep import SweepConfig

#: Lags the claims compare norms at (claim b).
CLAIM_LAGS = (100, 1000)
#: Values of sigma_w the LSTM explosion threshold is bracketed on (claim c).
EXPLOSION_GRID = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
#: GRU update-gate biases (claim d).
UPDATE_BIASES = (-2.0, 0.0, 2.0, 4.0)
#: LSTM forget-gate biases compared with the RNN (claim b); 1 is [jozefowicz2015]'s advice.
FORGET_BIASES = (1.0, 3.0)


def default_report_config() -> ExperimentConfig:
    """The comparison ``gradflow report`` runs: every catalogue cell, PyTorch's default init
    with a forget-gate bias of 1 for the cells that have a forget gate ([jozefowicz2015]'s
    advice; it applies to no other cell), so the LSTM's additive cell path shows.

    11 cells x 3 seeds x 4 sequences, ``n = 32``, ``T = 300``, Gaussian inputs; paths (with
    the expansion by multiplicative factors at lags 10 and 30, :mod:`gradflow.analysis.exact`),
    certified singular values at lags 10 and 100, 8 Lyapunov exponents and the annealed mean
    field of every cell. About 23 s of CPU time (one core, best of 3), of which the certified
    spectra, the expansion and the mean field take about 6.7 s; the LSTM family takes two
    thirds of it. The cells are grouped by family in the report's figures; the 2018-2026 cells
    (``FAMILIES`` in :mod:`gradflow.cells.catalogue`) are left out of this default: they would
    add about 32 s of CPU time.

    References:
        [paszke2019] for the default initialisation; [jozefowicz2015] for the forget bias.
    """
    return ExperimentConfig(
        name="Gradient flow through the recurrent cell catalogue",
        cells=CLASSIC,  # the 11 classic cells; the 2018-2026 families: grouped report pending
        hidden_size=32,
        input_size=8,
        steps=300,
        batch=4,
        seeds=(0, 1, 2),
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
    """The experiments behind claims (a)-(d) (claim e needs no run).

    ``quick`` keeps every run small (``n`` 32-64, one or two seeds); otherwise ``n = 128``
    and more seeds. Keys: ``a``, ``b-1``/``b-3`` (forget bias 1 and 3), ``c`` (sigma_w is set
    per grid point) and ``d`` (the update bias is set per value).
    """
    n_big, seeds = (64, (0, 1)) if quick else (128, (0, 1, 2, 3))
    n_small = 32 if quick else 64
    gauss = InputsConfig("gaussian", 1.0)
    out = {
        # (a) tanh RNN, Gaussian weights with sigma_w = 0.8: chi < 1, clearly vanishing.
        "a": ExperimentConfig(
            name="claim-a-meanfield",
            cells=("rnn",),
            hidden_size=n_big,
            input_size=8,
            steps=200,
            batch=4,
            seeds=seeds,
            init=Init(scheme="gaussian", sigma_w=0.8),
            inputs=gauss,
            lag_window=(20, 200),
        ),
        # (c) LSTM, Gaussian weights: the gain at which the decay rate crosses zero.
        "c": ExperimentConfig(
            name="claim-c-lstm-explodes",
            cells=("lstm",),
            hidden_size=n_small,
            input_size=8,
            steps=200,
            batch=2,
            seeds=seeds[:1] if quick else seeds,
            init=Init(scheme="gaussian"),
            inputs=gauss,
            lag_window=(20, 200),
        ),
        # (d) GRU with PyTorch's init and a fixed update-gate bias; paths on.
        "d": ExperimentConfig(
            name="claim-d-gru-leak",
            cells=("gru",),
            hidden_size=n_small,
            input_size=8,
            steps=500,
            batch=2,
            seeds=seeds[:1] if quick else seeds,
            init=Init(update_bias=0.0),
            inputs=gauss,
            quantities=Quantities(paths=True),
            lag_window=(50, 500),
        ),
    }
    # (b) RNN against LSTM, PyTorch's init; the forget bias applies to the LSTM only, so the
    # RNN (the same runs for every bias) is in the first config only.
    for fb in FORGET_BIASES:
        cells = ("rnn", "lstm") if fb == FORGET_BIASES[0] else ("lstm",)
        out[f"b-{fb:g}"] = ExperimentConfig(
            name=f"claim-b-forget-bias-{fb:g}",
            cells=cells,
            hidden_size=n_small,
            input_size=8,
            steps=max(CLAIM_LAGS),
            batch=2,
            seeds=seeds[:1] if quick else seeds,
            init=Init(forget_bias=fb),
            inputs=gauss,
            quantities=Quantities(paths=True),
            lag_window=(100, 1000),
        )
    return out
