"""The ``gradflow`` command line: parse, call one library function, echo.

Every :class:`~gradflow.errors.GradflowError` becomes one line on stderr and a non-zero exit
(2 for usage errors, 1 for runtime faults); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from . import __version__
from .errors import GradflowError


class GradflowClickError(click.ClickException):
    """A GradflowError, shown as one line with the error's own exit code."""

    def __init__(self, err: GradflowError) -> None:
        super().__init__(str(err))
        self.exit_code = err.exit_code


class Group(click.Group):
    """Turns GradflowError (and Ctrl-C) into clean exits unless ``--debug`` is given."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GradflowError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise GradflowClickError(err) from None
        except MemoryError:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise click.ClickException(
                "out of memory: reduce --batch, the hidden size or the chunk size"
            ) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradflow")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Exact symbolic Jacobians and gradient-flow measurements for recurrent cells."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def resolve_cell(name: str | None, cell_file: str | None) -> Any:
    """The cell named on the command line, from the catalogue or an equation file."""
    from .cells import get_cell

    if cell_file is not None:
        if name is not None:
            raise click.UsageError("give either a cell name or --cell-file, not both")
        from .cells.parse import load_cell_file

        return load_cell_file(cell_file)
    if name is None:
        raise click.UsageError("name a cell (see `gradflow cells`) or give --cell-file")
    return get_cell(name)


@cli.command("cells")
@click.option("-n", "--hidden-size", default=128, show_default=True, type=click.IntRange(1))
@click.option("-d", "--input-size", default=64, show_default=True, type=click.IntRange(1))
def cells_cmd(hidden_size: int, input_size: int) -> None:
    """List the cell catalogue: state size, parameter count and reference."""
    from .cells import CATALOGUE

    n, d = hidden_size, input_size
    header = f"{'cell':<18} {'state':>6} {'params':>9}  reference"
    click.echo(f"hidden size n = {n}, input size d = {d}")
    click.echo(header)
    click.echo("-" * len(header))
    for cell in CATALOGUE.values():
        ref = cell.reference.split(":")[0].split(";")[0]
        click.echo(
            f"{cell.name:<18} {cell.state_size(n):>6} {cell.parameter_count(n, d):>9}  {ref}"
        )


@cli.command("derive")
@click.argument("cell", required=False)
@click.option("--cell-file", type=click.Path(dir_okay=False), help="A TOML equation file.")
@click.option("--latex", is_flag=True, help="Print LaTeX instead of text.")
@click.option("--mathml", is_flag=True, help="Print presentation MathML.")
@click.option("--explicit", "explicit_n", type=click.IntRange(1, 8), default=None,
              metavar="N", help="The explicit N-unit Jacobian with scalar symbols.")
@click.option("--paths", is_flag=True, help="Split into additive and multiplicative paths.")
@click.option("--equations", is_flag=True, help="Also print the cell's equations.")
def derive_cmd(cell: str | None, cell_file: str | None, latex: bool, mathml: bool,
               explicit_n: int | None, paths: bool, equations: bool) -> None:
    """Print the state Jacobian ds_t/ds_{t-1} of CELL, valid for every hidden size."""
    import sympy as sp

    from .symbolic.jacobian import state_jacobian
    from .symbolic.render import equations_latex

    c = resolve_cell(cell, cell_file)
    if equations:
        for line in equations_latex(c):
            click.echo(line)
        click.echo()
    if explicit_n is not None:
        J = c.jacobian(n=explicit_n)
        click.echo(sp.latex(J) if latex else sp.pretty(J, use_unicode=False, wrap_line=False))
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

# ---- experiment commands (run, sweep) -----------------------------------------------------------

# ---- figure and report commands (plot, report) --------------------------------------------------


def main(argv: list[str] | None = None) -> Callable[..., Any] | None:
    """Console-script entry point."""
    try:
        return cli.main(args=argv, prog_name="gradflow", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        click.echo("interrupted", err=True)
        sys.exit(130)

