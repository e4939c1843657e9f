"""Shared test setup.

- The repo root is importable (also `pythonpath = .` in pytest.ini) and Keras uses TensorFlow
  quietly, set before anything imports keras.
- `streamlit_server` (session): a real `streamlit run app.py` on a free loopback port with a
  fresh LSTM_DATA_DIR; yields its base URL; the process group is killed at the end.
- `browser` (session) / `browser_page` (per test): headless Debian Chromium through
  playwright.sync_api. Missing Chromium or Playwright skips those tests locally and FAILS them
  when CI=true.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# A fresh result store for this test session (AppTest runs share the process-wide store).
import tempfile  # noqa: E402
os.environ.setdefault("LSTM_DATA_DIR", tempfile.mkdtemp(prefix="lstm-test-store-"))
# AppTest's stand-in Runtime looks like a server: without this, the first page would start
# compiling every preset in the background, competing with the tests for the two cores.
os.environ.setdefault("LSTM_PREWARM", "0")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from bench._server import (BrowserUnavailable, ServerError, launch_chromium,  # noqa: E402
                           start_server)

ARTIFACTS = ROOT / "test-artifacts"


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(items):
    """The claims run right after every view's page runs, so that they find them
    (tests/page_runs.py). Everything else keeps its place: moving the page runs earlier would
    put every preset in the session's store before tests that train one."""
    claims = [i for i in items if i.path.name == "test_claims.py"]
    views = [k for k, i in enumerate(items) if i.path.name == "test_every_view.py"]
    if not claims or not views:
        return
    rest = [i for i in items if i.path.name != "test_claims.py"]
    at = max(k for k, i in enumerate(rest) if i.path.name == "test_every_view.py") + 1
    items[:] = rest[:at] + claims + rest[at:]


@contextmanager
def serving(env: dict | None = None, log_name: str = "streamlit-server.log"):
    """A real `streamlit run app.py` (fresh result store, `env` added) for a fixture: yields its
    base URL; at the end, stops it and keeps its log's tail in test-artifacts/."""
    try:
        server = start_server("app.py", cwd=ROOT, env=env, log_path=None)
    except ServerError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield server.url
    finally:
        log = server.log_tail(20_000)
        server.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / log_name).write_text(log)


@pytest.fixture(scope="session")
def streamlit_server():
    """Base URL of a real `streamlit run app.py` (fresh result store), stopped at session end."""
    with serving() as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    try:
        pw, browser = launch_chromium()
    except BrowserUnavailable as e:
        _unavailable(str(e))
    try:
        yield browser
    finally:
        try:
            browser.close()
        finally:
            pw.stop()


@pytest.fixture
def browser_page(browser):
    """A fresh page (own context) with generous default timeouts; closed after the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session", autouse=True)
def _no_job_outlives_the_tests():
    """Stop and join every background job before the interpreter exits: a TensorFlow op still
    running in a daemon thread at exit can abort the process after the tests passed."""
    yield
    import threading

    from models import jobs
    m = jobs.get_manager()
    for owner in list(m.active_owners()):
        m.cancel_owner(owner)
    for th in threading.enumerate():
        if th.name.startswith("lstm-job-"):
            th.join(timeout=10)
