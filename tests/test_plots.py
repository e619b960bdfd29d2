"""Figures: style dicts, golden images, byte-for-byte determinism, atomic saves, ``gradflow plot``.

The results drawn here are the fixed synthetic files in ``tests/baseline/data`` (written by
``tests/baseline/make_data.py``, following the SPEC schemas). Golden PNGs live in
``tests/baseline``; regenerate them with ``GRADFLOW_REGEN=1 pytest tests/test_plots.py`` after
an intended change and look at them before committing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.figure import Figure
from matplotlib.testing.compare import compare_images

from gradflow import plots
from gradflow.cli import cli
from gradflow.errors import UsageError
from gradflow.results import AnalysisResult, load_json

BASELINE = Path(__file__).parent / "baseline"
DATA = BASELINE / "data"
# RMS difference on the 0-255 scale. matplotlib ships its own FreeType, so the same matplotlib
# version renders identical pixels; the slack only absorbs antialiasing differences.
TOLERANCE = 2.0


@pytest.fixture(scope="module")
def experiment() -> dict:
    return load_json(DATA / "experiment.json")


@pytest.fixture(scope="module")
def sweep() -> dict:
    return load_json(DATA / "sweep.json")


@pytest.fixture(scope="module")
def analysis() -> AnalysisResult:
    return AnalysisResult.load(DATA / "analysis.json")


def draw(name: str, result, **kwargs) -> Figure:
    rc = plots.style("icml") | {"figure.figsize": (3.0, 2.0), "figure.dpi": 100}
    with mpl.rc_context(rc):
        fig = Figure()
        getattr(plots, name)(result, fig.add_subplot(), **kwargs)
    return fig


# ---- style ------------------------------------------------------------------------------------


def test_style_is_a_plain_dict_with_stix_fonts_and_fixed_salt():
    rc = plots.style("neurips", column="full")
    assert rc["text.usetex"] is False
    assert rc["font.family"] == "STIXGeneral"
    assert rc["mathtext.fontset"] == "stix"
    assert rc["svg.hashsalt"] == plots.SVG_HASHSALT
    assert rc["svg.fonttype"] == "path"
    # NeurIPS 2024 text width is 5.5 in (tueplots figsizes.neurips2024).
    assert rc["figure.figsize"][0] == pytest.approx(5.5)
    assert plots.style("neurips")["figure.figsize"][0] == pytest.approx(2.75)
    # ICML 2024 one column is 3.25 in (tueplots figsizes.icml2024_half).
    assert plots.style("icml")["figure.figsize"][0] == pytest.approx(3.25)


def test_style_does_not_touch_global_rcparams(experiment):
    before = dict(mpl.rcParams)
    draw("plot_norms", experiment)
    after = dict(mpl.rcParams)
    assert before == after


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"venue": "nips1999"}, "unknown venue 'nips1999'; choose one of neurips"),
        ({"venue": "__class__"}, "unknown venue"),
        ({"column": "third"}, "unknown column 'third'; choose 'half' or 'full'"),
    ],
)
def test_style_rejects_unknown_names(kwargs, message):
    with pytest.raises(UsageError, match=message):
        plots.style(**kwargs)


def test_palette_is_colour_blind_safe_sequence():
    colours = plots.palette()
    assert len(set(colours)) == len(colours) >= 6
    assert set(colours) <= {tuple(c) for c in mpl.color_sequences["okabe_ito"]} or set(colours) <= {
        tuple(c) for c in mpl.color_sequences["petroff10"]
    }


# ---- golden images ----------------------------------------------------------------------------

GOLDEN = [
    ("norms", "plot_norms", "experiment", {}),
    ("norms_analysis", "plot_norms", "analysis", {}),
    ("paths", "plot_paths", "experiment", {}),
    ("singular_values", "plot_singular_values", "experiment", {"cell": "rnn"}),
    ("lyapunov", "plot_lyapunov", "experiment", {}),
    ("decay_rates", "plot_decay_rates", "experiment", {}),
    ("phase_diagram", "plot_phase_diagram", "sweep", {}),
]
# Two venue sizes: a NeurIPS text width (5.5 in) and an ICML column (3.25 in).
SIZES = [("neurips", "full"), ("icml", "half")]


@pytest.mark.parametrize(("venue", "column"), SIZES, ids=[f"{v}-{c}" for v, c in SIZES])
@pytest.mark.parametrize(("stem", "fn", "data", "kwargs"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_image(tmp_path, stem, fn, data, kwargs, venue, column):
    result = load_json(DATA / f"{data}.json")
    fig = plots.draw(result, fn, venue=venue, column=column, **kwargs)
    name = f"{stem}_{venue}_{column}"
    actual = plots.save_figure(fig, tmp_path / name, formats=("png",), dpi=100)[0]
    expected = BASELINE / f"{name}.png"
    if os.environ.get("GRADFLOW_REGEN"):
        expected.write_bytes(actual.read_bytes())
    assert expected.exists(), f"no baseline {expected}; run with GRADFLOW_REGEN=1 to make it"
    width = plots.VENUE_WIDTHS[plots.VENUES[venue]][0 if column == "full" else 1] or 0
    # The PNG is the figure at 100 dpi: exactly the venue's width (text or column), in pixels.
    assert mpl.image.imread(actual).shape[1] == round(100 * width)
    diff = compare_images(str(expected), str(actual), tol=TOLERANCE)
    assert diff is None, diff


@pytest.mark.parametrize("venue", ["neurips", "icml", "iclr", "neurips2026", "icml2026"])
@pytest.mark.parametrize("column", ["half", "full"])
def test_no_figure_is_wider_than_the_venue_text(venue, column, experiment):
    text, col = plots.VENUE_WIDTHS[plots.VENUES.get(venue, venue)]
    fig = plots.draw(experiment, "plot_norms", venue=venue, column=column)
    # Widths from the style files (VENUE_WIDTHS); a half figure is a column or half the text.
    expected = text if column == "full" else (col or text / 2)
    assert fig.get_figwidth() == pytest.approx(expected, abs=1e-9)
    assert fig.get_figwidth() <= text


def test_24_series_differ_in_colour_marker_and_line_style():
    styles = [plots.series_style(i) for i in range(24)]
    assert len(set(styles)) == 24
    # Greyscale keeps marker and dash only: those pairs are unique too.
    assert len({(s.marker, s.linestyle) for s in styles}) == 24
    # Colour-blind safe: every colour is from Okabe-Ito or petroff10, and none is yellow
    # (Okabe-Ito yellow (0.94, 0.89, 0.26): contrast ratio 1.3 on white, WCAG asks 3 for lines).
    yellow = mpl.colors.to_rgb(mpl.color_sequences["okabe_ito"][4])
    assert yellow not in {s.colour for s in styles}
    # Draw them: 24 curves on one Axes show 24 distinct (colour, marker, dash) triples.
    with mpl.rc_context(plots.style("neurips", "full")):
        fig = Figure()
        ax = fig.add_subplot()
        for i in range(24):
            st = plots.series_style(i)
            ax.plot([0, 1], [i, i], color=st.colour, marker=st.marker, linestyle=st.linestyle)
    drawn = {
        (
            mpl.colors.to_rgb(ln.get_color()),
            ln.get_marker(),
            str(ln.get_linestyle()),
            tuple(ln._unscaled_dash_pattern[1] or ()),
        )  # fmt: skip
        for ln in ax.get_lines()
    }
    assert len(drawn) == 24


def test_two_calls_on_one_axes_keep_styles_and_limits(analysis):
    other = AnalysisResult.from_dict({**analysis.to_dict(), "cell": "rnn"})
    other = AnalysisResult.from_dict(
        {**other.to_dict(), "log10_spectral_norm": (analysis.log10_spectral_norm * 3.0).tolist()}
    )
    with mpl.rc_context(plots.style("icml")):
        fig = Figure()
        ax = fig.add_subplot()
        plots.plot_norms(other, ax)
        plots.plot_norms(analysis, ax)
    lines = [ln for ln in ax.get_lines() if ln.get_gid() == "gradflow-series"]
    assert [ln.get_label() for ln in lines] == ["rnn", "lstm"]
    assert lines[0].get_color() != lines[1].get_color()
    assert lines[0].get_marker() != lines[1].get_marker()
    lo, hi = ax.get_ylim()
    for ln in lines:  # every drawn point inside the final limits, the first curve included
        y = np.asarray(ln.get_ydata(), float)
        assert lo <= y.min() and y.max() <= hi
    # Several results in one call give the same picture.
    with mpl.rc_context(plots.style("icml")):
        ax2 = Figure().add_subplot()
        plots.plot_norms([other, analysis], ax2)
    assert ax2.get_ylim() == pytest.approx((lo, hi))
    assert [ln.get_color() for ln in ax2.get_lines() if ln.get_gid()] == [
        ln.get_color() for ln in lines
    ]


def test_phase_diagram_draws_the_zero_line_it_promises(sweep):
    ax = plots.draw(sweep, "plot_phase_diagram").axes[0]
    black = [ln for ln in ax.get_lines() if mpl.colors.to_rgb(ln.get_color()) == (0, 0, 0)]
    contours = [c for c in ax.collections if type(c).__name__ == "QuadContourSet"]
    assert black or contours


def test_lyapunov_is_drawn_in_decades_per_step(experiment):
    ax = plots.draw(experiment, "plot_lyapunov").axes[0]
    assert "decades/step" in ax.get_ylabel()
    res = plots.load_result(experiment)
    name = next(c for c in res.cells if res.cells[c].lyapunov_exponents is not None)
    line = next(ln for ln in ax.get_lines() if ln.get_label() == name)
    nats = np.median(np.atleast_2d(res.cells[name].lyapunov_exponents), axis=0)
    # Exact unit change: lambda / ln 10 (the median is taken before or after: a linear map).
    assert np.asarray(line.get_ydata(), float)[0] == pytest.approx(nats[0] / np.log(10), rel=1e-12)


# ---- what is drawn ----------------------------------------------------------------------------


def test_norms_from_analysis_band_spans_the_batch(analysis):
    ax = draw("plot_norms", analysis).axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "lstm"]
    # Reference: the median over the batch of the saved array, computed here with numpy.
    np.testing.assert_allclose(
        line.get_ydata(), np.median(analysis.log10_spectral_norm, axis=1), rtol=0, atol=1e-12
    )
    assert ax.get_xlim() == (0.0, float(analysis.steps))


def test_thin_keeps_exact_medians_and_an_envelope_band():
    x = np.arange(1001, dtype=float)
    rng = np.random.default_rng(0)
    median = -0.01 * x + 0.1 * rng.standard_normal(x.size)
    band = plots.Band(x, median - 0.5, median, median + 0.5)
    thin = plots.thin(band, 200)
    assert len(thin.x) <= 201 and thin.x[0] == 0 and thin.x[-1] == 1000
    idx = thin.x.astype(int)
    np.testing.assert_array_equal(thin.median, median[idx])  # exact values, not averages
    for k in range(len(idx) - 1):  # each point's band covers the lags it stands for
        group = slice(idx[k], idx[k + 1])
        assert thin.low[k] <= band.low[group].min() and thin.high[k] >= band.high[group].max()
    assert plots.thin(band, 2000) is band


def test_norms_from_experiment_draw_saved_median_and_overlays(experiment):
    ax = draw("plot_norms", experiment).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["rnn", "lstm", "gru", "Pascanu bound", "mean-field slope", "Lyapunov slope"]
    rnn = experiment["cells"]["rnn"]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "rnn"]
    np.testing.assert_array_equal(line.get_ydata(), rnn["log10_spectral_norm"]["median"])
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    np.testing.assert_array_equal(dashed[0].get_ydata(), rnn["pascanu"]["log10_bound"])
    dotted = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"][0]
    # The mean-field line has the predicted slope (decades per lag) and starts at the window.
    slope = np.diff(dotted.get_ydata())
    np.testing.assert_allclose(slope, rnn["meanfield"]["predicted_slope"], atol=1e-12)
    k0 = rnn["decay_rate"]["window"][0]
    assert dotted.get_ydata()[k0] == pytest.approx(rnn["log10_spectral_norm"]["median"][k0])
    # The Lyapunov line: slope = mean over runs of the largest exponent (nats -> decades),
    # through the median at the last lag, over the fitted window (reference: the saved data).
    lyap = [ln for ln in ax.get_lines() if ln.get_gid() == "gradflow-lyapunov-slope"]
    assert len(lyap) == 3  # one per cell
    lam = np.mean(np.asarray(rnn["lyapunov_exponents"])[:, 0]) / np.log(10.0)
    np.testing.assert_allclose(np.diff(lyap[0].get_ydata()), lam, atol=1e-12)
    assert lyap[0].get_ydata()[-1] == pytest.approx(rnn["log10_spectral_norm"]["median"][-1])
    assert lyap[0].get_xdata()[0] == k0


def test_null_values_in_json_are_gaps_not_errors(experiment):
    broken = json.loads(json.dumps(experiment))
    broken["cells"]["rnn"]["log10_spectral_norm"]["median"][30] = None
    broken["cells"]["rnn"]["lyapunov_exponents"][0][3] = None
    draw("plot_norms", broken)
    draw("plot_lyapunov", broken)


def test_missing_data_is_a_usage_error(experiment, sweep):
    bare = json.loads(json.dumps(experiment))
    for cell in bare["cells"].values():
        cell.update(paths={}, log10_singular_values={}, lyapunov_exponents=[])
    for fn, message in (
        ("plot_paths", "no path data"),
        ("plot_singular_values", "no singular values"),
        ("plot_lyapunov", "no Lyapunov"),
    ):
        with pytest.raises(UsageError, match=message):
            draw(fn, bare)
    with pytest.raises(UsageError, match="from a sweep"):
        draw("plot_phase_diagram", experiment)
    with pytest.raises(UsageError, match="has no norms"):
        draw("plot_norms", sweep)
    with pytest.raises(UsageError, match="unknown quantity"):
        draw("plot_norms", experiment, quantity="log10_everything")


def test_phase_diagram_centres_colours_at_zero_and_labels_regimes(sweep):
    ax = draw("plot_phase_diagram", sweep).axes[0]
    mesh = ax.collections[0]
    assert mesh.norm.vcenter == 0.0
    assert ax.get_xlabel() == r"$\sigma_w$" and ax.get_ylabel() == r"$\sigma_b$"
    regimes = {p["regime"] for p in sweep["points"]}
    # One letter per grid cell, and the key to the letters in the title.
    assert {t.get_text() for t in ax.texts} == {r[0] for r in regimes}
    assert len(ax.texts) == len(sweep["axes"]["sigma_w"]) * len(sweep["axes"]["sigma_b"])
    assert all(f"{r[0]}: {r}" in ax.get_title() for r in regimes)
    # A zero contour is drawn because the synthetic decay rate changes sign.
    assert len(ax.collections) >= 2


def test_phase_diagram_one_axis_and_categorical(sweep):
    one = {
        "kind": "sweep",
        "axes": {"cell": ["rnn", "lstm", "gru"]},
        "points": [
            {"params": {"cell": c}, "decay_rate": r, "log10_norm_final": 60 * r, "regime": g}
            for c, r, g in (
                ("rnn", -0.05, "vanishing"),
                ("lstm", -0.01, "vanishing"),
                ("gru", 0.0, "preserved"),
            )
        ],
    }
    ax = draw("plot_phase_diagram", one).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["rnn", "lstm", "gru"]


# ---- saving -----------------------------------------------------------------------------------


def test_two_saves_give_identical_bytes_in_every_format(tmp_path, experiment):
    for run in ("a", "b"):
        fig = draw("plot_norms", experiment)
        plots.save_figure(fig, tmp_path / run / "norms")
    for fmt in plots.FORMATS:
        a = (tmp_path / "a" / f"norms.{fmt}").read_bytes()
        b = (tmp_path / "b" / f"norms.{fmt}").read_bytes()
        assert a == b, fmt
    svg = (tmp_path / "a" / "norms.svg").read_text()
    assert "<dc:date>" not in svg and "gradflow" in svg
    pdf = (tmp_path / "a" / "norms.pdf").read_bytes()
    assert b"/CreationDate" not in pdf
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "norms.pdf",
        "norms.png",
        "norms.svg",
    ]  # no temporary files left behind


def test_each_format_draws_the_figure_once_with_the_same_bytes(experiment, monkeypatch):
    # render_figure lays the figure out once and then leaves it without a layout engine, so
    # that savefig does not draw the whole figure once more, without output, before each
    # format's own draw (a third of the figures' CPU time). Reference: the same figure with
    # that extra draw before every format (what savefig did with the engine kept): the bytes
    # must be the same (exact), so the extra draw changed nothing.
    from matplotlib.figure import Figure

    real_draw, real_save = Figure.draw, Figure.savefig
    draws: list[int] = []

    def counting_draw(self, renderer):
        draws.append(1)
        return real_draw(self, renderer)

    monkeypatch.setattr(Figure, "draw", counting_draw)
    fig = draw("plot_norms", experiment)
    engine = fig.get_layout_engine()
    ours = plots.render_figure(fig, plots.FORMATS)
    assert len(draws) == len(plots.FORMATS)
    assert fig.get_layout_engine() is engine  # put back after

    def predrawn_save(self, *args, **kwargs):
        self.draw_without_rendering()
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", predrawn_save)
    reference = plots.render_figure(draw("plot_norms", experiment), plots.FORMATS)
    assert ours == reference


def test_svg_is_identical_across_processes(tmp_path):
    script = (
        "import sys; from gradflow import plots\n"
        "plots.plot_result(sys.argv[1], sys.argv[2], formats=('svg', 'pdf'))\n"
    )
    for run in ("a", "b"):
        subprocess.run(
            [sys.executable, "-c", script, str(DATA / "sweep.json"), str(tmp_path / run)],
            check=True,
        )
    for name in ("phase_diagram.svg", "phase_diagram.pdf"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_failed_save_keeps_previous_file(tmp_path, experiment, monkeypatch):
    fig = draw("plot_norms", experiment)
    (target,) = plots.save_figure(fig, tmp_path / "norms", formats=("png",))
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        plots.save_figure(fig, tmp_path / "norms", formats=("png",))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["norms.png"]


def test_unknown_format_is_refused(tmp_path, experiment):
    with pytest.raises(UsageError, match="unknown figure format 'gif'"):
        plots.save_figure(draw("plot_norms", experiment), tmp_path / "x", formats=("gif",))


# ---- plot_result and the command line ---------------------------------------------------------


def test_plot_result_draws_every_supported_figure(tmp_path):
    written = plots.plot_result(DATA / "analysis.json", tmp_path, formats=("svg",))
    assert sorted(p.name for p in written) == [
        "lyapunov.svg",
        "norms.svg",
        "norms_frobenius.svg",
        "paths.svg",
        "singular_values_lstm.svg",
    ]
    with pytest.raises(UsageError, match="claims result has no figure"):
        plots.plot_result(DATA / "claims.json", tmp_path)


def test_cli_plot_redraws_saved_results(tmp_path):
    runner = CliRunner()
    out = tmp_path / "figs"
    res = runner.invoke(
        cli,
        ["plot", str(DATA / "sweep.json"), "--out", str(out), "--format", "png", "--venue", "icml"],
    )
    assert res.exit_code == 0, res.output
    assert (out / "phase_diagram.png").exists()
    assert "phase_diagram.png" in res.output
    res = runner.invoke(
        cli, ["plot", str(DATA / "sweep.json"), "--out", str(out), "--venue", "nips1999"]
    )
    assert res.exit_code == 2
    assert "unknown venue 'nips1999'" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "mystery"}')
    res = runner.invoke(cli, ["plot", str(bad)])
    assert res.exit_code == 2
    assert "unknown result kind 'mystery'" in res.output


def _catalogue_like(experiment: dict) -> dict:
    """The synthetic experiment with its three cells copied under eight catalogue names."""
    big = json.loads(json.dumps(experiment))
    source = big["cells"]
    copies = {"rnn": "rnn", "rnn-relu": "rnn", "indrnn": "rnn", "lstm": "lstm",
              "lstm-cifg": "lstm", "lstm-peephole": "lstm", "gru": "gru", "mgu": "gru"}  # fmt: skip
    big["cells"] = {new: json.loads(json.dumps(source[old])) for new, old in copies.items()}
    for c in big["cells"].values():
        c.pop("card", None)
    return big


def test_more_than_six_cells_are_drawn_as_one_panel_per_family(experiment):
    big = _catalogue_like(experiment)
    for plot in ("plot_norms", "plot_lyapunov"):
        fig = plots.draw(big, plot, venue="neurips", column="full")
        axes = [ax for ax in fig.axes if ax.get_visible()]
        # the catalogue's families (cells.catalogue.FAMILIES), in order of first appearance
        titles = ["Elman RNNs", "diagonal cells", "LSTM family", "GRU family"]
        assert [ax.get_title() for ax in axes] == titles
        assert fig.get_figwidth() == pytest.approx(5.5)  # NeurIPS text width, never wider
        colours = {}
        for ax in axes:
            series = [ln for ln in ax.get_lines() if ln.get_gid() == "gradflow-series"]
            assert 1 <= len(series) <= 6
            for ln in series:
                colours[ln.get_label()] = (ln.get_color(), ln.get_marker(), ln.get_linestyle())
        assert len(colours) == 8 and len(set(colours.values())) == 8
        # A cell keeps the style of its position in the result (series_style(i)).
        st = plots.series_style(list(big["cells"]).index("mgu"))
        assert mpl.colors.to_rgb(colours["mgu"][0]) == st.colour and colours["mgu"][1] == st.marker
