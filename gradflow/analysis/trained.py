r"""Trained networks at initialisation and after training: the shipped checkpoints, analysed.

``gradflow/data/trained/`` holds small PyTorch checkpoints trained at development time by
``tests/reference/make_trained.py`` on the adding problem (:mod:`gradflow.analysis.adding`,
``T = 100``): a 1-layer tanh RNN, LSTM and GRU with ``n = 64`` and a 2-layer LSTM with
``n = 32``, each saved at initialisation and after training (float32 ``state_dict`` under the
prefix ``rnn.``, the read-out beside it), with the training curve, the test error and the
files' SHA-256 in ``provenance.json`` and one JSON per network. gradflow reads them with its
own loader (:func:`gradflow.formats.load_model`) and analyses each on inputs of the task's
distribution (:func:`~gradflow.analysis.adding.adding_problem`, NumPy, seeded): the single
layers with :func:`gradflow.engine.analyze`, the stack with
:func:`gradflow.stack.analyze_stack` (per-layer chains, cross-layer reach, memory curves and
the weight gradient of ``L = sum h_T`` split by lag). The analysis is exact for the stored
float32 numbers (carried in float64).

Examples:
    >>> sorted(CHECKPOINTS)
    ['gru', 'lstm', 'lstm2', 'rnn']
    >>> checkpoint_path("rnn", "init").name
    'rnn_init.safetensors'

References:
    [hochreiter1997] Hochreiter & Schmidhuber (1997), Long short-term memory.
    [le2015irnn] Le, Jaitly & Hinton (2015), A simple way to initialize recurrent networks of
    rectified linear units.
    [pascanu2013] Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent
    neural networks, sec. 2 (the weight gradient split by lag).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..engine import analyze
from ..errors import UsageError
from ..formats.select import analyze_model
from ..results import Band, StackResult
from ..results.trained import STAGES, StageSummary, TrainedClaim, TrainedNetwork, TrainedResult
from .adding import adding_problem
from .checkpoints import CHECKPOINTS as CHECKPOINTS
from .checkpoints import TRAINED_DIR as TRAINED_DIR
from .checkpoints import checkpoint_config as checkpoint_config
from .checkpoints import checkpoint_path as checkpoint_path
from .checkpoints import load_checkpoint as load_checkpoint
from .checkpoints import provenance as provenance
from .checkpoints import verify_checkpoint as verify_checkpoint
from .decay import QUANTILES, summarise
from .trained_claims import CLAIM_BATCH, NETWORKS, trained_claims

#: The lags a report tabulates.
LAGS = (10, 50, 100)
#: Defaults of the analysis: short sequences, a small batch (a few seconds in all).
STEPS, BATCH, SEED = 100, 4, 7


def _summary(norms: np.ndarray, window: tuple[int, int]) -> StageSummary:
    return StageSummary(Band.of(norms, QUANTILES, axis=1), summarise(norms, window, QUANTILES))


def analyze_checkpoint(
    name: str, stage: str, inputs: np.ndarray
) -> tuple[dict[str, np.ndarray], StackResult | None]:
    """Analyse one checkpoint on ``inputs (T, B, 2)``.

    Returns:
        ``({view: log10 spectral norms (T + 1, B)}, stack result or None)``: view ``joint``
        (the whole state's product), and for a stack ``l0``, ``l1`` ... (each layer's chain).
        The stack result keeps the lag split of the weight gradient of ``L = sum h_T``
        (``log10_lag_gradient_norm``, ``lag_tail_fraction``) but not the gradient itself.
    """
    model = load_checkpoint(name, stage)
    if len(model.layers) == 1:
        direction = model.layers[0].directions[0]
        res = analyze(model.layers[0].cell, direction.params, inputs, hidden=False)
        return {"joint": res.log10_spectral_norm}, None
    # the per-sequence parameter gradient itself (1 MB of JSON) is dropped: its lag split,
    # which the report shows, is kept
    stack = replace(
        analyze_model(model, inputs, gradient="last", hidden=False), parameter_gradient={}
    )
    assert stack.log10_spectral_norm is not None and stack.layer_log10_spectral_norm is not None
    views = {"joint": stack.log10_spectral_norm}
    views.update(zip(stack.layer_names, stack.layer_log10_spectral_norm, strict=True))
    return views, stack


def analyze_trained(
    names: Sequence[str] = CHECKPOINTS,
    *,
    steps: int = STEPS,
    batch: int = BATCH,
    seed: int = SEED,
    lags: Sequence[int] = LAGS,
    claims: bool | None = None,
    claim_batch: int = CLAIM_BATCH,
) -> TrainedResult:
    """Analyse the shipped checkpoints at initialisation and after training.

    Args:
        names: which checkpoints (default all, :data:`CHECKPOINTS`).
        steps, batch, seed: the analysis inputs, ``adding_problem(steps, batch, seed)``.
        lags: the lags a report tabulates (each at most ``steps``).
        claims: also measure claims (a)-(f) on the one-layer networks
            (:func:`gradflow.analysis.trained_claims.trained_claims`, on
            ``claim_batch`` sequences that start with this analysis' ``batch``, see
            :func:`~gradflow.analysis.trained_claims.claim_sequences`); ``None``: when
            ``names`` holds all of them. The one-layer networks' norms then come from the
            claims' engine runs (the same numbers, run once).
        claim_batch: the number of input sequences the claims' intervals are over.

    Returns:
        One :class:`~gradflow.results.TrainedResult`.

    Raises:
        UsageError: an unknown checkpoint, or a lag beyond ``steps``.
        WeightsError: a checkpoint that is not the file its provenance describes.
    """
    started = time.perf_counter()
    if any(not 1 <= k <= steps for k in lags):
        raise UsageError(f"lags must lie in 1..{steps}, got {list(lags)}")
    x, _ = adding_problem(steps, batch, seed)
    window = (max(1, steps // 10), steps)
    prov = provenance()
    if claims is None:
        claims = set(NETWORKS) <= set(names)
    found: tuple[TrainedClaim, ...] = ()
    claim_inputs: dict[str, Any] = {}
    shared: dict[tuple[str, str], np.ndarray] = {}
    share: dict[str, dict[str, Band]] = {}
    if claims:
        # one engine run per one-layer checkpoint serves both: the claims' sequences start
        # with this analysis' own
        found, claim_inputs, data = trained_claims(
            steps=steps, batch=claim_batch, seed=seed, shared=batch
        )
        shared = {key: d["log10_spectral_norm"][:, :batch] for key, d in data.items()}
        for (name, stage), d in data.items():
            if "log10_additive_share" in d:
                band = Band.of(d["log10_additive_share"], QUANTILES, axis=1)
                share.setdefault(name, {})[stage] = band
    networks = []
    for name in names:
        cfg = checkpoint_config(name)
        views: dict[str, dict[str, StageSummary]] = {}
        stacks: dict[str, StackResult] = {}
        for stage in STAGES:
            if (name, stage) in shared:
                norms, stack = {"joint": shared[(name, stage)]}, None
            else:
                norms, stack = analyze_checkpoint(name, stage, x)
            for view, arr in norms.items():
                views.setdefault(view, {})[stage] = _summary(arr, window)
            if stack is not None:
                stacks[stage] = stack
        networks.append(
            TrainedNetwork(
                name=name,
                cell=str(cfg["cell"]),
                hidden_size=int(cfg["hidden_size"]),
                layers=int(cfg["num_layers"]),
                config={k: v for k, v in cfg.items() if k != "training_loss"},
                training_loss=np.asarray(cfg["training_loss"], dtype=float),
                test_mse=float(cfg["test_mse"]),
                baseline_mse=float(cfg["baseline_mse"]),
                views=views,
                stack=stacks,
            )
        )
    return TrainedResult(
        task=dict(prov["task"]),
        inputs={
            "generator": "gradflow.analysis.adding.adding_problem",
            "steps": steps,
            "batch": batch,
            "seed": seed,
        },
        lags=tuple(int(k) for k in lags),
        networks=tuple(networks),
        provenance={k: v for k, v in prov.items() if k != "models"},
        claims=found,
        claim_inputs=claim_inputs,
        additive_share=share,
        run={"seconds": time.perf_counter() - started},
    )
