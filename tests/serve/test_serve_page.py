"""The service's page in a real headless browser (Debian's Chromium driven by Playwright):
open it with the token, upload files, forecast, check what it shows, take a screenshot.

Playwright is used only as a driver: its own browser download cannot work offline, so the
test runs the system's Chromium and skips, saying why, when there is none.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
from serve_helpers import TOKEN, serve

from flareseq.data.synthetic import write_synthetic_kaggle, write_synthetic_swansf

CHROMIUM = Path(os.environ.get("FLARESEQ_CHROMIUM", "/usr/bin/chromium"))
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = Path(os.environ.get("FLARESEQ_TEST_OUTPUT", REPO_ROOT / "test-output")) / "serve-page.png"
# This machine's network is closed: nothing in the background may try to reach out.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

# one worker runs them all under xdist: one tiny model trained, one service started
pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.xdist_group("serve")]
expect = None  # playwright's, once the browser fixture found playwright


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the page test needs playwright (pip install "
                                                                 "'flareseq[test]')")
    global expect
    expect = sync_api.expect
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's (apt-get install chromium) or set FLARESEQ_CHROMIUM")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
        yield context
        context.close()


@pytest.fixture(scope="module")
def guarded(served_model):
    """The service on loopback with a token, as a careful user would run it."""
    with serve(served_model, token=TOKEN) as server:
        yield server


def test_upload_forecast_and_screenshot(browser_context, guarded, tmp_path, record_property):
    swan = write_synthetic_swansf(tmp_path / "swan", 5, seed=7)
    kaggle = write_synthetic_kaggle(tmp_path / "regions.jsonl", 2, seed=8, labelled=False)
    uploads = [*swan, kaggle]
    expected = requests.post(f"{guarded.url}/forecast/files", headers={"Authorization": f"Bearer {TOKEN}"},
                             files=[("files", (p.name, p.read_bytes())) for p in uploads], timeout=60).json()
    n = expected["n_samples"]
    assert n == 7

    page = browser_context.new_page()
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{guarded.url}/?token={TOKEN}")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert page.url == f"{guarded.url}/"  # the token went into a cookie, out of the address bar
    assert expected["model"]["run_id"] in page.locator("#model").inner_text()

    page.set_input_files("#files", [str(p) for p in uploads])
    page.click("#forecast")
    # (a locator, not wait_for_function: the page's CSP forbids evaluating strings as script)
    expect(page.locator("#forecasts tr")).to_have_count(n, timeout=60_000)
    assert page.locator("#error").is_hidden()
    summary = page.locator("#summary").inner_text()
    assert f"{n} samples: {expected['n_flare']} forecast to flare" in summary
    assert f"threshold {expected['threshold']:.3f}" in summary
    rows = page.locator("#forecasts tr")
    for i, forecast in enumerate(expected["forecasts"]):
        row = rows.nth(i)
        assert row.locator("td.id").inner_text() == forecast["id"]
        assert row.locator("td.probability .value").inner_text() == f"{forecast['probability']:.3f}"
        assert row.locator("td.label, td.label.flare").first.inner_text() == ("flare" if forecast["label"] else
                                                                                "no flare")
        assert row.locator("svg path.series").get_attribute("d").startswith("M")
    first_plot = rows.nth(0).locator("svg path.series").get_attribute("d")
    page.select_option("#feature", "R_VALUE")
    assert rows.nth(0).locator("svg path.series").get_attribute("d") != first_plot

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
    record_property("artifact", str(SCREENSHOT))
    print(f"screenshot of the page: {SCREENSHOT}")

    # a bad file: the page shows the service's message, naming the file
    bad = tmp_path / "notes.txt"
    bad.write_text("not a sample")
    page.set_input_files("#files", [str(bad)])
    page.click("#forecast")
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "415 (files[0]): notes.txt: expected a SWAN-SF sample (.csv)" in page.locator("#error").inner_text()
    # nothing was fetched from anywhere but the service
    assert requested and all(url.startswith(guarded.url) for url in requested), requested
    page.close()


def test_the_page_without_the_token_is_refused(browser_context, guarded):
    browser_context.clear_cookies()  # a browser that was never given the token
    page = browser_context.new_page()
    response = page.goto(f"{guarded.url}/")
    assert response.status == 401
    assert "missing or wrong token" in page.content()
    page.close()
