"""A real browser renders the report: headless Chromium lays out every equation and figure.

Chromium is found on the PATH (``chromium``, ``chromium-browser``, ``google-chrome``); Debian:
``apt-get install chromium``, which ``.ci/run`` does. Under CI (``CI`` set) a missing browser is
a failure, not a skip, so the test cannot silently stop running. The page is offline: the flags
switch off every background request.

The checks run inside the page: a probe script added to a copy of ``index.html`` measures, after
the ``load`` event, the layout box of every ``<math>`` element (native MathML Core rendering)
and whether every ``<img>`` decoded, and writes the counts into the DOM, which
``--dump-dom`` prints. A screenshot checks that pixels were drawn.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from gradflow.report import build_report
from gradflow.results import load_json

DATA = Path(__file__).parent / "baseline" / "data"
NAMES = ("chromium", "chromium-browser", "google-chrome")
BROWSER = next((p for p in map(shutil.which, NAMES) if p), None)

if BROWSER is None and os.environ.get("CI"):
    pytest.fail("CI needs Chromium for the browser test (.ci/run installs it)", pytrace=False)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="needs Chromium on the PATH")

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

PROBE = """<script>
window.addEventListener('load', () => {
  const boxed = (e) => { const b = e.getBoundingClientRect(); return b.width > 0 && b.height > 0; };
  const maths = [...document.querySelectorAll('math')];
  const imgs = [...document.images];
  const r = {
    maths: maths.length,
    maths_unboxed: maths.filter((m) => !boxed(m)).length,
    math_display: maths.length ? getComputedStyle(maths[0]).display : '',
    imgs: imgs.length,
    imgs_broken: imgs.filter((i) => !(i.complete && i.naturalWidth > 0 && boxed(i))).length,
  };
  const pre = document.createElement('pre');
  pre.id = 'gradflow-probe';
  pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>"""


def _run(args: list[str], profile: Path) -> str:
    out = subprocess.run(
        [BROWSER, *FLAGS, f"--user-data-dir={profile}", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout


def probe(page: Path, profile: Path) -> dict[str, object]:
    """Load a copy of ``page`` with the probe script and return what it measured."""
    probed = page.with_name(f".probe-{page.name}")
    probed.write_text(page.read_text("utf-8").replace("</body>", PROBE + "</body>"), "utf-8")
    dom = _run(["--virtual-time-budget=10000", "--dump-dom", probed.resolve().as_uri()], profile)
    probed.unlink()
    found = re.search(r'<pre id="gradflow-probe">([^<]*)</pre>', dom)
    assert found, "the probe script did not run"
    return dict(json.loads(found.group(1)))


def screenshot(page: Path, png: Path, profile: Path, size: str = "1200,3000") -> None:
    """Render ``page`` with headless Chromium into ``png``."""
    _run([f"--screenshot={png}", f"--window-size={size}", page.resolve().as_uri()], profile)


def test_probe_sees_a_broken_image_and_an_unrendered_equation(tmp_path):
    # The negative control: the probe must be able to fail.
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><html><body><img src='missing.png'>"
        "<math style='display:none'><mi>x</mi></math>"
        "<math display='block'><mi>y</mi></math></body></html>",
        "utf-8",
    )
    r = probe(page, tmp_path / "profile")
    assert r == {
        "maths": 2,
        "maths_unboxed": 1,
        "math_display": "none",
        "imgs": 1,
        "imgs_broken": 1,
    }


@pytest.mark.slow
def test_chromium_renders_every_equation_and_figure_of_the_report(tmp_path):
    out = build_report(
        load_json(DATA / "experiment.json"),
        load_json(DATA / "sweep.json"),
        load_json(DATA / "claims.json"),
        tmp_path / "report",
        formats=("svg",),
    )
    page = out / "index.html"
    html = page.read_text("utf-8")
    r = probe(page, tmp_path / "profile")
    # Every equation and figure in the HTML was laid out by the browser.
    assert r["maths"] == html.count("<math") and r["maths"] >= 10
    assert r["maths_unboxed"] == 0
    assert r["math_display"] == "block math"  # native MathML Core layout
    assert r["imgs"] == html.count("<img") and r["imgs"] >= 4
    assert r["imgs_broken"] == 0

    png = tmp_path / "shot.png"
    screenshot(page, png, tmp_path / "profile")
    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (3000, 1200)
    grey = image[..., :3].mean(axis=2)
    # Not blank: text, tables and figures give many distinct grey levels and dark pixels.
    assert len(np.unique(np.round(grey, 2))) > 50
    assert (grey < 0.5).mean() > 0.005
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
