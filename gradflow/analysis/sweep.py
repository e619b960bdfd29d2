r"""Sweeps: a grid over config fields, each point a small experiment reduced to a decay rate.

One concept, the sweep (grid, resumable points, executors and their clean shutdown), a little
over the usual length.

A sweep is an experiment config (the *base*) plus a ``[sweep]`` table whose ``axes`` name
config fields (``cell``, ``hidden_size``, ``steps``, ``init.sigma_w``, ``init.forget_bias``,
``inputs.scale`` ...) and give each a list of values, or ``{start, stop, num}`` (evenly spaced;
``log = true`` for geometric spacing). Every point of the grid is the base config with those
fields set; it runs as an experiment with one cell and is reduced to the median decay rate of
``log10 ||ds_T/ds_{T-k}||_2`` over the lag window and a regime:

* ``vanishing`` if the rate is below ``-tol``, ``exploding`` if above ``+tol``, ``preserved``
  otherwise. ``tol`` defaults to ``1e-3`` decades per step: a factor of 10 over 1000 steps.

Each point's seeds are derived from the base seeds and the point's coordinates (its parameter
values) with :class:`numpy.random.SeedSequence`, so a point's numbers do not depend on which
worker ran it, or when. Points run on any :class:`concurrent.futures.Executor`: inline
(``jobs=1``), a :class:`~concurrent.futures.ProcessPoolExecutor`, or a Dask cluster through
``distributed.Client(address).get_executor()``.

Resume: every finished point is written at once (atomically) to ``OUT/points/<key>.json``, the
key a hash of the point's full config; a re-run skips points whose file is present and valid.
The whole sweep goes to ``OUT/sweep.json`` at the end, its timings to ``OUT/run.json``.

One concept: the sweep (its grid, its points and their resumable execution on any executor);
the result type is :class:`gradflow.results.SweepResult`.

Examples:
    >>> cfg = SweepConfig.from_dict({"cells": ["rnn"], "sweep": {"axes": {
    ...     "init.sigma_w": {"start": 0.5, "stop": 1.5, "num": 3}, "hidden_size": [4, 8]}}})
    >>> [p for p in cfg.points()][:2]
    [{'init.sigma_w': 0.5, 'hidden_size': 4}, {'init.sigma_w': 0.5, 'hidden_size': 8}]
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import multiprocessing
import os
import socket
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..cost import forced, set_force
from ..errors import BackendError, ConfigError, GradflowError, NumericalError, UsageError
from ..results import SweepPoint, SweepResult, load_json, save_json
from ..shutdown import Terminated, interrupted, worker_init
from ..threads import set_worker_share, threads_per_worker
from .config import (
    CONFIG_KEYS,
    INIT_KEYS,
    ExperimentConfig,
    Progress,
    check_keys,
    checked_float,
    checked_int,
    read_toml,
)
from .run import progress_bar, run_experiment

#: Default ``tol``, in decades per step, between "preserved" and vanishing/exploding.
DEFAULT_TOL = 1e-3
MAX_POINTS = 100_000
#: Bumped when the point record changes meaning; part of each point's key.
POINT_FORMAT = 2
AXES = (
    "cell",
    "hidden_size",
    "input_size",
    "steps",
    "batch",
    *(f"init.{k}" for k in INIT_KEYS),
    "inputs.kind",
    "inputs.scale",
    "inputs.value",
)


def _axis_values(name: str, spec: Any) -> tuple[Any, ...]:
    if isinstance(spec, Mapping):
        check_keys(
            spec, ("start", "stop", "num", "log"), "the sweep config", prefix=f"sweep.axes.{name}."
        )
        try:
            start, stop, num = spec["start"], spec["stop"], spec["num"]
        except KeyError as exc:
            raise ConfigError(
                f"sweep.axes.{name} needs start, stop and num (missing {exc.args[0]})"
            ) from None
        num = checked_int(num, f"sweep.axes.{name}.num", 1, MAX_POINTS)
        log = spec.get("log", False)
        if log:
            lo = checked_float(start, f"sweep.axes.{name}.start", 0.0, open_lo=True)
            hi = checked_float(stop, f"sweep.axes.{name}.stop", 0.0, open_lo=True)
            assert lo is not None and hi is not None
            values = np.geomspace(lo, hi, num)
        else:
            lo = checked_float(start, f"sweep.axes.{name}.start")
            hi = checked_float(stop, f"sweep.axes.{name}.stop")
            assert lo is not None and hi is not None
            values = np.linspace(lo, hi, num)
        return tuple(float(v) for v in values)
    if isinstance(spec, (str, bytes)) or not isinstance(spec, (list, tuple)) or not spec:
        raise ConfigError(
            f"sweep.axes.{name} must be a non-empty list of values or a table "
            f"{{start, stop, num}}, got {spec!r}"
        )
    if len(set(map(repr, spec))) != len(spec):
        raise ConfigError(f"sweep.axes.{name} lists a value twice: {list(spec)}")
    return tuple(spec)


@dataclass(frozen=True)
class SweepConfig:
    """An experiment config and the grid of values to sweep over.

    Args:
        base: the experiment every point starts from. Several ``cells`` and no ``cell`` axis
            mean an implicit ``cell`` axis over them (first, so it varies slowest).
        axes: ``(field, values)`` pairs in grid order (the last axis varies fastest).
        tol: decades per step between ``preserved`` and ``vanishing``/``exploding``.
    """

    base: ExperimentConfig
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    tol: float = DEFAULT_TOL

    def __post_init__(self) -> None:
        axes = tuple((str(a), tuple(v)) for a, v in self.axes)
        names = [a for a, _ in axes]
        check_keys(dict.fromkeys(names), AXES, "the sweep axes", prefix="")
        if len(set(names)) != len(names):
            raise ConfigError(f"sweep axes name a field twice: {names}")
        if "cell" not in names and len(self.base.cells) > 1:
            axes = (("cell", tuple(self.base.cells)), *axes)
        if not axes:
            raise ConfigError("a sweep needs at least one axis in [sweep.axes]")
        object.__setattr__(self, "axes", axes)
        size = int(np.prod([len(v) for _, v in axes]))
        if size > MAX_POINTS:
            raise ConfigError(f"the sweep has {size} points; at most {MAX_POINTS} are allowed")
        object.__setattr__(self, "tol", checked_float(self.tol, "sweep.tol", 0.0, 10.0))
        for params in self.points():  # every point must be a valid experiment
            self.point_config(params)

    @property
    def name(self) -> str:
        return self.base.name

    def points(self) -> Iterator[dict[str, Any]]:
        """The grid points as ``{axis: value}``, last axis varying fastest."""
        names = [a for a, _ in self.axes]
        for values in itertools.product(*(v for _, v in self.axes)):
            yield dict(zip(names, values, strict=True))

    def point_config(self, params: Mapping[str, Any]) -> ExperimentConfig:
        """The experiment of one grid point: the base with ``params`` set, its own seeds.

        Seeds: ``SeedSequence([base_seed, crc32(json(params))])`` for each base seed, so they
        depend only on the point's coordinates.
        """
        data = self.base.to_dict()
        for axis, value in params.items():
            if axis == "cell":
                data["cells"] = [value]
            elif "." in axis:
                table, key = axis.split(".", 1)
                data[table][key] = value
            else:
                data[axis] = value
        coords = zlib.crc32(_canonical(params).encode("utf-8"))
        data["seeds"] = [
            int(np.random.SeedSequence([s, coords]).generate_state(1)[0]) for s in self.base.seeds
        ]
        data["quantities"] = None  # a point needs the norms only
        try:
            return ExperimentConfig.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"sweep point {_canonical(params)}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        out = self.base.to_dict()
        out["sweep"] = {"axes": {a: list(v) for a, v in self.axes}, "tol": self.tol}
        return out

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base_dir: str | os.PathLike[str] | None = None
    ) -> SweepConfig:
        """Parse an experiment config with a ``sweep`` table of ``axes`` and ``tol``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a sweep config must be a table, got {type(data).__name__}")
        check_keys(data, (*CONFIG_KEYS, "sweep"), "the sweep config")
        sweep = data.get("sweep")
        if not isinstance(sweep, Mapping):
            raise ConfigError("a sweep config needs a [sweep] table with [sweep.axes]")
        check_keys(sweep, ("axes", "tol"), "the sweep config", prefix="sweep.")
        axes = sweep.get("axes") or {}
        if not isinstance(axes, Mapping):
            raise ConfigError(f"sweep.axes must be a table of field = values, got {axes!r}")
        check_keys(axes, AXES, "the sweep config", prefix="sweep.axes.")
        base = ExperimentConfig.from_dict(
            {k: v for k, v in data.items() if k != "sweep"}, base_dir=base_dir
        )
        values = {a: _axis_values(a, v) for a, v in axes.items()}
        if base_dir is not None and "cell" in values:  # cell files, like `cells`, are relative
            values["cell"] = tuple(  # to the config file, not to the working folder
                str(Path(base_dir, c)) if isinstance(c, str) and c.endswith(".toml") else c
                for c in values["cell"]
            )
        return cls(base, tuple(values.items()), sweep.get("tol", DEFAULT_TOL))


def load_sweep_config(path: str | os.PathLike[str]) -> SweepConfig:
    """Read a sweep config from TOML (an experiment config with a ``[sweep]`` table)."""
    data = read_toml(path)  # its errors already name the file
    try:
        return SweepConfig.from_dict(data, base_dir=Path(path).parent)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def point_key(config: ExperimentConfig) -> str:
    """A stable name for a point: a hash of its full config (and of the record format)."""
    text = _canonical({"format": POINT_FORMAT, "config": config.to_dict()})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def evaluate_point(config: Mapping[str, Any]) -> dict[str, Any]:
    """Run one point (a config dict with one cell) and reduce it; runs in a worker.

    ``status`` is ``ok``; ``zero`` when the median product is exactly zero (rate ``-inf``,
    stored as null); ``overflow`` when the rollout overflowed (``NumericalError``, no rate).
    """
    cfg = ExperimentConfig.from_dict(config)
    try:
        result = run_experiment(cfg, progress=False, cards=False)  # a point keeps rates only
    except NumericalError as err:
        return {
            "status": "overflow",
            "decay_rate": None,
            "log10_norm_final": None,
            "error": str(err),
        }
    (summary,) = result.cells.values()
    rate = summary.decay_rate
    mf = summary.meanfield
    out = {
        "status": "ok" if rate.median is not None else "zero",
        "decay_rate": rate.median,
        "decay_rate_low": rate.low,
        "decay_rate_high": rate.high,
        "log10_norm_final": float(summary.log10_spectral_norm.median[-1]),
        "predicted_slope": mf.predicted_slope if mf else None,
    }
    return {k: (v if not isinstance(v, float) or np.isfinite(v) else None) for k, v in out.items()}


def regime(rate: float | None, tol: float, status: str = "ok") -> str:
    """``vanishing`` below ``-tol``, ``exploding`` above ``+tol``, else ``preserved``.

    A point whose product is exactly zero (``status == "zero"``) is vanishing; one whose
    forward states overflowed (``"overflow"``) is exploding.
    """
    if status == "zero":
        return "vanishing"
    if status == "overflow" or rate is None:
        return "exploding"
    return "vanishing" if rate < -tol else "exploding" if rate > tol else "preserved"


@dataclass
class _Item:
    params: dict[str, Any]
    config: ExperimentConfig
    key: str
    path: Path

    def record(self, measured: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "schema_version": POINT_FORMAT,
            "kind": "sweep-point",
            "key": self.key,
            "params": self.params,
            "config": self.config.to_dict(),
            **measured,
        }


def _load_point(item: _Item) -> dict[str, Any] | None:
    """The saved record of ``item`` if it is present and valid, else None."""
    if not item.path.is_file():
        return None
    try:
        rec = load_json(item.path)
    except Exception:  # unreadable or truncated: run the point again
        return None
    ok = (
        isinstance(rec, dict)
        and rec.get("kind") == "sweep-point"
        and rec.get("key") == item.key
        and rec.get("status") in ("ok", "zero", "overflow")
        and all(k in rec for k in ("decay_rate", "log10_norm_final"))
        and (rec["decay_rate"] is None or isinstance(rec["decay_rate"], (int, float)))
    )
    return rec if ok else None


def worker_context() -> Any:
    """``forkserver`` where it exists: no fork of a multi-threaded parent (Dask, tqdm)."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["gradflow.analysis.sweep"])
        return ctx
    return multiprocessing.get_context("spawn")


#: Seconds to wait for a Dask scheduler to answer before giving up with one line.
CONNECT_TIMEOUT = 5.0


def check_scheduler(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Refuse, within ``timeout`` seconds, a scheduler address that is malformed or that
    nothing listens at (a ``tcp://``, ``tls://`` or ``ws://`` address; a bare ``host:port``
    is TCP), before a :class:`distributed.Client` is made (a Client that fails
    to connect waits 60 s at exit and prints a traceback).

    Raises:
        BackendError: the address has no host and port, or the connection is refused or
            times out.
    """
    from distributed.comm.addressing import get_address_host_port, parse_address

    if not isinstance(address, str) or not address.strip():
        raise BackendError(f"cannot reach the Dask scheduler at {address!r} (empty address)")
    try:
        scheme = parse_address(address)[0]
    except (ValueError, TypeError) as exc:
        raise BackendError(f"cannot reach the Dask scheduler at {address!r} ({exc})") from None
    if scheme not in ("tcp", "tls", "ws", "wss"):
        return  # in-process (inproc://) and other transports: the Client's timeout applies
    try:
        host, port = get_address_host_port(address)
    except (ValueError, TypeError) as exc:
        raise BackendError(
            f"cannot reach the Dask scheduler at {address!r} ({exc}); "
            "give an address like tcp://host:8786"
        ) from None
    if not 0 < int(port) < 65536:
        raise BackendError(f"cannot reach the Dask scheduler at {address!r} (port {port})")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise BackendError(
            f"cannot reach the Dask scheduler at {address!r} ({reason} within {timeout:g} s)"
        ) from None


@contextlib.contextmanager
def dask_executor(address: str) -> Iterator[Executor]:
    """A :class:`concurrent.futures.Executor` on the Dask scheduler at ``address``.

    The address is checked first (:func:`check_scheduler`), so a bad one fails in seconds
    with one line; the client is closed on the way out, interrupted or not.

    Raises:
        BackendError: ``distributed`` is not installed, or the scheduler cannot be reached.
    """
    try:
        import distributed
    except ImportError:
        raise BackendError(
            "running on a Dask scheduler needs the dask extra: pip install 'gradflow[dask]'"
        ) from None
    check_scheduler(address)

    class Client(distributed.Client):
        """A Client whose failed start is closed at once, not retried for 60 s at exit."""

        failed = False

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            try:
                super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
            except BaseException:
                self.failed = True
                with contextlib.suppress(BaseException):
                    super().close(timeout=1)  # type: ignore[no-untyped-call]
                raise

        def __del__(self) -> None:
            if not self.failed:
                super().__del__()  # type: ignore[no-untyped-call]

    try:
        client = Client(address, set_as_default=False, timeout=2 * CONNECT_TIMEOUT)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a peer that is not a Dask scheduler fails in odd ways
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise BackendError(
            f"cannot reach the Dask scheduler at {address!r} ({detail}); is it a Dask scheduler?"
        ) from None
    try:
        yield client.get_executor()  # type: ignore[no-untyped-call]
    finally:
        client.close(timeout=2 * CONNECT_TIMEOUT)  # type: ignore[no-untyped-call]


def init_worker(threads: int, force: bool) -> None:
    """Initializer of gradflow's worker processes (sweeps, the report's background stage):
    signals (:func:`gradflow.shutdown.worker_init`), the worker's share of the cores as the
    cap of the thread policy (:func:`gradflow.threads.set_worker_share`: one thread for small
    states whatever the share), and the parent's ``--force``."""
    worker_init()
    set_worker_share(threads)
    set_force(force)


def stop_workers(pool: ProcessPoolExecutor, grace: float = 2.0) -> None:
    """Terminate ``pool``'s worker processes now (SIGTERM, then SIGKILL after ``grace`` s).

    :meth:`~concurrent.futures.Executor.shutdown` waits for running tasks to finish; after an
    interruption nobody wants their result, and a long point would keep the user waiting.
    """
    procs = list((getattr(pool, "_processes", None) or {}).values())
    results = getattr(pool, "_result_queue", None)  # shutdown() forgets it
    # Shut down first: the pool's manager thread then forgets the cancelled points, and only
    # then learns that the workers are gone (Python 3.11 fails on a cancelled future there).
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(grace)
    # A worker stopped while it sent a result leaves part of a message in the result pipe:
    # the pool's manager thread then waits in recv() for the rest forever, and the
    # interpreter joins that thread at exit, so the command would never end. The parent
    # never writes to that pipe; closing its copy of the write end turns the wait into
    # EOF once the workers' copies are gone, and the manager thread ends.
    writer = getattr(results, "_writer", None)
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()


def _run_futures(
    executor: Executor, todo: list[_Item], finish: Callable[[_Item, dict[str, Any], bool], None]
) -> None:
    """Submit every point and finish each as it completes; on any interruption cancel what
    has not started and keep what has finished."""
    futures: dict[Future[dict[str, Any]], _Item] = {
        executor.submit(evaluate_point, item.config.to_dict()): item for item in todo
    }
    finished: set[str] = set()
    try:
        for fut in as_completed(futures):
            item = futures[fut]
            finished.add(item.key)
            finish(item, fut.result(), True)
    except BaseException:
        for fut in futures:
            fut.cancel()
        for fut, item in futures.items():
            if (
                item.key not in finished
                and fut.done()
                and not fut.cancelled()
                and fut.exception() is None
            ):
                finish(item, fut.result(), False)
        raise


def run_sweep(
    config: SweepConfig,
    out_dir: str | os.PathLike[str],
    *,
    executor: Executor | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: Progress = True,
) -> SweepResult:
    """Run every point of ``config`` not already finished in ``out_dir``.

    Args:
        config: the sweep.
        out_dir: where point files (``points/<key>.json``) and ``sweep.json`` go.
        executor: any :class:`concurrent.futures.Executor` (left open); overrides the rest.
        jobs: worker processes; ``1`` runs inline with no pool.
        scheduler: a Dask scheduler address (``tcp://host:8786``); needs ``gradflow[dask]``.
        progress: as in :func:`~gradflow.analysis.experiment.run_experiment`; a callable is
            called as ``progress(done, total)`` after each point is saved.

    Returns:
        The :class:`SweepResult` (also written to ``out_dir/sweep.json``).

    Raises:
        KeyboardInterrupt: re-raised after pending points are cancelled; finished points are
            kept, so running again resumes.
    """
    if jobs < 1:
        raise UsageError(f"jobs must be at least 1, got {jobs}")
    start = time.perf_counter()
    out = Path(out_dir)
    items = []
    for params in config.points():
        cfg = config.point_config(params)
        key = point_key(cfg)
        items.append(_Item(params, cfg, key, out / "points" / f"{key}.json"))
    records = {it.key: rec for it in items if (rec := _load_point(it)) is not None}
    todo = [it for it in items if it.key not in records]
    tick = progress_bar(progress, len(todo), config.name)

    def finish(item: _Item, measured: dict[str, Any], count: bool) -> None:
        records[item.key] = item.record(measured)
        save_json(item.path, records[item.key], parents=True)
        if count:
            tick()

    if todo:
        if executor is not None:
            _run_futures(executor, todo, finish)
        elif scheduler is not None:
            with dask_executor(scheduler) as ex:
                _run_futures(ex, todo, finish)
        elif jobs == 1:
            for item in todo:
                finish(item, evaluate_point(item.config.to_dict()), True)
        else:
            # workers x BLAS threads never exceeds the cores; --force reaches the workers
            pool = ProcessPoolExecutor(
                max_workers=jobs,
                mp_context=worker_context(),
                initializer=init_worker,
                initargs=(threads_per_worker(jobs), forced()),
            )
            try:
                _run_futures(pool, todo, finish)
            except KeyboardInterrupt:
                stop_workers(pool)  # do not wait for the points that are running
                raise
            except BrokenProcessPool as exc:
                if (signum := interrupted()) is not None:  # killed with us (process group)
                    raise Terminated(signum) from None
                raise GradflowError(
                    f"a sweep worker process died ({exc}); finished points are kept in "
                    f"{out}. From a script, call run_sweep under if __name__ == '__main__':"
                ) from None
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    points = []
    for it in items:
        rec = records[it.key]
        points.append(
            SweepPoint(
                params=it.params,
                decay_rate=rec["decay_rate"],
                log10_norm_final=rec["log10_norm_final"],
                regime=regime(rec["decay_rate"], config.tol, rec["status"]),
                decay_rate_low=rec.get("decay_rate_low"),
                decay_rate_high=rec.get("decay_rate_high"),
                predicted_slope=rec.get("predicted_slope"),
                error=rec.get("error"),
            )
        )
    result = SweepResult(
        name=config.name,
        config=config.to_dict(),
        axes={a: tuple(v) for a, v in config.axes},
        points=tuple(points),
        gradflow_version=__version__,
        run={
            "total_s": time.perf_counter() - start,
            "evaluated": len(todo),
            "reused": len(items) - len(todo),
        },
    )
    result.save(out / "sweep.json", parents=True)
    result.save_run(out / "run.json")
    return result
