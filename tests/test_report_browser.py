"""The report as a reader sees it: a real experiment's HTML page opened in headless Chromium.

A small grid (two zipped configurations and two baselines) runs into a real MLflow store,
``flareseq.experiments.report.write_experiment_report`` writes its report and the index page,
and Chromium takes screenshots of the runs table, the figures and the index. They are
written to ``$FLARESEQ_SCREENSHOTS`` (default: ``<temp dir>/flareseq-screenshots``; the path
is printed) for a person to look at; the test checks that each one shows a rendered page
(the table's text, the figures' colours), not a blank or a broken image. Skipped, with the
reason, where no Chromium is installed (``apt-get install chromium``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mlflow")
pytest.importorskip("matplotlib")

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SCREENSHOT_DIR = Path(os.environ.get("FLARESEQ_SCREENSHOTS", Path(tempfile.gettempdir()) / "flareseq-screenshots"))
WINDOW = (1280, 1000)


def _browser() -> str:
    for name in (os.environ.get("FLARESEQ_CHROMIUM", ""), *BROWSERS):
        if name and (found := shutil.which(name)):
            return found
    pytest.skip(f"no headless browser: none of {', '.join(BROWSERS)} is on PATH (apt-get install chromium; "
                "or set FLARESEQ_CHROMIUM)")


def screenshot(browser: str, page: Path, anchor: str, png: Path) -> Path:
    """A window-sized screenshot of ``page`` scrolled to ``#anchor``.

    Headless Chromium's --screenshot ignores a URL fragment, so the page is shown in a
    window-sized iframe whose source carries the fragment (a frame does scroll to it).
    """
    frame = page.parent / f"_screenshot-{anchor}.html"
    width, height = WINDOW
    frame.write_text(f'<!DOCTYPE html><html><body style="margin:0"><iframe src="{page.name}#{anchor}" '
                     f'style="border:0;width:{width}px;height:{height}px"></iframe></body></html>', encoding="utf-8")
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="flareseq-chromium-") as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                   "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                   f"--screenshot={png}", frame.as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    frame.unlink()
    assert png.is_file(), f"{browser} wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return png


def _pixels(png: Path) -> np.ndarray:
    from matplotlib.image import imread

    return imread(png)[..., :3]  # (H, W, RGB) in [0, 1]


@pytest.fixture(scope="module")
def report_pages(tmp_path_factory):
    """A finished small grid in a real MLflow store, its report and the reports' index."""
    from flareseq.experiments.grid import expand_grid
    from flareseq.experiments.report import write_experiment_report
    from flareseq.experiments.runner import make_tracker, run_experiment
    from flareseq.reporting.index import write_reports_index

    out = tmp_path_factory.mktemp("browser")
    values = {
        "data": {"synthetic_samples": 600},
        "training": {"epochs": 2, "batch_size": 64, "early_stopping": False, "n_threads": 1},
        "model": {"params": {"hidden_size": 8}},
        "verification": {"n_bootstrap": 50},
        "baselines": ["climatology", "logistic-summary"],
        "tracking": {"output_dir": str(out), "experiment": "browser"},
        "grid": {"model.name": ["lstm", "stacked-lstm"],
                 "zip": {"training.class_weight": [{"0": 1, "1": 5}, {"0": 1, "1": 1}]}},
    }
    experiment = expand_grid(values, default_name="browser")
    results = run_experiment(experiment, progress=False, echo=lambda line: None)
    assert [r.status for r in results] == ["FINISHED"] * 6
    uri = make_tracker(experiment.runs[0]).tracking_uri
    paths = write_experiment_report(uri, "browser", out / "reports" / "browser", n_boot=100)
    index = write_reports_index(out / "reports")
    return paths.html, index


@pytest.mark.slow
def test_report_renders_in_a_real_browser(report_pages, capsys):
    browser = _browser()
    page, index = report_pages
    shots = {
        "runs": screenshot(browser, page, "runs", SCREENSHOT_DIR / "report-runs.png"),
        "figures": screenshot(browser, page, "figures", SCREENSHOT_DIR / "report-figures.png"),
        "reliability": screenshot(browser, page, "figure-reliability", SCREENSHOT_DIR / "report-reliability.png"),
        "index": screenshot(browser, index, "top", SCREENSHOT_DIR / "report-index.png"),
    }
    with capsys.disabled():
        print(f"\nreport screenshots (look at them): {', '.join(str(p) for p in shots.values())}")
    for name, png in shots.items():
        pixels = _pixels(png)
        assert pixels.shape[:2] == (WINDOW[1], WINDOW[0]), name
        ink = (pixels.min(axis=2) < 0.6).mean()  # dark text, lines, bars
        assert ink > 0.01, f"{name}: the screenshot is (nearly) blank: {png}"
    # The figures are drawn (images decoded, not broken-image icons): the bars' and curves' colours show.
    colour = _pixels(shots["figures"])
    saturated = (colour.max(axis=2) - colour.min(axis=2)) > 0.35
    assert saturated.mean() > 0.01, f"no coloured figure in {shots['figures']}"
    # The section the runs screenshot shows is the runs table (the anchor exists where expected).
    html = page.read_text(encoding="utf-8")
    runs = html.index('<h2 id="runs">')
    assert runs < html.index("<table>", runs) < html.index("lstm-c1", runs) < html.index('<h2 id="figures">')
