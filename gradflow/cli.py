"""The ``gradflow`` command line: parse, call one library function, echo.

Every :class:`~gradflow.errors.GradflowError` becomes one line on stderr and a non-zero exit
(2 for usage errors, 1 for runtime faults); ``--debug`` (anywhere on the command line) shows
the traceback instead, and Ctrl-C (SIGINT) exits 130, SIGTERM 143, each with one line after
worker processes and temporary folders are cleaned up (:mod:`gradflow.shutdown`).

One concept: the command line (about 700 lines: one short function per command, and the
options of `analyze` for whole models).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from ._version import __version__
from .errors import GradflowError, UsageError
from .shutdown import Terminated, exit_code, handle_signals, interrupted


def _stopped(exc: BaseException) -> str:
    """The one line a stopped command prints: ``interrupted`` (SIGINT) or ``terminated``."""
    return "terminated" if isinstance(exc, Terminated) else "interrupted"


class GradflowClickError(click.ClickException):
    """A GradflowError, shown as one line with the error's own exit code."""

    def __init__(self, err: GradflowError) -> None:
        super().__init__(str(err))
        # click 8.5 declares exit_code a ClassVar; this instance carries the error's own code
        setattr(self, "exit_code", err.exit_code)  # noqa: B010


class Group(click.Group):
    """Turns GradflowError (and Ctrl-C) into clean exits unless ``--debug`` is given.

    ``--debug`` may stand anywhere on the command line (``gradflow analyze ... --debug``): it is
    moved before the subcommand, where the group reads it.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        if "--debug" in args[:end]:
            args = ["--debug", *(a for a in args[:end] if a != "--debug"), *args[end:]]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(_stopped(exc), err=True)
            raise click.exceptions.Exit(exit_code(exc)) from None
        except GradflowError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise GradflowClickError(err) from None
        except ValueError as err:
            if "null byte" not in str(err) or (ctx.obj and ctx.obj.get("debug")):
                raise
            # os.stat and open refuse NUL in a path before gradflow sees it (click.Path)
            raise click.ClickException(
                "cannot write or read a path that contains a NUL character"
            ) from None
        except MemoryError:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise click.ClickException(
                "out of memory: reduce --batch, the hidden size or the chunk size"
            ) from None
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise  # a command's own exit (e.g. the sweep's "interrupted; points kept")
        except Exception:
            signum = interrupted()
            if signum is None or (ctx.obj and ctx.obj.get("debug")):
                raise
            # The signal's KeyboardInterrupt surfaced as another error: e.g. a C extension
            # interrupted while it was being imported raises ImportError from it. The cleanup
            # ran on the way up; the exit is the signal's, as for a plain interruption.
            stop = KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)
            click.echo(_stopped(stop), err=True)
            raise click.exceptions.Exit(exit_code(stop)) from None


def _cite_all(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from .citations import BIBTEX, cite

        click.echo(cite(BIBTEX), nl=False)
        ctx.exit()


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradflow")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option(
    "--cite",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_cite_all,
    help="Print BibTeX for every method gradflow implements and exit.",
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=None,
    envvar="GRADFLOW_THREADS",
    help="BLAS threads for the compute regions (default: a size rule, one thread below "
    "n = 1024; sweep and report workers share the cores).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Run analyses above the cost limits (about 1e14 operations or 1 GiB of results).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, threads: int | None, force: bool) -> None:
    """Exact symbolic Jacobians and gradient-flow measurements for recurrent cells."""
    from .cost import set_force
    from .threads import set_threads

    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    set_threads(threads)
    set_force(force)


def resolve_cell(name: str | None, cell_file: str | None) -> Any:
    """The cell named on the command line, from the catalogue or an equation file."""
    from .cells import get_cell

    if cell_file is not None:
        if name is not None:
            raise UsageError("give either a cell name or --cell-file, not both")
        from .cells.parse import load_cell_file

        return load_cell_file(cell_file)
    if name is None:
        raise UsageError("name a cell (see `gradflow cells`) or give --cell-file")
    from .cells import CATALOGUE

    if name not in CATALOGUE and name.lower() in CATALOGUE:  # --cell LSTM is lstm
        name = name.lower()
    return get_cell(name)


@cli.command("cells")
@click.option("-n", "--hidden-size", default=128, show_default=True, type=click.IntRange(1))
@click.option("-d", "--input-size", default=64, show_default=True, type=click.IntRange(1))
@click.option(
    "-p", "--proj-size", type=click.IntRange(1), help="lstm-proj's p [default: n // 2, >= 1]"
)
def cells_cmd(hidden_size: int, input_size: int, proj_size: int | None) -> None:
    """List the cell catalogue: state size, parameter count and reference."""
    from .cells import CATALOGUE

    n, d, p = hidden_size, input_size, proj_size or max(1, hidden_size // 2)
    header = f"{'cell':<18} {'state':>6} {'params':>9}  reference"
    click.echo(f"hidden size n = {n}, input size d = {d}, projection size p = {p} (lstm-proj)")
    click.echo(header)
    click.echo("-" * len(header))
    for cell in CATALOGUE.values():
        ref = cell.reference.split(":")[0].split(";")[0]
        q = p if cell.has_second_size else None
        click.echo(
            f"{cell.name:<18} {cell.state_size(n, q):>6} {cell.parameter_count(n, d, q):>9}  {ref}"
        )


@cli.command("derive")
@click.argument("cell", required=False)
@click.option("--cell-file", type=click.Path(dir_okay=False), help="A TOML equation file.")
@click.option("--latex", is_flag=True, help="Print LaTeX instead of text.")
@click.option("--mathml", is_flag=True, help="Print presentation MathML.")
@click.option(
    "--explicit",
    "explicit_n",
    type=click.IntRange(1, 8),
    default=None,
    metavar="N",
    help="The explicit N-unit Jacobian with scalar symbols.",
)
@click.option("--paths", is_flag=True, help="Split into additive and multiplicative paths.")
@click.option("--equations", is_flag=True, help="Also print the cell's equations.")
def derive_cmd(
    cell: str | None,
    cell_file: str | None,
    latex: bool,
    mathml: bool,
    explicit_n: int | None,
    paths: bool,
    equations: bool,
) -> None:
    """Print the state Jacobian ds_t/ds_{t-1} of CELL, valid for every hidden size."""
    import sympy as sp

    from .symbolic.jacobian import state_jacobian
    from .symbolic.render import equations_latex, equations_text, explicit_text

    c = resolve_cell(cell, cell_file)
    if equations:
        for line in equations_latex(c) if latex else equations_text(c):
            click.echo(line)
        click.echo()
    if explicit_n is not None:
        J = c.jacobian(n=explicit_n)
        click.echo(sp.latex(J) if latex else explicit_text(J))
        return
    jac = state_jacobian(c)
    obj: Any = jac.paths() if paths else jac
    if mathml:
        if paths:
            click.echo(jac.paths().additive.mathml())
            click.echo(jac.paths().multiplicative.mathml())
        else:
            click.echo(jac.mathml())
    elif latex:
        click.echo(obj.latex())
    else:
        click.echo(str(obj))


# ---- engine commands (analyze, codegen) ----------------------------------------------------


def _lags(value: str | None) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


@cli.command("analyze")
@click.option("--cell", "cell_name", help="Catalogue cell: rnn, lstm, gru, ... (see `cells`).")
@click.option("--cell-file", type=click.Path(dir_okay=False), help="A TOML equation file.")
@click.option(
    "--weights",
    required=True,
    type=click.Path(dir_okay=False),
    help=".safetensors or .npz, PyTorch parameter names for rnn/lstm/gru.",
)
@click.option(
    "--inputs",
    required=True,
    type=click.Path(dir_okay=False),
    help=".npy float array of shape (T, B, d).",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the JSON result.",
)
@click.option("--backend", type=click.Choice(["numpy", "cupy"]), default="numpy", show_default=True)
@click.option(
    "--dtype", type=click.Choice(["float64", "float32"]), default="float64", show_default=True
)
@click.option("--paths", is_flag=True, help="Also follow the additive and multiplicative paths.")
@click.option(
    "--singular-lags",
    default=None,
    metavar="K1,K2,...",
    help="Record the singular values of the product at these lags.",
)
@click.option(
    "--lyapunov",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Number of Lyapunov exponents.",
)
@click.option(
    "--gradient",
    type=click.Choice(["last", "sum"]),
    default=None,
    help="Also record ||dL/ds_t|| for L = sum(h_T) or sum_t sum(h_t).",
)
@click.option(
    "--lag-split/--no-lag-split",
    default=None,
    help="Stacks: split the weight gradient by lag (default: on for --gradient last, off for "
    "sum, whose split costs O(T^2); docs/stacks.md).",
)
@click.option(
    "--structure",
    type=click.Choice(["auto", "dense"]),
    default="auto",
    show_default=True,
    help="One layer: 'auto' takes the exact O(m b^2) chain where the derivation shows a "
    "diagonal or block-diagonal Jacobian (numpy backend); 'dense' forces the dense chain.",
)
@click.option(
    "--compiled/--no-compiled",
    default=None,
    help="One layer: require the compiled (numba) backend, or force the NumPy reference path "
    "(default: compiled where the case qualifies; README, 'The compiled backend').",
)
@click.option("--prefix", default=None, help="The recurrent module to analyse, by name prefix.")
@click.option(
    "--nonlinearity",
    type=click.Choice(["tanh", "relu"]),
    default=None,
    help="nn.RNN's nonlinearity (a state_dict does not store it; default tanh).",
)
@click.option(
    "--config",
    "keras_config",
    type=click.Path(dir_okay=False),
    default=None,
    help="The Keras config.json that goes with a bare .weights.h5.",
)
@click.option(
    "--layers",
    "n_layers",
    default="all",
    show_default=True,
    metavar="all|K",
    help="Analyse every layer of the model, or the bottom K.",
)
@click.option(
    "--direction",
    type=click.Choice(["forward", "reverse", "both"]),
    default=None,
    help="Which directions of a bidirectional model (default: those the file holds).",
)
def analyze_cmd(
    cell_name: str | None,
    cell_file: str | None,
    weights: str,
    inputs: str,
    output: str,
    backend: str,
    dtype: str,
    paths: bool,
    singular_lags: str | None,
    lyapunov: int,
    gradient: str | None,
    lag_split: bool | None,
    structure: str,
    compiled: bool | None,
    prefix: str | None,
    nonlinearity: str | None,
    keras_config: str | None,
    n_layers: str,
    direction: str | None,
) -> None:
    """Exact log10 norms of ds_T/ds_{T-k} for every lag of a trained network.

    A whole model (PyTorch, Keras 3 or ONNX file; `gradflow inspect FILE` prints the command
    line) is analysed as one stack: joint, per-layer and cross-layer chains, memory curves and
    the weight gradient split by lag (docs/stacks.md). A one-layer, forward-only model keeps
    the single-layer result and its JSON keys.
    """
    from dataclasses import replace

    from .atomic import check_target
    from .engine import analyze
    from .measure import Measure
    from .results import run_path
    from .weights import load_inputs, load_weights

    measure = Measure.of(
        paths=paths, singular_lags=_lags(singular_lags), lyapunov=lyapunov, gradient=gradient
    )
    run_inputs = [p for p in (weights, inputs, cell_file, keras_config) if p]
    check_target(output, inputs=run_inputs)  # refuse before the work, not after it
    model_opts = {
        "--prefix": prefix,
        "--nonlinearity": nonlinearity,
        "--config": keras_config,
        "--layers": None if n_layers == "all" else n_layers,
        "--direction": direction,
    }
    given = [k for k, v in model_opts.items() if v is not None]
    if cell_file is not None and given:
        raise UsageError(
            f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to model files "
            "(PyTorch, Keras, ONNX), not to weights for a --cell-file cell (one layer)"
        )
    if keras_config is not None and not weights.lower().endswith(".h5"):
        raise UsageError(
            "--config is the Keras config.json of a bare .weights.h5 file; "
            f"{weights} does not take one"
        )
    cell = resolve_cell(cell_name, cell_file) if cell_name or cell_file else None
    native = cell_file is not None or (
        cell is not None
        and cell.torch_layout is None
        and weights.lower().endswith((".safetensors", ".npz"))
    )
    if native:  # one layer in the cell's own parameter names (or a cell file)
        assert cell is not None
        if given:
            raise UsageError(
                f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to model files "
                f"(PyTorch, Keras, ONNX); {cell.name} weights in its own names are one layer"
            )
        params: Any = load_weights(weights, cell)
        depths: list[Any] = []
        layer: Any = None
        meta_extra: dict[str, Any] = {}
        input_size = params.input_size
    else:
        from .formats import load_model
        from .formats.select import check_cell, select, single_forward_layer

        model = load_model(weights, prefix=prefix, nonlinearity=nonlinearity, config=keras_config)
        if cell is not None and cell.name == "rnn-relu" and nonlinearity is None:
            if model.format == "pytorch" and {la.cell for la in model.layers} == {"rnn"}:
                model = load_model(weights, prefix=prefix, nonlinearity="relu")  # as named
        if cell is not None:
            check_cell(model, cell.name, nonlinearity)
        depths = select(model, layers=n_layers, direction=direction)
        layer = single_forward_layer(depths)
        params, input_size = None, model.input_size
        meta_extra = {"format": model.format, "prefix": model.prefix}
        if model.notes:
            meta_extra["notes"] = list(model.notes)
    if params is None and layer is not None:  # one forward layer: the analyze contract
        from .cells import get_cell

        cell = get_cell(layer.cell) if isinstance(layer.cell, str) else layer.cell
        params, meta_extra = layer.params, {}
    if params is not None:
        assert cell is not None
        if lag_split:
            raise UsageError(
                "--lag-split applies to stacks; a one-layer, forward-only model gets the "
                "single-layer result (analyse it in Python with gradflow.stack.analyze_stack "
                "for its lag split)"
            )
        x = load_inputs(inputs, input_size=params.input_size)
        result: Any = analyze(
            cell,
            params,
            x,
            backend=backend,
            dtype=dtype,
            structure=structure,
            compiled=compiled,
            **measure.analyze_kwargs(),
        )
        final = result.log10_spectral_norm[-1]
        summary = f"{result.cell}: n={result.hidden_size}"
        what = "log10 ||ds_T/ds_0||_2"
    else:
        from .stack import analyze_stack

        if paths or singular_lags or lyapunov:
            raise UsageError(
                "--paths, --singular-lags and --lyapunov apply to one-layer models; a stack "
                "reports per-layer and cross-layer chains instead (or analyse one layer: "
                "--layers 1)"
            )
        if structure != "auto" or compiled is not None:
            raise UsageError(
                "--structure and --compiled/--no-compiled apply to one-layer models; a stack "
                "runs its own chain (or analyse one layer: --layers 1)"
            )
        x = load_inputs(inputs, input_size=input_size)
        grad = gradient or "last"  # a stack always records its sensitivities
        result = analyze_stack(
            depths, x, gradient=grad, lag_split=lag_split, backend=backend, dtype=dtype
        )
        if result.log10_spectral_norm is not None:
            final, what = result.log10_spectral_norm[-1], "log10 ||dS_T/dS_0||_2 (joint)"
        else:  # no joint product for a bidirectional stack (docs/stacks.md)
            final = result.layer_log10_spectral_norm[-1][-1]
            what = f"log10 ||ds_T/ds_0||_2 ({result.layers[-1]['name']})"
        summary = f"{result.cell}: {len(result.layers)} layer(s), n={result.hidden_size}"
    meta = {**result.meta, **meta_extra, "weights": str(weights), "inputs": str(inputs)}
    result = replace(result, meta=meta)
    result.save(output, inputs=run_inputs)
    result.save_run(run_path(output))  # timings, apart from the data
    click.echo(
        f"{summary}, T={result.steps}, B={result.batch}; "
        f"{what} median {float(sorted(final)[len(final) // 2]):.3f}; wrote {output}",
        err=True,
    )


@cli.command("codegen")
@click.argument("cell", required=False)
@click.option("--cell-file", type=click.Path(dir_okay=False), help="A TOML equation file.")
@click.option(
    "--path",
    "path",
    type=click.Choice(["full", "additive", "multiplicative"]),
    default="full",
    show_default=True,
    help="Which Jacobian path the kernels follow.",
)
def codegen_cmd(cell: str | None, cell_file: str | None, path: str) -> None:
    """Print the generated kernels (step, factors, apply, jacobian) of CELL."""
    from .codegen import compile_cell

    click.echo(compile_cell(resolve_cell(cell, cell_file), "numpy", path).source, nl=False)


@cli.command("inspect")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--prefix", default=None, help="The recurrent module to describe, by name prefix.")
def inspect_cmd(path: str, prefix: str | None) -> None:
    """List what a weights file holds (PyTorch .safetensors/.npz, Keras .keras/.weights.h5,
    ONNX): format, layers, directions, cell, sizes, unrelated tensors, and the `gradflow
    analyze` command line that would analyse it."""
    from .formats import describe_weights

    click.echo(str(describe_weights(path, prefix=prefix)))


# ---- experiment commands (run, sweep) -----------------------------------------------------------


@cli.command("run")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False),
    help="Result JSON to write (default: NAME.json, NAME from the config).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no table.")
@click.pass_context
def run_cmd(ctx: click.Context, config: str, out: str | None, quiet: bool) -> None:
    """Run the experiment in CONFIG (TOML) and print decay rates per cell.

    See docs/experiments.md for the format; examples/experiments/ has examples.
    """
    from .analysis.experiment import load_config, run_experiment
    from .atomic import check_target
    from .results import run_path

    cfg = load_config(config)
    path = out or f"{cfg.name}.json"
    check_target(path, inputs=[config])
    try:
        result = run_experiment(cfg, progress=not quiet)
    except KeyboardInterrupt as exc:
        click.echo(f"{_stopped(exc)}; nothing written", err=True)
        ctx.exit(exit_code(exc))
    result.save(path, inputs=[config])
    result.save_run(run_path(path))
    if not quiet:
        click.echo(result.table())
        click.echo(f"wrote {path} ({result.run['total_s']:.1f} s)", err=True)


@cli.command("claims")
@click.option(
    "--full",
    is_flag=True,
    help="Larger networks and 20 weight draws per claim (minutes); default: the report's run.",
)
@click.option(
    "-o",
    "--out",
    default="claims.json",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Result JSON to write.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@click.pass_context
def claims_cmd(ctx: click.Context, full: bool, out: str, quiet: bool) -> None:
    """Measure the report's claims (a)-(f), each with its conditions and bootstrap intervals.

    `gradflow report` runs the quick version; --full reruns them at the larger sizes. Draw the
    result with `gradflow report` or read it with gradflow.results.load_result.
    """
    from .analysis.claims import run_claims
    from .atomic import check_target
    from .results import run_path

    check_target(out, inputs=[])
    try:
        result = run_claims(quick=not full, progress=not quiet)
    except KeyboardInterrupt as exc:
        click.echo(f"{_stopped(exc)}; nothing written", err=True)
        ctx.exit(exit_code(exc))
    result.save(out)
    result.save_run(run_path(out))
    if not quiet:
        for claim in result.claims:
            verdict = "holds" if claim.holds else "does not hold"
            click.echo(f"({claim.id}) {claim.title}: {verdict}. {claim.summary}")
        click.echo(f"wrote {out}", err=True)


@cli.command("sweep")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False),
    help="Directory for point files and sweep.json (default: NAME-sweep).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Worker processes (1: run inline).",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Run on a Dask scheduler, e.g. tcp://host:8786 (needs gradflow[dask]).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no table.")
@click.pass_context
def sweep_cmd(
    ctx: click.Context, config: str, out: str | None, jobs: int, scheduler: str | None, quiet: bool
) -> None:
    """Run the sweep in CONFIG (TOML with a [sweep] table); resumes in the output directory.

    Finished points are kept, so an interrupted sweep continues where it stopped.
    """
    from .analysis.sweep import load_sweep_config, run_sweep

    if (
        scheduler is not None
        and ctx.get_parameter_source("jobs") is not click.core.ParameterSource.DEFAULT
    ):
        raise click.UsageError("give either --jobs or --scheduler, not both")
    cfg = load_sweep_config(config)
    out_dir = out or f"{cfg.name}-sweep"
    try:
        result = run_sweep(cfg, out_dir, jobs=jobs, scheduler=scheduler, progress=not quiet)
    except KeyboardInterrupt as exc:
        click.echo(f"{_stopped(exc)}; finished points kept in {out_dir}", err=True)
        ctx.exit(exit_code(exc))
    if not quiet:
        click.echo(result.table())
        click.echo(
            f"wrote {out_dir}/sweep.json ({result.evaluated} points run, "
            f"{result.reused} reused, {result.run['total_s']:.1f} s)",
            err=True,
        )


# ---- figure and report commands (plot, report) --------------------------------------------------

_FIGURE_FORMATS = ("pdf", "svg", "png")


@cli.command("plot")
@click.argument("result", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the figures (default: RESULT's name + '-figures', beside it).",
)
@click.option(
    "--venue",
    default="neurips",
    show_default=True,
    help="Figure size and fonts: neurips, icml, iclr, aistats, tmlr, jmlr, colm.",
)
@click.option(
    "--column",
    type=click.Choice(["half", "full"]),
    default="full",
    show_default=True,
    help="Width: one column (or half the text width) or full.",
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(_FIGURE_FORMATS),
    multiple=True,
    help="Repeat for several; default pdf, svg and png.",
)
def plot_cmd(
    result: str, out_dir: str | None, venue: str, column: str, formats: tuple[str, ...]
) -> None:
    """Redraw the figures of a saved RESULT (analysis, stack analysis, experiment, sweep or
    trained-models JSON)."""
    from pathlib import Path

    from .plots import plot_result, plot_stack_result, plot_trained_result
    from .results import load_result

    res = load_result(result)
    draw_all = {"stack_analysis": plot_stack_result, "trained_models": plot_trained_result}.get(
        res.kind, plot_result
    )
    out = Path(out_dir) if out_dir else Path(result).with_name(Path(result).stem + "-figures")
    for path in draw_all(res, out, venue=venue, column=column, formats=formats or _FIGURE_FORMATS):
        click.echo(str(path))


@cli.command("report")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="reports/latest",
    show_default=True,
    help="The report folder (replaced only once complete).",
)
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="An experiment TOML to report instead of the built-in comparison.",
)
@click.option("--venue", default="neurips", show_default=True, help="Figure style (see plot).")
@click.option(
    "--jobs",
    default=2,
    show_default=True,
    type=click.IntRange(1),
    help="Worker processes for the report's runs (cells, claims, sweep) and figures.",
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(_FIGURE_FORMATS),
    multiple=True,
    help="Figure files to write (repeat; default pdf, svg, png). SVG is always "
    "written: the HTML embeds it.",
)
@click.option(
    "--cells",
    "cells",
    type=click.Choice(["classic", "all"]),
    default="classic",
    show_default=True,
    help="Without --config: the 11 classic cells, or all 25 catalogue cells grouped by family.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@click.option("--cite", is_flag=True, help="Print BibTeX for every method the report used.")
def report_cmd(
    out_dir: str,
    config: str | None,
    venue: str,
    jobs: int,
    formats: tuple[str, ...],
    cells: str,
    quiet: bool,
    cite: bool,
) -> None:
    """Run the built-in comparison (or --config) and write an HTML + Markdown report.

    Without --config: the comparison of the classic cells (--cells all: every catalogue cell,
    grouped by family), the claims (quick), the trained networks and a phase-diagram sweep.
    With --config FILE: that experiment, and its [sweep] table if it has one; no claims. The
    folder is replaced only once the new report is complete. Prints the report's path; on
    stderr, unless --quiet, the headline decay rates and the time taken.
    """
    import time

    from .report import run_report, summary_lines

    start = time.perf_counter()
    out = run_report(
        out_dir,
        config=config,
        venue=venue,
        jobs=jobs,
        formats=formats or _FIGURE_FORMATS,
        progress=not quiet,
        cells=cells,
    )
    if not quiet:  # for people, on stderr; stdout keeps the one path scripts read
        for line in summary_lines(out, time.perf_counter() - start):
            click.echo(line, err=True)
    click.echo(str(out / "index.html"))
    if cite:
        click.echo((out / "data" / "references.bib").read_text(encoding="utf-8"), nl=False)


def main(argv: list[str] | None = None) -> Callable[..., Any] | None:
    """Console-script entry point: SIGINT and SIGTERM stop the run cleanly (exit 130, 143)."""
    try:
        with handle_signals():
            return cli.main(args=argv, prog_name="gradflow", standalone_mode=True)
    except KeyboardInterrupt as exc:  # outside a command (while parsing, say)
        click.echo(_stopped(exc), err=True)
        sys.exit(exit_code(exc))
