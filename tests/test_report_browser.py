"""A real browser renders the report: headless Chromium takes a screenshot of index.html.

Skipped unless ``/usr/bin/chromium`` exists (Debian: ``apt-get install chromium``). The page
is offline (no network is needed or allowed: the flags switch off every background
request), and the screenshot must show varied pixels, not a blank page.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from gradflow.report import build_report
from gradflow.results import load_json

CHROMIUM = Path("/usr/bin/chromium")
DATA = Path(__file__).parent / "baseline" / "data"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


def screenshot(page: Path, png: Path, profile: Path, size: str = "1200,3000") -> None:
    """Render ``page`` with headless Chromium into ``png``."""
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={size}",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.slow
def test_chromium_renders_the_report(tmp_path):
    out = build_report(
        load_json(DATA / "experiment.json"),
        load_json(DATA / "sweep.json"),
        load_json(DATA / "claims.json"),
        tmp_path / "report",
        formats=("svg",),
    )
    png = tmp_path / "shot.png"
    screenshot(out / "index.html", png, tmp_path / "profile")
    assert png.is_file() and png.stat().st_size > 10_000
    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (3000, 1200)
    grey = image[..., :3].mean(axis=2)
    # Not blank: text, tables and figures give many distinct grey levels and dark pixels.
    assert len(np.unique(np.round(grey, 2))) > 50
    assert (grey < 0.5).mean() > 0.005
    # The figures are drawn: the Okabe-Ito blue of the first cell (#0072b2) appears.
    rgb = image[..., :3]
    blue = np.all(np.abs(rgb - np.array([0.0, 0.447, 0.698])) < 0.06, axis=-1)
    assert blue.sum() > 200
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
