"""The report's "Trained networks" section, built from a saved TrainedResult.

The experiment, sweep and claims are the fixed synthetic results of tests/baseline/data; the
trained-models result is a short analysis of the shipped checkpoints, saved and read back.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from gradflow.analysis.trained import analyze_trained
from gradflow.report import build_report
from gradflow.report.html import format_number
from gradflow.results import TrainedResult, load_json

DATA = Path(__file__).parent / "baseline" / "data"
STEMS = [
    "trained_norms",
    "trained_training",
    "trained_additive_share",  # with the claims (all three one-layer networks analysed)
    "trained_stack",
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    res = analyze_trained(steps=30, batch=2, seed=3, lags=(5, 10, 30))
    path = tmp_path_factory.mktemp("trained") / "trained.json"
    res.save(path)
    return path


def _build(saved: Path, out: Path) -> Path:
    return build_report(
        load_json(DATA / "experiment.json"),
        None,
        load_json(DATA / "claims.json"),
        out,
        formats=("svg", "png"),
        trained=saved,
    )


@pytest.fixture(scope="module")
def report(saved, tmp_path_factory) -> Path:
    return _build(saved, tmp_path_factory.mktemp("report") / "latest")


def test_section_files_are_written(report):
    data = sorted(p.name for p in (report / "data").iterdir())
    assert "trained.json" in data and "trained_networks.csv" in data
    figures = {p.name for p in (report / "figures").iterdir()}
    assert {f"{s}.{fmt}" for s in STEMS for fmt in ("svg", "png")} <= figures


def test_data_file_is_the_saved_result(report, saved):
    assert (
        TrainedResult.load(report / "data" / "trained.json").comparable()
        == TrainedResult.load(saved).comparable()
    )


def test_html_section_shows_every_table_number(report):
    page = (report / "index.html").read_text("utf-8")
    section = page[page.index('<section id="trained">') : page.index('<section id="cells">')]
    assert '<a href="#trained">Trained networks</a>' in page
    rows = list(
        csv.DictReader((report / "data" / "trained_networks.csv").read_text("utf-8").splitlines())
    )
    assert [r["network"] for r in rows] == ["rnn", "lstm", "gru", "lstm2", "lstm2", "lstm2"]
    assert [r["view"] for r in rows] == ["joint"] * 4 + ["l0", "l1"]
    for r in rows:  # each number in the table, as the page rounds it, from the CSV
        for key in ("init_decay_rate", "trained_decay_rate", "trained_log10_norm_lag30"):
            assert f'<td class="num">{format_number(float(r[key]))}</td>' in section
        assert format_number(float(r["test_mse"]), 4, False) in section
    for stem in STEMS:
        assert f'id="fig-{stem}"' in section
    # the section's figures are numbered after the main ones, without gaps
    numbers = [int(n) for n in re.findall(r"<strong>Figure (\d+)\.", page)]
    assert numbers == list(range(1, len(numbers) + 1))
    assert "Hochreiter" in page[page.index('<section id="references">') :]


def test_markdown_section(report):
    md = (report / "report.md").read_text("utf-8")
    section = md[md.index("## Trained networks") : md.index("## Cells and their Jacobians")]
    assert "| network | cell | n | layers |" in section
    assert "](figures/trained_norms.svg)" in section
    rows = list(
        csv.DictReader((report / "data" / "trained_networks.csv").read_text("utf-8").splitlines())
    )
    for r in rows:
        assert format_number(float(r["trained_log10_norm_lag5"])) in section
    # every table row has as many cells as its header
    for table in re.findall(r"((?:^\|.*\|\n)+)", section, flags=re.M):
        widths = {line.count("|") - line.count("\\|") for line in table.splitlines()}
        assert len(widths) == 1, table


def test_two_builds_are_byte_identical(report, saved, tmp_path):
    again = _build(saved, tmp_path / "again")
    for sub in ("data", "figures"):
        for p in sorted((report / sub).iterdir()):
            assert (again / sub / p.name).read_bytes() == p.read_bytes(), p.name
    assert (again / "index.html").read_bytes() == (report / "index.html").read_bytes()


def test_report_without_trained_has_no_section(tmp_path):
    out = build_report(
        load_json(DATA / "experiment.json"), None, None, tmp_path / "r", formats=("svg",)
    )
    assert 'id="trained"' not in (out / "index.html").read_text("utf-8")
    assert not (out / "data" / "trained.json").exists()


def test_stack_caption_follows_the_one_list_of_views(monkeypatch):
    """The stacked network's caption names one row per view of plots.trained.STACK_VIEWS, in
    its order (report.models keeps no list of its own), and a view without a caption text is
    an error rather than a silently missing row."""
    from gradflow.plots import trained as plots_trained
    from gradflow.report import models

    rows = models.stack_rows_text().split("; row ")
    assert len(rows) == len(plots_trained.STACK_VIEWS)
    assert rows[0].startswith("row 1: each layer's own chain")
    assert rows[-1].startswith(f"{len(rows)}: the fraction")
    # reordered list: the caption follows it
    views = tuple(reversed(plots_trained.STACK_VIEWS))
    monkeypatch.setattr(models, "STACK_VIEWS", views)
    assert models.stack_rows_text().startswith("row 1: the fraction")

    def plot_new_view() -> None: ...

    monkeypatch.setattr(models, "STACK_VIEWS", (*views, plot_new_view))
    with pytest.raises(KeyError, match="plot_new_view"):
        models.stack_rows_text()


def _claim_rows(report: Path) -> list[dict[str, str]]:
    text = (report / "data" / "trained_claims.csv").read_text("utf-8")
    return list(csv.DictReader(text.splitlines()))


def _shown(r: dict[str, str], stage: str) -> str:
    """A claim number as the table prints it (an exact count as an integer)."""
    value = float(r[f"{stage}_estimate"])
    if r["exact"] == "True":
        return str(int(value)) if value.is_integer() else format_number(value, 4, False)
    return format_number(value, 3, r["quantity"] not in ("z_mean", "clipped"))


def test_claims_table_shows_every_number_of_its_data_file(report, saved):
    result = TrainedResult.load(saved)
    rows = _claim_rows(report)
    # one line per (claim, network, quantity), as many as the result holds
    assert len(rows) == sum(len(c.measures) for c in result.claims) > 20
    assert [c.id for c in result.claims] == list("abcdef")
    md = (report / "report.md").read_text("utf-8")
    md_section = md[md.index("### Claims at initialisation") : md.index("## Cells and their")]
    page = (report / "index.html").read_text("utf-8")
    html = page[page.index('id="trained-claims"') : page.index('<section id="cells">')]
    table = [line for line in md_section.splitlines() if line.startswith("| ")][1:]
    assert len(table) == len(rows)
    for r, line in zip(rows, table, strict=True):
        for stage in ("init", "trained"):
            value = _shown(r, stage)
            assert value in line, (value, line)
            assert value in html
        if r["exact"] == "False":  # an interval beside the estimate, low <= estimate <= high
            assert float(r["init_low"]) <= float(r["init_estimate"]) <= float(r["init_high"])
            assert int(r["trained_sequences"]) == result.claim_inputs["batch"]
    # the caveat on what the interval is over, in both formats
    assert "not over weight draws" in md_section and "not over weight draws" in html
    for claim in result.claims:  # each claim's sentence, worded from the data
        assert f"**({claim.id}) " in md_section and f"<strong>({claim.id}) " in html
    assert "data/trained_claims.csv" in md_section
