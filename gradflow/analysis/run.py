r"""Running an experiment: every ``(cell, seed)`` pair through :func:`gradflow.engine.analyze`.

Seeds: run ``(cell, seed)`` draws its parameters from
``SeedSequence([seed, zlib.crc32(cell_name)])`` and its inputs from
``SeedSequence([seed, zlib.crc32("inputs")])``: every cell of one seed sees the same inputs
(common random numbers), and no number depends on the order in which runs execute.
"""

from __future__ import annotations

import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..cells import Cell, get_cell
from ..cells.graph import Affine
from ..cells.parse import load_cell_file
from ..engine import analyze, split_draws
from ..errors import ConfigError
from ..initialisers import Init, initialise, make_inputs, memory_gates, sigmoid_gates, update_gate
from ..results import AnalysisResult, CellSummary, ExperimentResult
from ..threads import blas_threads, compute_region
from ..weights import load_inputs
from .cellcard import cell_card
from .config import ExperimentConfig, Progress
from .exact import EXACT_DRAWS, PATH_LAGS, experiment_exact
from .summarise import summarise_cell


def seed_sequence(seed: int, tag: str) -> np.random.SeedSequence:
    """``SeedSequence([seed, zlib.crc32(tag)])``: the same in every process and Python version."""
    return np.random.SeedSequence([int(seed), zlib.crc32(tag.encode("utf-8"))])


def resolve_cell(entry: str) -> Cell:
    """The :class:`~gradflow.cells.Cell` a config entry names: a catalogue name or a file."""
    return load_cell_file(entry) if entry.endswith(".toml") else get_cell(entry)


def resolve_cells(config: ExperimentConfig) -> list[Cell]:
    """The :class:`~gradflow.cells.Cell` objects the config names, in its order."""
    cells = [resolve_cell(entry) for entry in config.cells]
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ConfigError(f"cells must have distinct names, got {names}")
    return cells


def run_threads(cells: list[Cell], hidden_size: int) -> int:
    """BLAS threads for a whole run of ``cells`` at ``hidden_size``: the policy of
    :mod:`gradflow.threads` for the largest state (``--threads``/``GRADFLOW_THREADS``, else
    one thread below :data:`~gradflow.threads.PARALLEL_FROM`). A run holds it around all it
    computes, not only inside the engine: its other numerics (certified singular values, path
    expansions, mean fields) are small products too, and OpenBLAS's default of a thread per
    core spins beside a busy process (issue 14)."""
    states = max((len(c.state) for c in cells), default=1)
    return blas_threads(states * hidden_size)


def experiment_threads(config: ExperimentConfig) -> int:
    """:func:`run_threads` for the cells of ``config``."""
    return run_threads(resolve_cells(config), config.hidden_size)


def cell_init(init: Init, cell: Cell) -> Init:
    """``init`` without the gate options ``cell`` has no gate for.

    One config can compare an RNN with an LSTM that has ``forget_bias = 1``: the RNN simply
    has no forget gate, so the option does not apply to it.
    """
    changes: dict[str, Any] = {}
    if init.forget_bias is not None and "a_f" not in sigmoid_gates(cell):
        changes["forget_bias"] = None
    if init.update_bias is not None and update_gate(cell) is None:
        changes["update_bias"] = None
    if init.chrono_tmax is not None and not memory_gates(cell):
        changes["chrono_tmax"] = None
    return replace(init, **changes) if changes else init


def experiment_inputs(config: ExperimentConfig, seed: int) -> np.ndarray:
    """The ``(T, B, d)`` inputs of ``seed``; a file goes through the one ``.npy`` loader,
    :func:`gradflow.weights.load_inputs`, so ``analyze --inputs`` and ``inputs.kind = "file"``
    accept exactly the same files."""
    inp = config.inputs
    T, B, d = config.steps, config.batch, config.input_size
    if inp.kind == "file":
        assert inp.path is not None
        x = load_inputs(inp.path, input_size=d)
        if x.shape[:2] != (T, B):
            raise ConfigError(
                f"{inp.path}: inputs have shape {x.shape}; the config asks for "
                f"(steps, batch, input_size) = ({T}, {B}, {d})"
            )
        return x
    rng = np.random.default_rng(seed_sequence(seed, "inputs"))
    return make_inputs(inp.kind, T, B, d, rng, scale=inp.scale, value=inp.value)


def run_cell(
    config: ExperimentConfig, cell: Cell, seed: int, init: Init | None = None
) -> tuple[AnalysisResult, dict[str, np.ndarray], np.ndarray]:
    """One run: draw ``cell``'s parameters and the inputs for ``seed``, then analyse.

    Returns:
        ``(AnalysisResult, params, inputs)``.
    """
    n, d = config.hidden_size, config.input_size
    init = cell_init(config.init, cell) if init is None else init
    params = initialise(cell, n, d, init, np.random.default_rng(seed_sequence(seed, cell.name)))
    x = experiment_inputs(config, seed)
    result = analyze(cell, params, x, backend=config.backend, **config.quantities.analyze_kwargs())
    return result, params, x


def run_seeds(
    config: ExperimentConfig, cell: Cell, seeds: tuple[int, ...], init: Init | None = None
) -> list[tuple[AnalysisResult, dict[str, np.ndarray], np.ndarray]]:
    """:func:`run_cell` for every seed of ``seeds``, in ONE grouped call of the engine.

    Each seed's parameters and inputs are drawn exactly as :func:`run_cell` draws them; the
    draws go to :func:`gradflow.engine.analyze` as grouped weights (``draws = len(seeds)``,
    the seeds' inputs side by side along the batch) and the result is split back by seed
    (:func:`gradflow.engine.split_draws`). The cost of an analysis is mostly per step, not
    per sequence, so ``S`` seeds cost about as much as one (measured in
    ``benchmarks/ensemble_output.md``). Results are those of the per-seed loop, bit for bit,
    but for the spectral norms: certified in both, and equal within the certified tolerance
    (``SPECTRAL_RTOL``; the Krylov estimator runs over the whole batch, measured 4e-12 in
    log10 on the default report config). A backend other than NumPy, or a single seed, runs
    :func:`run_cell` seed by seed.

    Returns:
        ``[(AnalysisResult, params, inputs)]``, one per seed, in the order of ``seeds``.
    """
    if config.backend != "numpy" or len(seeds) < 2:
        return [run_cell(config, cell, seed, init) for seed in seeds]
    n, d = config.hidden_size, config.input_size
    init = cell_init(config.init, cell) if init is None else init
    params = [
        initialise(cell, n, d, init, np.random.default_rng(seed_sequence(seed, cell.name)))
        for seed in seeds
    ]
    xs = [experiment_inputs(config, seed) for seed in seeds]
    grouped = {k: np.stack([p[k] for p in params]) for k in params[0]}
    x = np.concatenate(xs, axis=1)
    kwargs = config.quantities.analyze_kwargs()
    result = analyze(cell, grouped, x, backend="numpy", draws=len(seeds), **kwargs)
    return list(zip(split_draws(result, len(seeds)), params, xs, strict=True))


def progress_bar(progress: Progress, total: int, desc: str) -> Callable[[], None]:
    """A ``tick()`` that advances a tqdm bar on stderr, or calls ``progress(done, total)``.

    The bar is off when ``progress`` is false or stderr is not a terminal, and it appears
    only for work that lasts longer than a second (tqdm's ``delay``).
    """
    done = [0]
    if callable(progress):

        def tick() -> None:
            done[0] += 1
            progress(done[0], total)

        return tick
    if not progress:  # no tqdm at all: its first bar makes a multiprocessing lock, which a
        return lambda: None  # sweep worker stopped by a signal would leave to the tracker
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        desc=desc,
        file=sys.stderr,
        delay=1.0,
        leave=False,
        disable=not progress or not sys.stderr.isatty(),
    )

    def tick_bar() -> None:
        bar.update()
        done[0] += 1
        if done[0] >= total:
            bar.close()

    return tick_bar


def summarise_entry(
    config: ExperimentConfig,
    index: int,
    tick: Callable[[], None] = lambda: None,
    *,
    card: bool = True,
) -> CellSummary:
    """Run every seed of the config's cell number ``index`` and summarise it: one cell's
    whole share of :func:`run_experiment`, a task a worker process can take (its result does
    not depend on where it runs: every draw is seeded from the config). ``card=False`` leaves
    the cell's card (its equations and Jacobian typeset by SymPy) out."""
    entry = config.cells[index]
    cell = resolve_cell(entry)
    init = cell_init(config.init, cell)
    q = config.quantities
    # the exact pass below certifies the singular values: the engine's one SVD per product
    # (of every sequence) would be computed only to be discarded
    runs_config = config.replace(quantities=replace(q, singular_lags=()))
    runs = run_seeds(runs_config, cell, tuple(config.seeds), init)
    for _ in runs:
        tick()
    path_lags = PATH_LAGS if q.paths else ()
    exact = None
    if q.singular_lags or path_lags:
        pairs = [(p, x) for _, p, x in runs[:EXACT_DRAWS]]
        exact = experiment_exact(cell, pairs, q.singular_lags, path_lags)
    if not card:
        return summarise_cell(config, cell, init, runs, None, exact)
    source = _source(entry) if entry.endswith(".toml") else None
    return summarise_cell(config, cell, init, runs, cell_card(cell, source), exact)


def run_experiment(
    config: ExperimentConfig,
    progress: Progress = True,
    executor: Executor | None = None,
    *,
    cards: bool = True,
) -> ExperimentResult:
    """Run every ``(cell, seed)`` of ``config`` and summarise each cell over its runs.

    Args:
        config: the experiment.
        progress: ``True`` for a tqdm bar on stderr (only on a terminal, only after a
            second), ``False``/``None`` for none, or a callable ``progress(done, total)``.
        executor: run the cells as tasks on it (e.g. a process pool, the report's); the
            result is the same as without.
        cards: give each cell its card (equations and Jacobian typeset by SymPy, about
            10-100 ms a cell); a sweep's points, which keep only rates, go without.

    The whole run holds the thread policy's BLAS count (:func:`run_threads`); a pool's
    workers hold their own (the report's, a sweep's).

    Singular values (``quantities.singular_lags``) are computed by the certified product SVD
    (:mod:`gradflow.prodsvd`) on the first :data:`~.exact.SV_SEQUENCES` sequences of each seed;
    with ``quantities.paths`` the product is also expanded by the number of multiplicative
    factors at lags :data:`~.exact.PATH_LAGS` (the first sequence of the first seed); an
    experiment that asks for any of these, or for Lyapunov exponents, also gets the annealed
    mean field of each cell.

    Returns:
        An :class:`ExperimentResult` (the ``"experiment"`` JSON schema).

    References:
        [pascanu2013] for the bound; [poole2016], [chen2018minimalrnn] for the mean field;
        [stewart1997graded] for the product SVD.
    """
    if executor is not None:
        return submit_experiment(config, executor, cards=cards)(progress)
    start = time.perf_counter()
    cells = resolve_cells(config)
    tick = progress_bar(progress, len(cells) * len(config.seeds), config.name)
    with compute_region(run_threads(cells, config.hidden_size)):
        summaries = {
            cell.name: summarise_entry(config, k, tick, card=cards) for k, cell in enumerate(cells)
        }
    return _experiment_result(config, summaries, start)


def _experiment_result(
    config: ExperimentConfig, summaries: dict[str, CellSummary], start: float
) -> ExperimentResult:
    return ExperimentResult(
        name=config.name,
        config=config.to_dict(),
        seeds=tuple(config.seeds),
        cells=summaries,
        gradflow_version=__version__,
        run={"total_s": time.perf_counter() - start},
    )


def cost_rank(cell: Cell) -> tuple[int, int]:
    """A cell's relative cost in an experiment, for scheduling only: its state vectors, then
    its affine nodes (the LSTM family, with two state vectors, takes 3.3-4.8 s of CPU time
    in the report's default experiment; a GRU 1.5 s, a tanh RNN 0.8 s)."""
    return len(cell.state), sum(isinstance(nd, Affine) for nd in cell.nodes)


def submit_experiment(
    config: ExperimentConfig, executor: Executor, *, cards: bool = True
) -> Callable[[Progress], ExperimentResult]:
    """Submit ``config``'s cells to ``executor`` (one task per cell, the costliest first, so
    that a pool ends on short tasks) and return ``finish(progress)``, which collects them in
    the config's order: the same :class:`ExperimentResult` as :func:`run_experiment`."""
    start = time.perf_counter()
    cells = resolve_cells(config)
    order = sorted(range(len(cells)), key=lambda k: tuple(-r for r in cost_rank(cells[k])))
    jobs = {k: executor.submit(summarise_entry, config, k, card=cards) for k in order}

    def finish(progress: Progress = True) -> ExperimentResult:
        tick = progress_bar(progress, len(cells), config.name)
        summaries = {}
        for k, cell in enumerate(cells):
            summaries[cell.name] = jobs[k].result()
            tick()
        return _experiment_result(config, summaries, start)

    return finish


def _source(path: str) -> str | None:
    """The text of a cell file, carried in the result so a report needs no file system."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
