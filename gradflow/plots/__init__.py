r"""Figures for papers, drawn only from saved results (DESIGN decision 8).

Every ``plot_*`` function takes a result (a typed result from :mod:`gradflow.results`, its
dict, or the path of its JSON), an optional :class:`~matplotlib.axes.Axes`, and returns the
Axes. Nothing is recomputed: an
experiment already carries its quantiles; for an analysis the band is the spread over its batch.

Style lives in data: :func:`style` returns an rcParams dict (a tueplots venue bundle with STIX
fonts, a colour-blind-safe palette and deterministic SVG settings), applied with
``matplotlib.rc_context`` and never globally. :func:`save_figure` writes byte-identical files
run after run.

Examples:
    >>> import matplotlib
    >>> from matplotlib.figure import Figure
    >>> with matplotlib.rc_context(style("icml", column="half")):
    ...     fig = Figure()
    ...     ax = fig.add_subplot()
    >>> float(round(fig.get_figwidth(), 2))
    3.25

Modules, one concept each: :mod:`.style` (venues, palettes, markers), :mod:`.data` (reading
results into bands), :mod:`.curves` (curves over lags), :mod:`.spectra` (singular values,
Lyapunov exponents), :mod:`.phase` (phase diagrams), :mod:`.panels` (small multiples by cell
family), :mod:`.save` (byte-identical files) and :mod:`.figures` (which figures a result
supports; ``gradflow plot``).

References:
    [tueplots] Kraemer et al., tueplots: figure sizes and fonts for ML venues (2022).
    [okabeito2008] Okabe and Ito, Color Universal Design (2008).
"""

from .curves import plot_decay_rates as plot_decay_rates
from .curves import plot_norms as plot_norms
from .curves import plot_paths as plot_paths
from .curves import series_count as series_count
from .curves import thin as thin
from .data import Band as Band
from .data import cell_order as cell_order
from .data import cell_styles as cell_styles
from .data import load_result as load_result
from .data import norm_bands as norm_bands
from .data import result_kind as result_kind
from .figures import PLOTS as PLOTS
from .figures import draw as draw
from .figures import figure_set as figure_set
from .figures import plot_result as plot_result
from .panels import MAX_CURVES as MAX_CURVES
from .panels import by_family as by_family
from .panels import family as family
from .phase import plot_phase_diagram as plot_phase_diagram
from .save import compact_svg as compact_svg
from .save import render_figure as render_figure
from .save import save_figure as save_figure
from .save import write_figure as write_figure
from .spectra import plot_lyapunov as plot_lyapunov
from .spectra import plot_path_terms as plot_path_terms
from .spectra import plot_singular_values as plot_singular_values
from .stack import plot_stack_result as plot_stack_result
from .style import DASHES as DASHES
from .style import DPI as DPI
from .style import FORMATS as FORMATS
from .style import MARKERS as MARKERS
from .style import PATH_STYLES as PATH_STYLES
from .style import QUANTITIES as QUANTITIES
from .style import SVG_HASHSALT as SVG_HASHSALT
from .style import VENUE_WIDTHS as VENUE_WIDTHS
from .style import VENUES as VENUES
from .style import SeriesStyle as SeriesStyle
from .style import palette as palette
from .style import series_style as series_style
from .style import style as style
from .trained import plot_trained_result as plot_trained_result
