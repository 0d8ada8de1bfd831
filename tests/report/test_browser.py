"""The report in a real browser: headless Chromium renders it with no console message and no network request.

Requests are read from Chromium's own network log (--log-net-log): a request the page made carries the page's
file:// origin in its network isolation key, unlike the browser's background traffic.  Host resolution is
mapped to nothing, so even a request that slipped through cannot leave the machine.
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylesurv.report.html import write_report
from tests.report.fake_run import build_run

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _chromium_installed() -> None:
    # `make test` installs Debian's chromium; without it these tests fail rather than pass unseen.
    assert Path(CHROMIUM).exists(), "needs Debian's chromium at /usr/bin/chromium: run `make browser`"


def render(page: Path, workdir: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Console lines, URLs the page requested (other than file: and data:), and the screenshot of ``page``."""
    shot, netlog = workdir / "screenshot.png", workdir / "net.json"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={workdir / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
        "--enable-logging=stderr", "--v=0", f"--log-net-log={netlog}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        page.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    events = json.loads(netlog.read_text())
    start_job = events["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requested = [
        e["params"]["url"]
        for e in events["events"]
        if e["type"] == start_job
        and "file://" in e["params"].get("network_isolation_key", "")
        and not e["params"]["url"].startswith(("file:", "data:"))
    ]
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB"), dtype=np.float64)
    return console, requested, pixels


def test_the_checks_catch_a_console_error_and_an_external_request(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><body><h1>x</h1><img src="http://example.invalid/a.png">'
        '<script>console.error("planted error")</script></body></html>'
    )
    console, requested, _ = render(page, tmp_path)
    assert any("planted error" in line for line in console)
    assert requested == ["http://example.invalid/a.png"]


def test_report_renders_cleanly_in_chromium(tmp_path: Path) -> None:
    run = build_run(tmp_path)
    page, _ = write_report(run, tmp_path / "report.html")
    console, requested, pixels = render(page, tmp_path)
    assert console == []
    assert requested == []
    assert pixels.shape == (2000, 1200, 3)
    assert pixels.std() > 20  # not blank: text, tables and plots
    assert (pixels.std(axis=2) > 30).mean() > 0.01  # coloured content (plots, faces) on the page
    shutil.copy(tmp_path / "screenshot.png", tmp_path / "report_screenshot.png")
