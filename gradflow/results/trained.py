"""The result of analysing trained checkpoints at initialisation and after training.

:func:`gradflow.analysis.trained.analyze_trained` returns one :class:`TrainedResult`: for each
network (a PyTorch model trained at development time on a memory task, shipped as package data
in ``gradflow/data/trained/``) its training provenance and, for every view of its Jacobian
product (``joint``; for a stack also each layer's own chain ``l0``, ``l1`` ...) and every stage
(``init``, ``trained``), a :class:`StageSummary`: the band over the batch of
``log10 ||ds_T/ds_{T-k}||_2`` for every lag and its fitted decay rate. A stacked network also
carries its whole :class:`~gradflow.results.StackResult` per stage (cross-layer reach, memory
curves, the lag split of the weight gradient).

Examples:
    >>> import numpy as np
    >>> from gradflow.results import Band, DecayRate
    >>> band = Band((0.1, 0.5, 0.9), *(np.array([0.0, -1.0]) for _ in range(3)))
    >>> rate = DecayRate(-1.0, -1.0, -1.0, (0.1, 0.5, 0.9), (0, 1))
    >>> net = TrainedNetwork("rnn", "rnn", 4, 1, {}, np.array([0.2, 0.1]), 0.1, 1 / 6,
    ...                      {"joint": {"init": StageSummary(band, rate)}})
    >>> r = TrainedResult({"name": "adding problem"}, {"steps": 1}, (1,), (net,))
    >>> TrainedResult.from_dict(r.to_dict()).networks[0].views["joint"]["init"].rate.median
    -1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .band import Band
from .base import Result, Where, as_array, as_float, as_int, as_list, as_str, get, mapping
from .experiment import DecayRate
from .stack import StackResult

#: The stages of a checkpoint, in order.
STAGES = ("init", "trained")


@dataclass(frozen=True, eq=False)
class StageSummary:
    """One view of one network at one stage.

    Attributes:
        norms: band over the batch of ``log10 ||ds_T/ds_{T-k}||_2`` for ``k = 0..T``.
        rate: its fitted decay rate (decades per step) with the band over the batch.
    """

    norms: Band
    rate: DecayRate

    def to_dict(self) -> dict[str, Any]:
        return {"norms": self.norms.to_dict(), "rate": self.rate.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, where: Where) -> StageSummary:
        d = mapping(data, where)
        norms = Band.from_dict(get(d, "norms", where), where.at("norms"))
        rate = DecayRate.from_dict(get(d, "rate", where), where.at("rate"), (0.1, 0.9))
        return cls(norms, rate)


@dataclass(frozen=True, eq=False)
class TrainedNetwork:
    """One checkpoint pair (initialisation and trained) and what its analysis found.

    Attributes:
        name: the checkpoint's name (``rnn``, ``lstm``, ``gru``, ``lstm2``).
        cell: the catalogue cell. hidden_size: ``n``. layers: the number of layers.
        config: the training configuration (the checkpoint's JSON, without the curve).
        training_loss: the training loss per optimiser step.
        test_mse: the final test mean squared error. baseline_mse: that of always
            predicting the target's mean (1/6 for the adding problem).
        views: ``{view: {stage: StageSummary}}``; view ``joint`` is the whole state's product,
            ``l0``, ``l1`` ... each layer's own chain (stacks only).
        stack: ``{stage: StackResult}`` for a stacked network, else empty.
    """

    name: str
    cell: str
    hidden_size: int
    layers: int
    config: Mapping[str, Any]
    training_loss: np.ndarray
    test_mse: float
    baseline_mse: float
    views: Mapping[str, Mapping[str, StageSummary]]
    stack: Mapping[str, StackResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cell": self.cell,
            "hidden_size": self.hidden_size,
            "layers": self.layers,
            "config": dict(self.config),
            "training_loss": self.training_loss,
            "test_mse": self.test_mse,
            "baseline_mse": self.baseline_mse,
            "views": {v: {s: x.to_dict() for s, x in st.items()} for v, st in self.views.items()},
            "stack": {s: r.to_dict() for s, r in self.stack.items()},
        }

    @classmethod
    def from_dict(cls, data: Any, where: Where) -> TrainedNetwork:
        d = mapping(data, where)
        views: dict[str, dict[str, StageSummary]] = {}
        wv = where.at("views")
        for view, stages in mapping(get(d, "views", where), wv).items():
            views[str(view)] = {}
            for stage, summary in mapping(stages, wv.at(view)).items():
                if stage not in STAGES:
                    raise wv.at(view).fail(f"unknown stage {stage!r}; expected init or trained")
                views[str(view)][stage] = StageSummary.from_dict(summary, wv.at(view).at(stage))
        stack = {}
        for stage, res in mapping(d.get("stack") or {}, where.at("stack")).items():
            if stage not in STAGES:
                raise where.at("stack").fail(f"unknown stage {stage!r}")
            stack[str(stage)] = StackResult.from_dict(res)
        mse = {k: as_float(get(d, k, where), where.at(k)) for k in ("test_mse", "baseline_mse")}
        for k, v in mse.items():
            if v is None:
                raise where.at(k).fail("expected a finite number")
        return cls(
            name=as_str(get(d, "name", where), where.at("name")),
            cell=as_str(get(d, "cell", where), where.at("cell")),
            hidden_size=as_int(get(d, "hidden_size", where), where.at("hidden_size"), 1),
            layers=as_int(get(d, "layers", where), where.at("layers"), 1),
            config=dict(mapping(d.get("config") or {}, where.at("config"))),
            training_loss=as_array(get(d, "training_loss", where), where.at("training_loss"), 1),
            test_mse=float(mse["test_mse"]),  # type: ignore[arg-type]
            baseline_mse=float(mse["baseline_mse"]),  # type: ignore[arg-type]
            views=views,
            stack=stack,
        )


@dataclass(frozen=True, eq=False)
class TrainedResult(Result):
    """Trained networks, each analysed at initialisation and after training.

    Attributes:
        task: the task the networks were trained on (name, sequence length, references),
            from the checkpoints' provenance.
        inputs: how the analysis inputs were made (generator, steps, batch, seed).
        lags: the lags a report tabulates (e.g. 10, 50, 100).
        networks: one :class:`TrainedNetwork` each, in order.
        provenance: the checkpoints' ``provenance.json`` (script, torch version, seeds).
    """

    kind = "trained_models"
    schema_version = 1

    task: Mapping[str, Any]
    inputs: Mapping[str, Any]
    lags: tuple[int, ...]
    networks: tuple[TrainedNetwork, ...]
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def network(self, name: str) -> TrainedNetwork:
        """The network called ``name``."""
        for net in self.networks:
            if net.name == name:
                return net
        raise KeyError(name)

    def _data(self) -> dict[str, Any]:
        return {
            "task": dict(self.task),
            "inputs": dict(self.inputs),
            "lags": list(self.lags),
            "provenance": dict(self.provenance),
            "networks": [n.to_dict() for n in self.networks],
        }

    @classmethod
    def _from_data(cls, data: Mapping[str, Any], version: int, where: Where) -> TrainedResult:
        wn = where.at("networks")
        wl = where.at("lags")
        return cls(
            task=dict(mapping(get(data, "task", where), where.at("task"))),
            inputs=dict(mapping(get(data, "inputs", where), where.at("inputs"))),
            lags=tuple(as_int(k, wl) for k in as_list(get(data, "lags", where), wl)),
            networks=tuple(
                TrainedNetwork.from_dict(n, wn.at(i))
                for i, n in enumerate(as_list(get(data, "networks", where), wn))
            ),
            provenance=dict(mapping(data.get("provenance") or {}, where.at("provenance"))),
        )
