"""The result of analysing trained checkpoints at initialisation and after training.

:func:`gradflow.analysis.trained.analyze_trained` returns one :class:`TrainedResult`: for each
network (a PyTorch model trained at development time on a memory task, shipped as package data
in ``gradflow/data/trained/``) its training provenance and, for every view of its Jacobian
product (``joint``; for a stack also each layer's own chain ``l0``, ``l1`` ...) and every stage
(``init``, ``trained``), a :class:`StageSummary`: the band over the batch of
``log10 ||ds_T/ds_{T-k}||_2`` for every lag and its fitted decay rate. A stacked network also
carries its whole :class:`~gradflow.results.StackResult` per stage (cross-layer reach, memory
curves, the lag split of the weight gradient).

Since schema version 2 the result also holds :class:`TrainedClaim` s: claims (a)-(f) of
:mod:`gradflow.analysis.claims` measured on the one-layer checkpoints at initialisation and
after training (:mod:`gradflow.analysis.trained_claims`), each number a :class:`ClaimMeasure`
with its per-sequence values and its interval over the input sequences. Version 1 files are
still read (no claims).

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
class ClaimMeasure:
    """One number of a claim, for one network, at both stages.

    Attributes:
        network: the checkpoint (``rnn``, ``lstm``, ``gru``).
        quantity: a key (``rate``, ``log10_additive_share_lag50`` ...).
        label: the quantity in words, for a table. units: its units (may be empty).
        values: ``{stage: (S,) per-sequence values}``; one value for an exact number.
        intervals: ``{stage: interval dict}`` (``estimate``, ``low``, ``high``, ``level``,
            ``draws``, ``statistic``, ``resamples``) of the statistic over the *input
            sequences* through the one network of that stage (not over weight draws);
            empty for an exact number.
    """

    network: str
    quantity: str
    label: str
    units: str
    values: Mapping[str, np.ndarray]
    intervals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        """Whether the number is exact (no interval: e.g. a parameter count)."""
        return not self.intervals

    def estimate(self, stage: str) -> float:
        """The number at ``stage``: the interval's estimate, or the exact value."""
        if stage in self.intervals:
            return float(self.intervals[stage]["estimate"])
        return float(self.values[stage][0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "quantity": self.quantity,
            "label": self.label,
            "units": self.units,
            "values": dict(self.values),
            "intervals": {s: dict(v) for s, v in self.intervals.items()},
        }

    @classmethod
    def from_dict(cls, data: Any, where: Where) -> ClaimMeasure:
        d = mapping(data, where)
        values = {}
        wv = where.at("values")
        for stage, v in mapping(get(d, "values", where), wv).items():
            if stage not in STAGES:
                raise wv.fail(f"unknown stage {stage!r}; expected init or trained")
            values[str(stage)] = as_array(v, wv.at(stage), 1)
        intervals = {}
        wi = where.at("intervals")
        for stage, iv in mapping(d.get("intervals") or {}, wi).items():
            if stage not in values:
                raise wi.fail(f"an interval for stage {stage!r} without its values")
            iv = mapping(iv, wi.at(stage))
            for key in ("estimate", "low", "high"):
                if as_float(get(iv, key, wi.at(stage)), wi.at(stage).at(key)) is None:
                    raise wi.at(stage).at(key).fail("expected a finite number")
            intervals[str(stage)] = dict(iv)
        return cls(
            network=as_str(get(d, "network", where), where.at("network")),
            quantity=as_str(get(d, "quantity", where), where.at("quantity")),
            label=as_str(get(d, "label", where), where.at("label")),
            units=as_str(d.get("units", ""), where.at("units")),
            values=values,
            intervals=intervals,
        )


@dataclass(frozen=True, eq=False)
class TrainedClaim:
    """One claim of :mod:`gradflow.analysis.claims`, measured at initialisation and after
    training.

    Attributes:
        id: the claim's letter (``a`` ... ``f``). title: the claim in a few words.
        statement: what the claim says (the textbook statement, shortened).
        says: what the measurements say, in one or two sentences worded from the data
            (including where training contradicts the statement).
        measures: the numbers, one :class:`ClaimMeasure` per (network, quantity).
    """

    id: str
    title: str
    statement: str
    says: str
    measures: tuple[ClaimMeasure, ...]

    def measure(self, network: str, quantity: str) -> ClaimMeasure:
        """The measure of ``quantity`` for ``network``."""
        for m in self.measures:
            if m.network == network and m.quantity == quantity:
                return m
        raise KeyError((network, quantity))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "statement": self.statement,
            "says": self.says,
            "measures": [m.to_dict() for m in self.measures],
        }

    @classmethod
    def from_dict(cls, data: Any, where: Where) -> TrainedClaim:
        d = mapping(data, where)
        wm = where.at("measures")
        return cls(
            id=as_str(get(d, "id", where), where.at("id")),
            title=as_str(get(d, "title", where), where.at("title")),
            statement=as_str(get(d, "statement", where), where.at("statement")),
            says=as_str(get(d, "says", where), where.at("says")),
            measures=tuple(
                ClaimMeasure.from_dict(m, wm.at(i))
                for i, m in enumerate(as_list(get(d, "measures", where), wm))
            ),
        )


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
        claims: claims (a)-(f) at initialisation and after training (empty when not run, or
            read from a version 1 file).
        claim_inputs: how the claims' input sequences were made (generator, steps, batch,
            seed, fitted window); empty without claims.
        additive_share: ``{network: {stage: Band}}``, the band over the claims' sequences of
            ``log10 ||S_0||_F / ||P_k||_F`` for every lag ``k = 0..T`` (the share of the
            product the additive path alone carries; gated networks with claims only).
    """

    kind = "trained_models"
    schema_version = 2
    reads_versions = (1,)

    task: Mapping[str, Any]
    inputs: Mapping[str, Any]
    lags: tuple[int, ...]
    networks: tuple[TrainedNetwork, ...]
    provenance: Mapping[str, Any] = field(default_factory=dict)
    claims: tuple[TrainedClaim, ...] = ()
    claim_inputs: Mapping[str, Any] = field(default_factory=dict)
    additive_share: Mapping[str, Mapping[str, Band]] = field(default_factory=dict)

    def claim(self, cid: str) -> TrainedClaim:
        """The claim with letter ``cid``."""
        for c in self.claims:
            if c.id == cid:
                return c
        raise KeyError(cid)

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
            "claims": [c.to_dict() for c in self.claims],
            "claim_inputs": dict(self.claim_inputs),
            "additive_share": {
                n: {s: b.to_dict() for s, b in st.items()} for n, st in self.additive_share.items()
            },
        }

    @classmethod
    def _from_data(cls, data: Mapping[str, Any], version: int, where: Where) -> TrainedResult:
        wn = where.at("networks")
        wl = where.at("lags")
        wc = where.at("claims")
        # version 1 had no claims
        claims = as_list(data.get("claims") or [], wc) if version >= 2 else []
        return cls(
            task=dict(mapping(get(data, "task", where), where.at("task"))),
            inputs=dict(mapping(get(data, "inputs", where), where.at("inputs"))),
            lags=tuple(as_int(k, wl) for k in as_list(get(data, "lags", where), wl)),
            networks=tuple(
                TrainedNetwork.from_dict(n, wn.at(i))
                for i, n in enumerate(as_list(get(data, "networks", where), wn))
            ),
            provenance=dict(mapping(data.get("provenance") or {}, where.at("provenance"))),
            claims=tuple(TrainedClaim.from_dict(c, wc.at(i)) for i, c in enumerate(claims)),
            claim_inputs=dict(mapping(data.get("claim_inputs") or {}, where.at("claim_inputs"))),
            additive_share=_share_bands(
                data.get("additive_share") or {}, where.at("additive_share")
            ),
        )


def _share_bands(data: Any, where: Where) -> dict[str, dict[str, Band]]:
    out: dict[str, dict[str, Band]] = {}
    for net, stages in mapping(data, where).items():
        out[str(net)] = {}
        for stage, band in mapping(stages, where.at(net)).items():
            if stage not in STAGES:
                raise where.at(net).fail(f"unknown stage {stage!r}; expected init or trained")
            out[str(net)][str(stage)] = Band.from_dict(band, where.at(net).at(stage))
    return out
