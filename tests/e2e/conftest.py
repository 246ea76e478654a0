"""Fixtures of the browser tests: the app served by ``streamlit run app`` and Debian's Chromium under Playwright.

* ``app_paths``: the model and bank the server uses: a tiny random model and its toy-world bank built for the
  tests (``tests/app_helpers.py``), or ``MMV_E2E_MODEL`` / ``MMV_E2E_BANK`` (e.g. the demo's, to take the README
  screenshots with a trained model).
* ``server``: ``streamlit run app`` on a free loopback port (``--server.headless true``), started once for the
  session; the fixture waits for ``/_stcore/health`` to answer ``ok`` and ends the server's process group after.
* ``browser`` / ``page``: Chromium from ``/usr/bin/chromium`` (``CHROMIUM`` overrides; no browser download).
  ``settle(page, text)`` waits for a text and the end of the script run. ``shoot(page, name)`` saves a
  screenshot under the test's temporary directory, and also into ``docs/screenshots/`` when
  ``MMV_SAVE_SCREENSHOTS=1``.

The tests skip, saying why, when Playwright or Chromium is missing (``make test`` installs Chromium with apt
where it can).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "docs" / "screenshots"
STARTUP_TIMEOUT = 90.0
#: The app's root element while no script run is in progress.
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def settle(page, text: str | None = None) -> None:
    """Waits for ``text`` (when given) and for the script run to end."""
    if text is not None:
        page.get_by_text(text).first.wait_for()
    page.wait_for_selector(IDLE)
    page.wait_for_timeout(300)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, timeout: float, process: subprocess.Popen | None = None) -> float:
    """Seconds until ``url/_stcore/health`` answers ``ok``; raises if the server dies or the time runs out."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url}/_stcore/health did not answer ok within {timeout:.0f} s")


def start_server(model: Path, bank: Path, log: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """``streamlit run app`` in its own process group; returns the process and the base URL.

    Uploads go to a directory beside ``log`` (not the shared default under the system's temporary directory).
    """
    port = port or _free_port()
    env = dict(os.environ)
    env.update(
        {
            "MMV_APP_MODEL": str(model),
            "MMV_APP_BANK": str(bank),
            "MMV_APP_UPLOADS": str(Path(log).parent / "uploads"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        }
    )
    cmd = [sys.executable, "-m", "streamlit", "run", "app", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true"]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return process, f"http://127.0.0.1:{port}"


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def playwright_api():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium) to run e2e tests")
    return sync_api


@pytest.fixture(scope="session")
def app_paths(tmp_path_factory, playwright_api) -> tuple[Path, Path]:
    model, bank = os.environ.get("MMV_E2E_MODEL"), os.environ.get("MMV_E2E_BANK")
    if model and bank:
        return Path(model), Path(bank)
    from app_helpers import tiny_model_and_bank

    return tiny_model_and_bank(tmp_path_factory.mktemp("e2e-app"))


@contextmanager
def served_app(model: Path, bank: Path, log: Path) -> Iterator[str]:
    """``streamlit run app`` on ``model`` and ``bank`` until the block ends; yields the base URL.

    Fails the test when the server does not answer within :data:`STARTUP_TIMEOUT`, and when its log holds a
    traceback once it has stopped.
    """
    process, url = start_server(model, bank, log)
    try:
        wait_for_health(url, STARTUP_TIMEOUT, process)
    except Exception as e:
        stop_server(process)
        pytest.fail(f"streamlit run app did not start: {e}\n{log.read_text(errors='replace')[-3000:]}")
    try:
        yield url
    finally:
        stop_server(process)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, f"the server logged a traceback:\n{text[-3000:]}"


@pytest.fixture(scope="session")
def server(app_paths, tmp_path_factory):
    with served_app(*app_paths, tmp_path_factory.mktemp("e2e-server") / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser(playwright_api):
    with playwright_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        except Exception as e:  # a broken install: say so rather than fail every test
            pytest.skip(f"Chromium at {CHROMIUM} does not start under Playwright: {e}")
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    p = context.new_page()
    p.set_default_timeout(60_000)
    yield p
    context.close()


@pytest.fixture()
def shoot(tmp_path):
    """``shoot(page, name)``: a screenshot in the test's temporary directory (and docs/screenshots/ on request)."""

    def take(p, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        p.screenshot(path=str(path), full_page=True)
        if os.environ.get("MMV_SAVE_SCREENSHOTS") == "1":  # for the README: 256 colours, a third of the size
            from PIL import Image

            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as im:
                im.convert("RGB").quantize(colors=256).save(SCREENSHOTS / f"{name}.png", optimize=True)
        return path

    return take
