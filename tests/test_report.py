"""Reports: offline HTML with well-formed MathML, escaping, Markdown math, atomic folders.

Most tests build from the fixed synthetic results in ``tests/baseline/data`` (SPEC schemas);
``test_cli_report_with_config_runs_the_real_pipeline`` runs a small real experiment and sweep
through ``gradflow report --config``.
"""

from __future__ import annotations

import base64
import csv
import html.entities
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradflow import plots
from gradflow.cells import get_cell
from gradflow.cli import cli
from gradflow.errors import UsageError
from gradflow.report import build_report
from gradflow.report.markdown import md_escape
from gradflow.results import ExperimentResult, dumps, load_json
from gradflow.symbolic.render import equations_latex, jacobian_latex

DATA = Path(__file__).parent / "baseline" / "data"
FIGURE_STEMS = [
    "decay_rates",
    "headline",
    "lyapunov",
    "norms",
    "norms_frobenius",
    "paths",
    "phase_diagram",
    "singular_values",
]


def results() -> tuple[dict, dict, dict]:
    return (
        load_json(DATA / "experiment.json"),
        load_json(DATA / "sweep.json"),
        load_json(DATA / "claims.json"),
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "latest"
    return build_report(*results(), out, formats=("svg", "png"))


class Page(HTMLParser):
    """Collects tags, attributes, ids and the text inside each cell's article."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: list[str] = []
        self.stack: list[str] = []
        self.article: str | None = None
        self.math_in: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if a.get("id"):
            self.ids.append(a["id"])
        if tag == "article":
            self.article = a.get("id")
        if tag == "math" and self.article:
            self.math_in[self.article] = self.math_in.get(self.article, 0) + 1
        if tag not in ("meta", "img", "br", "link", "hr", "input"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()
        if tag == "article":
            self.article = None


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.stack == [], page.stack  # every element closed, in order
    return page


def math_elements(text: str) -> list[ET.Element]:
    """Each <math> element parsed as XML (named HTML5 entities made numeric first)."""

    def numeric(m: re.Match) -> str:
        name = m.group(1) + ";"
        if name in html.entities.html5:
            return "".join(f"&#{ord(c)};" for c in html.entities.html5[name])
        return m.group(0)

    blocks = re.findall(r"<math\b.*?</math>", text, flags=re.S)
    return [ET.fromstring(re.sub(r"&([A-Za-z][A-Za-z0-9]*);", numeric, b)) for b in blocks]


# ---- layout -----------------------------------------------------------------------------------


def test_report_folder_layout(report):
    assert sorted(p.name for p in report.iterdir()) == [
        "data",
        "figures",
        "index.html",
        "report.md",
        "run.json",
    ]
    assert sorted(p.name for p in (report / "data").iterdir()) == [
        "claims.csv",
        "claims.json",
        "decay_rates.csv",
        "experiment.json",
        "references.bib",
        "sweep.json",
        "sweep_points.csv",
    ]
    assert sorted(p.name for p in (report / "figures").iterdir()) == sorted(
        f"{s}.{fmt}" for s in FIGURE_STEMS for fmt in ("png", "svg")
    )
    siblings = [p.name for p in report.parent.iterdir()]
    assert siblings == ["latest"]  # no temporary folder left beside it


def test_report_files_get_ordinary_permissions(report):
    umask = os.umask(0)
    os.umask(umask)
    assert (report / "index.html").stat().st_mode & 0o777 == 0o666 & ~umask
    assert report.stat().st_mode & 0o777 == 0o777 & ~umask


def test_data_tables_match_the_results(report):
    experiment, _, claims = results()
    # an older result (schema 2) is written in the current schema, its numbers unchanged
    upgraded = json.loads(dumps(ExperimentResult.from_dict(experiment).to_dict(), compact=True))
    assert load_json(report / "data" / "experiment.json") == upgraded
    assert upgraded["schema_version"] == ExperimentResult.schema_version
    for name, cell in experiment["cells"].items():
        assert upgraded["cells"][name]["log10_spectral_norm"] == cell["log10_spectral_norm"]
    with open(report / "data" / "decay_rates.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["cell"] for r in rows] == ["rnn", "lstm", "gru"]  # the order the cells ran in
    for r in rows:
        rate = experiment["cells"][r["cell"]]["decay_rate"]
        assert float(r["median"]) == rate["median"]
        assert float(r["q10"]) == rate["low"] and float(r["q90"]) == rate["high"]
    with open(report / "data" / "claims.csv", newline="") as fh:
        claim_rows = list(csv.DictReader(fh))
    # one row per measured number, claim by claim, in the order each claim measured them
    assert [(r["id"], r["quantity"]) for r in claim_rows] == [
        (c["id"], k) for c in claims["claims"] for k in c["measured"]
    ]


# ---- HTML ---------------------------------------------------------------------------------------


def test_html_is_offline_and_well_formed(report):
    page = parse(report / "index.html")
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"
    for tag, attrs in page.tags:
        for key in ("href", "src"):
            url = attrs.get(key)
            if url is None:
                continue
            assert "//" not in url.split("base64,")[0], url  # no scheme-relative or http URLs
            if key == "src":
                assert tag == "img" and url.startswith("data:image/svg+xml;base64,")
                assert base64.b64decode(url.split(",", 1)[1]).startswith(b"<?xml")
            elif url.startswith("#"):
                assert url[1:] in page.ids, url
            else:
                assert (report / url).is_file(), url
    imgs = [a for t, a in page.tags if t == "img"]
    assert len(imgs) == len(FIGURE_STEMS)
    assert all(a.get("alt") for a in imgs)


def test_every_math_element_is_well_formed_mathml_with_latex(report):
    text = (report / "index.html").read_text(encoding="utf-8")
    maths = math_elements(text)
    assert maths
    for m in maths:
        assert m.get("display") == "block"
        (sem,) = list(m)
        assert sem.tag == "semantics"
        presentation, annotation = list(sem)
        assert presentation.tag == "mrow"
        assert annotation.tag == "annotation"
        assert annotation.get("encoding") == "application/x-tex"
        assert annotation.text


def test_mathml_present_for_each_cell(report):
    page = parse(report / "index.html")
    text = (report / "index.html").read_text(encoding="utf-8")
    for i, name in enumerate(["rnn", "lstm", "gru"], start=1):
        cell = get_cell(name)
        n_jac = {1: 3, 2: 4 + 2 + 2}[len(cell.state)]  # block lines: full, additive, mul
        assert page.math_in[f"cell-{i}-{name}"] >= len(cell.nodes) + min(n_jac, 3)
        for line in equations_latex(cell):
            assert line in text  # the LaTeX annotation of each equation
    rnn_jacobian = jacobian_latex(get_cell("rnn").jacobian())
    assert rnn_jacobian in text


def test_report_shows_numbers_references_and_configuration(report):
    experiment, sweep, claims = results()
    text = (report / "index.html").read_text(encoding="utf-8")
    assert "-0.05 [-0.055, -0.045]" in text  # rnn decay rate, median [q10, q90]
    assert "does not hold" in text  # claim e of the synthetic claims
    for c in claims["claims"]:
        assert c["title"] in text
    assert "Elman (1990)" in text and "Gers, Schmidhuber" in text
    assert "&#34;steps&#34;: 60" in text or "&quot;steps&quot;: 60" in text
    assert "seeds 0, 1, 2" in text
    assert f"{len(sweep['points'])} points" in text


def test_user_strings_are_escaped(tmp_path):
    experiment, sweep, claims = results()
    evil = "<script>alert(1)</script>"
    experiment["name"] = evil
    experiment["cells"]["<b>x</b>"] = experiment["cells"].pop("gru")
    claims["claims"][0]["title"] = '<img src=x onerror="alert(1)">'
    out = build_report(experiment, sweep, claims, tmp_path / "r", formats=("svg",))
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "<script" not in text and "<b>x</b>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;x&lt;/b&gt;" in text
    page = parse(out / "index.html")
    assert "script" not in [t for t, _ in page.tags]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "<script" not in md and "&lt;script&gt;" in md


def test_md_escape_keeps_tables_intact():
    assert md_escape("a|b") == "a\\|b"
    assert md_escape("x\ny") == "x y"
    assert md_escape("<i>") == "&lt;i&gt;"


# ---- Markdown -----------------------------------------------------------------------------------


def test_markdown_has_math_blocks_tables_and_figure_links(report):
    md = (report / "report.md").read_text(encoding="utf-8")
    assert md.count("```math") >= 3 * 4  # per cell: equations and three Jacobian blocks
    assert md.count("```math") == md.count("\\end{aligned}")
    assert "$`\\log_{10}\\|\\partial s_T/\\partial s_{T-k}\\|_2`$" in md
    assert "| cell | decay rate" in md and "|---|---:|" in md
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (report / link).is_file(), link
    assert "](figures/norms.svg)" in md
    for line in equations_latex(get_cell("lstm")):
        lhs, rhs = line.split(" = ", 1)
        assert f"{lhs} &= {rhs}" in md
    assert "\n\n\n" not in md


def test_same_results_give_the_same_report(report, tmp_path):
    again = build_report(*results(), tmp_path / "again", formats=("svg", "png"))
    for name in (
        "index.html",
        "report.md",
        "figures/norms.svg",
        "figures/norms.png",
        "data/decay_rates.csv",
        "data/experiment.json",
    ):
        assert (again / name).read_bytes() == (report / name).read_bytes(), name


# ---- all or nothing -----------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_interrupted_build_keeps_previous_report(report, tmp_path, monkeypatch, error):
    out = tmp_path / "latest"
    shutil.copytree(report, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real_write = plots.write_figure
    calls = []

    def failing_write(files, stem):
        calls.append(stem)
        if len(calls) == 3:
            raise error
        return real_write(files, stem)

    monkeypatch.setattr(plots, "write_figure", failing_write)
    experiment, sweep, claims = results()
    experiment["name"] = "second run"
    with pytest.raises(type(error)):
        build_report(experiment, sweep, claims, out, formats=("svg",))
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]  # no partial folder
    if isinstance(error, KeyboardInterrupt):
        return
    monkeypatch.setattr(plots, "write_figure", real_write)
    build_report(experiment, None, None, out, formats=("svg",))  # now it replaces the old one
    assert "second run" in (out / "index.html").read_text(encoding="utf-8")
    assert not (out / "data" / "sweep.json").exists()
    text = (out / "index.html").read_text(encoding="utf-8")
    assert 'id="claims"' not in text and 'id="sweep"' not in text  # sections left out
    parse(out / "index.html")
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]


def test_refuses_to_replace_what_is_not_a_report(tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("keep me")
    with pytest.raises(UsageError, match="not a gradflow report"):
        build_report(*results(), precious, formats=("svg",))
    assert (precious / "chapter1.tex").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        build_report(*results(), tmp_path / "file", formats=("svg",))
    with pytest.raises(UsageError, match="expected a sweep result"):
        build_report(results()[0], results()[0], None, tmp_path / "r")


# ---- the real pipeline --------------------------------------------------------------------------

CONFIG = """\
name = "tiny <comparison>"
cells = ["rnn", "lstm"]
hidden_size = 6
input_size = 3
steps = 40
batch = 2
seeds = [0, 1]

[quantities]
paths = true
singular_lags = [5, 20]
lyapunov = 3

[sweep]
axes = { "init.sigma_w" = [0.5, 1.0, 2.0] }
"""


def test_cli_report_with_config_runs_the_real_pipeline(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    out = tmp_path / "rep"
    res = CliRunner().invoke(
        cli,
        [
            "report",
            "--config",
            str(config),
            "--out",
            str(out),
            "--quiet",
            "--format",
            "png",
            "--jobs",
            "1",
            "--cite",
        ],
    )
    assert res.exit_code == 0, res.output
    path, bib = res.output.split("\n", 1)
    assert path == str(out / "index.html")
    # --cite: the BibTeX of what this run used (two cells, the sweep's mean-field theory).
    assert bib == (out / "data" / "references.bib").read_text(encoding="utf-8")
    assert "@article{elman1990," in bib and "@article{hochreiter1997," in bib
    experiment = load_json(out / "data" / "experiment.json")
    assert experiment["kind"] == "experiment" and set(experiment["cells"]) == {"rnn", "lstm"}
    sweep = load_json(out / "data" / "sweep.json")
    assert sweep["kind"] == "sweep" and len(sweep["points"]) == 2 * 3  # cell x sigma_w
    assert not (out / "data" / "claims.json").exists()
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "tiny &lt;comparison&gt;" in text
    assert "hidden_size = 6" in text  # the user's TOML, verbatim
    assert (out / "figures" / "phase_diagram.svg").is_file()
    assert not (out / "figures" / "norms.pdf").exists()
    assert (out / "figures" / "norms.png").is_file() and (out / "figures" / "norms.svg").is_file()
    parse(out / "index.html")
    for m in math_elements(text):
        assert m.tag == "math"
    rnn = experiment["cells"]["rnn"]
    assert json.dumps(rnn["decay_rate"]["median"])[:6] in (out / "report.md").read_text()


def test_cli_report_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("hiden_size = 8\n")
    res = CliRunner().invoke(
        cli, ["report", "--config", str(bad), "--out", str(tmp_path / "r"), "--quiet"]
    )
    assert res.exit_code == 2
    assert "hidden_size" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()


# ---- typed results: determinism, self-contained results, any quantile levels (issue 10) -------

LEAKY = Path(__file__).resolve().parents[1] / "examples" / "cells" / "leaky-rnn.toml"

SMALL = """\
name = "small"
cells = ["lstm", "cells/leaky.toml", "rnn"]
hidden_size = 3
input_size = 2
steps = 16
batch = 2
seeds = [4]
quantiles = [0.05, 0.95]

[quantities]
paths = true
singular_lags = [4]
lyapunov = 2
gradient = "last"

[sweep]
axes = { "init.sigma_w" = [0.5, 2.0] }
"""


def _small_config(folder: Path) -> Path:
    (folder / "cells").mkdir(parents=True)
    shutil.copy(LEAKY, folder / "cells" / "leaky.toml")
    (folder / "small.toml").write_text(SMALL)
    return folder / "small.toml"


def _report(config: Path, out: Path, jobs: int = 1) -> None:
    res = CliRunner().invoke(
        cli, ["report", "--config", str(config), "--out", str(out), "--quiet", "--jobs", str(jobs)]
    )
    assert res.exit_code == 0, res.output


def test_report_twice_with_one_seed_is_byte_identical(tmp_path):
    # Regression: timings were stored inside data/*.json, so two runs differed. The second
    # run uses a pool of two workers (the cells, the sweep's points and the figures rendered
    # there, issue 14): the bytes must not depend on where anything ran.
    config = _small_config(tmp_path / "cfg")
    _report(config, tmp_path / "a")
    _report(config, tmp_path / "b", jobs=2)
    files = sorted(
        p.relative_to(tmp_path / "a")
        for sub in ("data", "figures")
        for p in (tmp_path / "a" / sub).rglob("*")
        if p.is_file()
    )
    assert len(files) > 10
    assert files == sorted(
        p.relative_to(tmp_path / "b")
        for sub in ("data", "figures")
        for p in (tmp_path / "b" / sub).rglob("*")
        if p.is_file()
    )
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    run = json.loads((tmp_path / "a" / "run.json").read_text())  # the timings live here
    assert run["experiment"]["total_s"] > 0 and run["sweep"]["evaluated"] == 3 * 2  # cell x sigma_w
    # The cells keep the order they ran in, in the data and in the tables.
    data = json.loads((tmp_path / "a" / "data" / "experiment.json").read_text())
    assert list(data["cells"]) == ["lstm", "leaky-rnn", "rnn"]
    with open(tmp_path / "a" / "data" / "decay_rates.csv", newline="") as fh:
        assert [r["cell"] for r in csv.DictReader(fh)] == ["lstm", "leaky-rnn", "rnn"]


def test_quantiles_other_than_10_90_plot_and_report(tmp_path):
    # Regression: quantiles = [0.05, 0.95] made plot and report fail with KeyError: 'q10'.
    config = _small_config(tmp_path / "cfg")
    out = tmp_path / "rep"
    _report(config, out)
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "q5\u2013q95" in text and "q10" not in text
    header = (out / "data" / "decay_rates.csv").read_text().splitlines()[0]
    assert header.startswith("cell,median,q5,q95,")
    res = CliRunner().invoke(
        cli,
        [
            "plot",
            str(out / "data" / "experiment.json"),
            "--out",
            str(tmp_path / "fig"),
            "--format",
            "svg",
        ],  # fmt: skip
    )
    assert res.exit_code == 0, res.output
    drawn = {Path(line).stem for line in res.output.split()}
    # Every quantity the result holds, the gradient of L = sum(h_T) included.
    assert {"norms", "gradient", "paths", "lyapunov", "decay_rates"} <= drawn
    assert {"singular_values_lstm", "singular_values_rnn"} <= drawn


def test_report_from_copied_results_needs_no_cell_file(tmp_path):
    # Regression: the report re-read a user cell's TOML file to show its equations.
    from gradflow.analysis.experiment import load_config, run_experiment

    config = _small_config(tmp_path / "cfg")
    config.write_text(SMALL.split("[sweep]")[0])
    result = run_experiment(load_config(config), progress=False)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    result.save(moved / "experiment.json")
    shutil.rmtree(tmp_path / "cfg")  # the cell file is gone
    out = build_report(moved / "experiment.json", out_dir=tmp_path / "rep", formats=("svg",))
    page = parse(out / "index.html")
    leaky = next(a for a in page.ids if a.startswith("cell-2-leaky-rnn"))
    assert page.math_in[leaky] >= 4  # its equations and its Jacobian, as MathML
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "not available here" not in text
    card = result.cells["leaky-rnn"].card
    assert card is not None and card.source is not None and 'h_new = "(1 - alpha)' in card.source
    md = (out / "report.md").read_text(encoding="utf-8")
    assert card.equations[-1][1].split(" = ", 1)[1] in md  # LaTeX of h_new, from the card


# ---- the story: title, summary, people's numbers ---------------------------------------------


def test_first_screen_has_title_summary_and_headline_figure(report):
    experiment, _, _ = results()
    text = (report / "index.html").read_text(encoding="utf-8")
    assert f"<h1>{experiment['name']}</h1>" in text and "gradflow report: " not in text
    summary = text[text.index('<section id="summary">') : text.index('<section id="claims">')]
    assert 'id="fig-headline"' in summary and "Figure 1. Gradient flow in rnn, lstm, gru" in summary
    # The synthetic RNN decays at -0.05 [-0.055, -0.045] decades per step (make_data.py); the
    # summary rounds to 3 decimals with a true minus sign.
    assert "RNN −0.050 decades per step (10–90 % band −0.055 to −0.045)" in summary
    assert "times more slowly in the LSTM" in summary
    assert "neutral: within ±0.01 decades per step" in summary
    assert "Of the 3 cells, 2 vanish, 1 is neutral" in summary  # synthetic: GRU within 0.01
    # The summary comes before every other section.
    assert text.index('<section id="summary">') < text.index('<section id="decay-rates">')
    assert "Figure 2. " in text and text.count("Figure 1. ") == 1


def test_claims_numbers_are_rounded_with_units_in_natural_order(report):
    text = (report / "index.html").read_text(encoding="utf-8")
    claims = load_json(DATA / "claims.json")
    for c in claims["claims"]:
        keys = list(c["measured"])
        row = text[text.index(f"<strong>{c['title']}</strong>") :]
        row = row[: row.index("</tr>")]
        shown = re.findall(r"<code>([^<]+)</code> = ", row)
        assert sorted(shown) == sorted(keys)
        numbers = [[float(x) for x in re.findall(r"\d+(?:\.\d+)?", k)] for k in shown]
        # natural order: rate_sigma_w_2 before rate_sigma_w_12 (text order puts 12 first)
        prefix = [re.sub(r"\d+(?:\.\d+)?", "#", k) for k in shown]
        for i in range(len(shown) - 1):
            if prefix[i] == prefix[i + 1]:
                assert numbers[i] <= numbers[i + 1], (shown[i], shown[i + 1])
        assert not re.search(r"= -?\d+\.\d{5,}", row)  # no raw 16-digit dumps


def test_measured_formatting_rules():
    from gradflow.report.summary import format_measured, natural_key, power10, regime

    keys = ["rate_sigma_w_1", "rate_sigma_w_12", "rate_sigma_w_16", "rate_sigma_w_2"]
    assert sorted(keys, key=natural_key) == [keys[0], keys[3], keys[1], keys[2]]
    assert format_measured("rate_sigma_w_2", -0.0421234) == "−0.042 decades/step"
    # 10**-27.0 = 1.0e-27; 10**-26.1 = 7.94e-27 (exact powers of ten, rounded to 0.1).
    assert power10(-27.0) == "1.0 × 10⁻²⁷" and power10(-26.1) == "7.9 × 10⁻²⁷"
    assert format_measured("rnn_lag100", -26.1) == "7.9 × 10⁻²⁷"
    assert format_measured("relative_error", 0.0312) == "3.1 %"
    assert format_measured("gru_n64_d16", 37248) == "37\u2009248"
    assert format_measured("threshold_sigma_w", None) == "–"
    # lstm-nofg at +0.005 decades per step is neutral, not exploding (tolerance 0.01).
    assert regime(0.005) == "neutral" and regime(0.02) == "exploding"
    assert regime(-0.011) == "vanishing" and regime(None) == "no finite rate"


def test_references_bib_holds_every_cited_method(report):
    from gradflow.citations import BIBTEX

    bib = (report / "data" / "references.bib").read_text(encoding="utf-8")
    keys = re.findall(r"^@\w+\{([^,]+),", bib, flags=re.M)
    assert keys and set(keys) <= set(BIBTEX)
    assert {"elman1990", "hochreiter1997", "pascanu2013", "okabeito2008"} <= set(keys)
    for key in keys:
        assert BIBTEX[key] in bib  # the citations module's own entry, not a copy


def test_cli_cite_prints_bibtex():
    from gradflow.citations import BIBTEX

    res = CliRunner().invoke(cli, ["--cite"])
    assert res.exit_code == 0, res.output
    assert res.output.count("@") == len(BIBTEX)
    assert BIBTEX["pascanu2013"] in res.output


def test_summary_lines_say_numbers_place_and_time(report):
    from gradflow.report import summary_lines

    lines = summary_lines(report, 83.4)
    # The synthetic rates (make_data.py): rnn -0.05 [-0.055, -0.045].
    assert lines[0].startswith("decay rates, decades per step (median [band]): rnn −0.050 [")
    assert lines[1] == f"report written in 1 min 23 s: {report / 'index.html'}"
