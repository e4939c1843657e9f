"""Shared harness for the browser tests (tests/conftest.py) and the benches (bench/*.py).

- `start_server()`: a REAL `python -m streamlit run app.py` on a free loopback port, in its own
  process group, with a fresh temporary LSTM_DATA_DIR; waits (bounded) for /_stcore/health.
- `launch_chromium()`: headless Debian Chromium (/usr/bin/chromium) via playwright.sync_api.
- `wait_for_app_run()`: the idle wait of Streamlit's own e2e tests (stApp's
  data-test-connection-state / data-test-script-state attributes).
- `rss_bytes()`: resident memory of a process tree, from /proc (psutil is not required).

Nothing here imports streamlit, keras or the app.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-dev-shm-usage"]
HEALTH_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quiet_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log_path: Path
    tmp_dir: Path
    started_at: float
    healthy_at: float = 0.0
    own_tmp: bool = True
    _log: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the whole process group (streamlit and anything it spawned)."""
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:  # the leader is gone; make sure no child survives it
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log:
            self._log.close()
            self._log = None
        if self.own_tmp:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ServerError(RuntimeError):
    pass


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().decode().strip() == "ok"
    except Exception:  # not up yet
        return False


def start_server(app: str | Path = "app.py", cwd: Path = ROOT, env: dict | None = None,
                 timeout: float = HEALTH_TIMEOUT_S, log_path: Path | None = None) -> Server:
    """Start `python -m streamlit run APP` on 127.0.0.1:<free port> and wait until healthy.

    The server gets a fresh temporary LSTM_DATA_DIR (unless `env` sets one). Raises ServerError
    (with the server's log tail) if it exits or is not healthy within `timeout` seconds.
    """
    app = Path(app)
    if not (cwd / app).exists():
        raise ServerError(f"{cwd / app} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix="lstm-explorer-"))
    port = free_port()
    log_path = log_path or tmp / "streamlit.log"
    extra = {"LSTM_DATA_DIR": str(tmp / "data")}
    extra.update(env or {})
    cmd = [sys.executable, "-m", "streamlit", "run", str(app),
           "--server.port", str(port), "--server.address", "127.0.0.1",
           "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    log = open(log_path, "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=quiet_env(extra), stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(proc, port, log_path, tmp, t0, _log=log)
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            tail = server.log_tail()
            server.stop()
            raise ServerError(f"streamlit exited with code {proc.returncode}:\n{tail}")
        if _healthy(server.url):
            server.healthy_at = time.perf_counter()
            return server
        time.sleep(0.2)
    tail = server.log_tail()
    server.stop()
    raise ServerError(f"streamlit not healthy at {server.url} after {timeout:.0f} s:\n{tail}")


# ---- browser -------------------------------------------------------------------------------

class BrowserUnavailable(RuntimeError):
    pass


def launch_chromium(playwright=None):
    """(playwright, browser): headless Debian Chromium. Raises BrowserUnavailable with a reason.

    Pass an already started sync_playwright() instance to reuse it; otherwise one is started
    and must be stopped by the caller (`pw.stop()`).
    """
    if not os.path.exists(CHROMIUM):
        raise BrowserUnavailable(f"{CHROMIUM} not found (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        raise BrowserUnavailable(f"playwright is not installed ({e}); "
                                 "pip install -r requirements-dev.txt") from e
    pw = playwright or sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    except Exception as e:
        if playwright is None:
            pw.stop()
        raise BrowserUnavailable(f"cannot launch {CHROMIUM}: {e}") from e
    return pw, browser


APP_IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
APP_CONNECTED = "[data-testid='stApp'][data-test-connection-state='CONNECTED']"


def wait_for_app_run(page, timeout_ms: int = 30_000, settle_ms: int = 200) -> None:
    """Wait until the script run is over, as Streamlit's own e2e tests do.

    `stApp` carries data-test-connection-state (CONNECTED once the websocket is up) and
    data-test-script-state (initial -> running -> notRunning on every rerun).
    """
    page.wait_for_timeout(settle_ms)  # past widget debounce, so a triggered rerun has begun
    page.locator(APP_CONNECTED).wait_for(state="attached", timeout=timeout_ms)
    page.locator(APP_IDLE).wait_for(state="attached", timeout=timeout_ms)
    # ...and every element has rendered (no loading skeletons left).
    deadline = time.monotonic() + timeout_ms / 1000
    while page.locator("[data-testid='stSkeleton']").count() and time.monotonic() < deadline:
        page.wait_for_timeout(100)


def wait_for_app_loaded(page, timeout_ms: int = 60_000) -> None:
    page.locator("[data-testid='stAppViewContainer']").wait_for(state="attached", timeout=timeout_ms)
    wait_for_app_run(page, timeout_ms=timeout_ms)


# ---- memory --------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def _rss_one(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` and all its descendants, in bytes (0 if gone)."""
    try:
        import psutil  # optional
        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
        total = 0
        for q in procs:
            try:
                total += q.memory_info().rss
            except psutil.Error:
                pass
        return total
    except ImportError:
        pass
    except Exception:
        return 0
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_one(p)
        todo += _children(p)
    return total


# ---- in-page timing probe (benches) --------------------------------------------------------
# Clicks Train from inside the page and records, with the page's own clock, when the first
# State-flow figure is drawn; also notes queue messages and errors. Timing in the page keeps
# Python's round trips (and 40 pages polled one after another) out of the figures.
PROBE_JS = """() => {
  const flowDrawn = () => {
    // The live flow (while training) or the finished run's flow: the first state frame seen.
    const svg = document.querySelector('.st-key-flow_fig .main-svg, [class*="st-key-live_flow"] .main-svg');
    if (!svg) return false;
    const r = svg.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const trainButton = () => document.querySelector('.st-key-btn_train button') ||
    [...document.querySelectorAll('[data-testid="stSidebar"] button')]
      .find(b => b.innerText.trim() === 'Train');
  const p = window.__probe = {t0: null, t1: null, queued: 0, maxPos: 0, errors: [], hadFlow: flowDrawn()};
  const tick = () => {
    if (p.t1 !== null) return;
    const now = performance.now();
    for (const a of document.querySelectorAll('[data-testid="stAlert"], [data-testid="stException"]')) {
      const t = a.innerText;
      const m = t.match(/waiting in the queue, position (\\d+)/);
      if (m) { p.queued += 1; p.maxPos = Math.max(p.maxPos, +m[1]); }
      else if (/failed|busy|error|expired|did not finish/i.test(t) && !p.errors.includes(t)) p.errors.push(t.slice(0, 200));
    }
    if (flowDrawn() && !p.hadFlow) { p.t1 = now; return; }
    setTimeout(tick, 50);
  };
  const b = trainButton();
  if (!b) { p.errors.push('no Train button'); return false; }
  p.t0 = performance.now();
  b.click();
  setTimeout(tick, 0);
  return true;
}"""

PROBE_READ_JS = "() => window.__probe ? {...window.__probe, now: performance.now()} : null"


def click_train_and_probe(page) -> bool:
    """Click Train in `page` and start the in-page timer (read it with `read_probe`)."""
    return bool(page.evaluate(PROBE_JS))


def read_probe(page) -> dict | None:
    """The probe's state: t0/t1 (page ms), queued (polls showing a queue position), maxPos,
    errors. `ms` is t1 - t0 once the flow figure is drawn, else None."""
    p = page.evaluate(PROBE_READ_JS)
    if p is not None:
        p["ms"] = None if p.get("t1") is None else p["t1"] - p["t0"]
    return p


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds used so far by a process tree (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def wait_until_quiet(pid: int, limit: float = 180.0, busy: float = 0.15) -> float:
    """Wait until the server uses under `busy` of a core over 2 s (e.g. its background
    pre-compilation of the presets is done). Returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        a = cpu_seconds(pid)
        time.sleep(2.0)
        if cpu_seconds(pid) - a < 2.0 * busy:
            break
    return time.monotonic() - t0


def pct(xs: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values): the benches' p50/p95."""
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs) + 0.5) - 1))]


# ---- a shape no preset has (benches of a student's own settings) ---------------------------

def new_shape_units(start: int = 11):
    """Unit counts 11, 12, ... that no preset uses, so each is a net shape the server has not
    compiled ahead (with the other settings at their defaults). Not 40+: over
    LSTM_MAX_RUN_MB with the defaults, such a link falls back to other settings."""
    import itertools
    from models.presets import PRESETS  # settings only: no keras, no streamlit
    taken = {p.config.units for p in PRESETS.values()}
    return (u for u in itertools.count(start) if u not in taken)


def check_kept_units(page, url: str) -> None:
    """Raise unless the page kept the link's units=N (a link whose settings cannot run falls
    back to other settings, and a measurement of those would be of the wrong shape)."""
    want = next((p for p in url.split("?", 1)[-1].split("&") if p.startswith("units=")), None)
    if want is not None and want not in page.url.split("?", 1)[-1].split("&"):
        raise RuntimeError(f"the page did not keep {want}: {page.url}")
