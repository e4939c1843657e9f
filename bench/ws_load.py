"""A class on one server, without browsers: N Streamlit sessions over Streamlit's own websocket.

bench/load.py drives N headless Chromium pages; on a 2-core machine its figures are dominated
by N renderers fighting for the cores. This bench speaks the frontend's protocol directly, so
what it measures is the server: one asyncio loop plays N sessions for a few % of a core.

Each session does what the frontend does (streamlit/static/.../index.*.js,
streamlit/web/server/starlette/starlette_websocket.py):
  1. GET /?<query> (the page) and GET /_stcore/health, which sets the `_streamlit_xsrf` cookie;
  2. opens ws://.../_stcore/stream with Sec-WebSocket-Protocol "streamlit, <xsrf cookie>",
     the cookie and a same-origin Origin header;
  3. sends BackMsg.rerun_script(query_string=...) and reads ForwardMsgs (protobuf) until the
     first script run finishes, noting the widget id of the sidebar button "Train";
  4. when every session is loaded, all press Train at once: a rerun_script whose widget_states
     hold that id with trigger_value=True; the clock starts as the message is sent;
  5. keeps reading, plays the frontend's part while the job runs: AutoRerun timers (the live
     panel is a fragment with run_every=0.5 s: the *client* sends its reruns), the ForwardMsg
     cache (cached_message_hashes / ref_hash) and websocket pings (answered by `websockets`);
  6. stops the clock at the first plotly_chart delta whose figure title is "State flow" (the
     live grid while training, or the finished run's grid); the session has finished when the
     "**Last run:**" header arrives (then waits for the end of that script run, whose flow
     figure follows the header). The config that ran is checked against the intended one: the
     header (task, layout, batch size) and the Share line (every setting). Sessions that did
     not end well keep a trace of their last messages in the JSON ("events").
Sessions stay connected until the scenario ends (the app cancels jobs of closed sessions).

  A: N sessions open ?preset=seed004-streams-stateful (same config: the server may train one
     shared copy). Target: p95 Train -> first flow figure <= 3 s.
  B: N distinct configs, ?preset=<p>&seed=<100+i> over several presets. Target: every session
     finishes or is visibly queued (queue position shown); none lost.
Server RSS (process tree) is sampled every 0.5 s; target max <= 1.5 GB.

    python bench/ws_load.py [--sessions 40] [--scenario A|B|both] [--budget 600] [--json]
                            [--url URL [--pid PID]] [--presets a,b,...]

--budget bounds each scenario (seconds); --sessions is capped at 200. Without --url the bench
starts its own server (bench._server.start_server) and keeps its log in
test-artifacts/ws-load-server.log. Every run also writes its full JSON (per-session timings,
states and problems) to test-artifacts/ws-load.json.
"""
from __future__ import annotations

import argparse
import asyncio
import http.cookies
import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import cpu_seconds, pct, rss_bytes, start_server, wait_until_quiet  # noqa: E402
from models.presets import PRESETS  # noqa: E402  (no TensorFlow, no streamlit)

# Streamlit's own message classes (importing them loads the streamlit package, not a server).
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402  (a dependency of streamlit)
from websockets.exceptions import ConnectionClosed  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
PRESET_A = "seed004-streams-stateful"
# B's default mix: presets that finish in seconds on this machine (the long ones would turn B
# into a test of the queue only). --presets changes it.
PRESETS_B = ("seed004-streams-stateful", "seed004-windows-stateful", "chunks-stateful",
             "naive-chunks-mistake", "stateless-resets", "shuffle-breaks-state",
             "partial-batch-trap", "seed004-windows-stateless")
MAX_SESSIONS = 200
P95_TARGET_S = 3.0
RSS_TARGET_GB = 1.5
WARMUP_SEED = 999  # a config no scenario uses
WARMUP_BUDGET_S = 180.0

XSRF_COOKIE = "_streamlit_xsrf"
FLOW_TITLE = "State flow"  # viz/flow.py _title(): "<b>State flow</b> · ..."
RESULT_HEADER = "**Last run:**"  # ui/views.py result_header()
QUEUE_RE = re.compile(r"waiting in the queue, position (\d+)")  # ui/views.py live_panel()
ETA_RE = re.compile(r"starts in about (\d+) (s|min)")
QUEUE_GAP_TARGET_S = 2.0   # issue 9: a queued session sees its position at least this often
ETA_TOLERANCE = 0.30       # ... and its wait estimate is within +-30% of the wait it then had
PROBLEM_RE = re.compile(r"did not finish|busy|failed|expired|could not", re.I)
EARLY_FOR_RERUN = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_EARLY_FOR_RERUN")
STATUS = {v: k.replace("FINISHED_", "").lower() for k, v in ForwardMsg.ScriptFinishedStatus.items()}
SETTLE_S = 30.0  # after the result header: wait at most this for the end of its run
# Widgets whose element proto is remembered (Session.widgets) so that they can be set/pressed.
WIDGET_TYPES = frozenset({"button", "radio", "number_input", "text_input", "selectbox",
                          "checkbox", "slider"})
TRACE_LEN = 150  # events kept per session, reported for sessions that did not end well


def log(msg: str) -> None:
    print(f"[ws_load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def xsrf_cookie(base: str, query: str) -> str:
    """What a browser does before its websocket: load the page, then ping /_stcore/health,
    whose answer sets the XSRF cookie (the page itself does not set it)."""
    with urllib.request.urlopen(f"{base}/?{query}", timeout=30) as r:
        r.read()
    with urllib.request.urlopen(f"{base}/_stcore/health", timeout=30) as r:
        jar = http.cookies.SimpleCookie()
        for h in r.headers.get_all("Set-Cookie") or []:
            jar.load(h)
    if XSRF_COOKIE not in jar:
        raise RuntimeError("the server set no _streamlit_xsrf cookie (is XSRF protection off?)")
    return jar[XSRF_COOKIE].value


def code_version() -> str:
    """HEAD plus the files changed in the working tree: the server runs the working tree."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout

    try:
        status = git("status", "--porcelain", "--untracked-files=no").splitlines()
        dirty = [line[3:] for line in status if line.strip()]  # "XY path"
        head = git("rev-parse", "--short", "HEAD").strip()
        return head + (f" + uncommitted {dirty}" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def expected_config(preset: str, seed: int | None):
    cfg = PRESETS[preset].config
    return cfg if seed is None else cfg.replace(seed=seed)


def header_for(cfg) -> str:
    """The start of ui/views.py result_header() for this config."""
    mode = "stateful" if cfg.stateful else "stateless"
    return f"{RESULT_HEADER} {mode}, {cfg.task}, layout {cfg.layout}, batch size {cfg.batch_size}:"


class MessageCache:
    """The frontend's ForwardMsg cache: large elements are sent once; later runs that repeat
    them get a ref_hash, if the client listed the hash in cached_message_hashes. Entries age
    out after max_age script runs (the frontend's rule), so the list stays short."""

    def __init__(self):
        self.entries: dict[str, list] = {}  # hash -> [msg, run count when last used, fragment]
        self.runs, self.max_age, self.hits, self.misses = 0, 2, 0, 0

    def resolve(self, fm: ForwardMsg) -> ForwardMsg | None:
        if fm.WhichOneof("type") == "ref_hash":
            hit = self.entries.get(fm.ref_hash)
            if hit is None:
                self.misses += 1
                return None
            hit[1] = self.runs
            self.hits += 1
            msg = ForwardMsg()
            msg.CopyFrom(hit[0])
            msg.metadata.CopyFrom(fm.metadata)  # where it goes this time
            return msg
        if fm.metadata.cacheable and fm.hash:
            if fm.hash in self.entries:
                self.entries[fm.hash][1] = self.runs
            else:
                self.entries[fm.hash] = [fm, self.runs, fm.delta.fragment_id or None]
        return fm

    def script_finished(self, fragment_ids: list[str]) -> None:
        self.runs += 1
        for h, (_, used, frag) in list(self.entries.items()):
            if fragment_ids and frag not in fragment_ids:
                continue  # a fragment run only ages that fragment's messages
            if self.runs - used > self.max_age:
                del self.entries[h]


@dataclass
class Session:
    idx: int
    base: str
    query: str
    want_header: str
    want_query: dict  # settings the Share line must show (RunConfig.to_query() + seed)
    cookie: str | None = None  # the browser's XSRF cookie: tabs of one browser share it
    ws: object = None
    reader: asyncio.Task | None = None
    session_id: str = ""
    page_hash: str = ""
    train_id: str | None = None
    train_disabled: bool = False
    widgets: dict = field(default_factory=dict)  # key (or label) -> the widget's element proto
    cache: MessageCache = field(default_factory=MessageCache)
    timers: dict = field(default_factory=dict)  # fragment id -> (interval, asyncio.Task)
    board_task: asyncio.Task | None = None
    t_open: float = 0.0
    t_loaded: float | None = None
    t_train: float | None = None
    t_flow: float | None = None
    t_result: float | None = None
    flow_kind: str | None = None  # element key of the first flow figure (live_flow_run, ...)
    runs: int = 0
    fragment_runs: int = 0
    board: dict | None = None           # the queue line's data (ui/queue_line.py), while queued
    board_reads: int = 0                # GETs of the queue board, as the line's script does
    delta_fragment: str = ""            # the fragment of the delta being handled
    queue_positions: list = field(default_factory=list)
    queue_seen: list = field(default_factory=list)  # (time, position, estimated wait s or None)
    t_started: float | None = None                  # first progress bar after being queued
    run_live: str | None = None  # what this script run's live panel showed: queued/running
    last_live: str | None = None  # ... in the last finished run
    header: str | None = None
    share: str | None = None
    problems: list = field(default_factory=list)
    result_in_run: bool = False
    # How the script run that showed the result ended: its script_finished status, or "never"
    # (the next run's new_session came first).
    result_run_end: str | None = None
    events: deque = field(default_factory=lambda: deque(maxlen=TRACE_LEN))
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # the result is shown
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # ... and its run is over

    def note(self, what: str) -> None:
        """A timestamped event (seconds since Train, or since opening before it)."""
        t0 = self.t_train if self.t_train is not None else self.t_open
        self.events.append(f"{time.perf_counter() - t0:8.3f} {what}")

    # ---- sending -----------------------------------------------------------------------------
    async def send_rerun(self, trigger: str | None = None, fragment: str | None = None,
                         values: tuple = ()) -> None:
        """A rerun_script as the frontend sends it. Widget states: only a pressed trigger and
        `values`, (widget id, WidgetState field, value) triples such as (radio id,
        "string_value", its formatted option): what the frontend sends when a form is
        submitted; the server keeps every other widget's value from the previous run."""
        bm = BackMsg()
        cs = bm.rerun_script
        cs.query_string = self.query
        cs.page_script_hash = self.page_hash
        cs.cached_message_hashes.extend(self.cache.entries)
        cs.context_info.url = f"{self.base}/?{self.query}"
        cs.context_info.locale, cs.context_info.timezone = "en-US", "UTC"
        for wid, field_name, value in values:
            w = cs.widget_states.widgets.add()
            w.id = wid
            setattr(w, field_name, value)
        if trigger:
            w = cs.widget_states.widgets.add()
            w.id, w.trigger_value = trigger, True
        if fragment:
            cs.fragment_id, cs.is_auto_rerun = fragment, True
        await self.ws.send(bm.SerializeToString())
        self.note(f"> rerun{' Train' if trigger else ''}{' fragment' if fragment else ''}")

    async def _auto_rerun(self, fragment: str, interval: float) -> None:
        """The frontend's setInterval for a run_every fragment: fire and forget."""
        try:
            while True:
                await asyncio.sleep(interval)
                await self.send_rerun(fragment=fragment)
        except ConnectionClosed:
            pass  # the reader reports the closed connection

    def _stop_timers(self, ids=None) -> None:
        for fid in list(self.timers if ids is None else ids):
            item = self.timers.pop(fid, None)
            if item:
                item[1].cancel()

    # ---- connecting and pressing Train -------------------------------------------------------
    async def open(self) -> None:
        self.t_open = time.perf_counter()
        cookie = self.cookie or await asyncio.to_thread(xsrf_cookie, self.base, self.query)
        self.cookie = cookie
        ws_url = "ws" + self.base[len("http"):] + "/_stcore/stream"
        # Like `new WebSocket(url, ["streamlit", xsrf])` from the page's own origin: the
        # server checks the second subprotocol entry against the cookie. (Streamlit 1.67
        # accepts the socket without them too, then ignores auth cookies; a foreign Origin
        # gets 403. So the handshake is done as the frontend does it, not because it must.)
        self.ws = await connect(ws_url, origin=self.base, subprotocols=["streamlit", cookie],
                                additional_headers={"Cookie": f"{XSRF_COOKIE}={cookie}"},
                                max_size=None, max_queue=None, proxy=None, open_timeout=60)
        await self.send_rerun()
        self.reader = asyncio.create_task(self.read())

    async def press(self, name: str, values: tuple = ()) -> None:
        """Press the button (or form submit button) `name` (its key, else its label), sending
        `values` with it (see send_rerun). KeyError if the page showed no such widget."""
        self.note(f"> press {name!r}")
        await self.send_rerun(trigger=self.widgets[name].id, values=values)

    async def press_train(self) -> None:
        if self.train_id is None or self.train_disabled:
            self.problems.append("no enabled Train button on the page")
            return
        self.t_train = time.perf_counter()
        await self.send_rerun(trigger=self.train_id)

    async def close(self) -> None:
        self._stop_timers()
        if self.board_task is not None:
            self.board_task.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)

    def connection_problem(self) -> str | None:
        if self.reader is not None and self.reader.done() and not self.reader.cancelled():
            e = self.reader.exception()
            return f"connection lost: {e!r}"[:200] if e else "connection closed by the server"
        return None

    # ---- reading -----------------------------------------------------------------------------
    async def read(self) -> None:
        async for data in self.ws:
            fm = ForwardMsg()
            fm.ParseFromString(data)
            fm = self.cache.resolve(fm)
            if fm is not None:
                self.handle(fm)

    def handle(self, fm: ForwardMsg) -> None:
        kind = fm.WhichOneof("type")
        if kind == "new_session":
            self._run_started(fm)
        elif kind == "auto_rerun":
            fid, every = fm.auto_rerun.fragment_id, fm.auto_rerun.interval
            if fid and self.timers.get(fid, (None,))[0] != every:
                self._stop_timers([fid])
                self.timers[fid] = (every, asyncio.create_task(self._auto_rerun(fid, every)))
                self.note(f"< auto_rerun every {every} s")
        elif kind == "stop_auto_rerun":
            self._stop_timers(fm.stop_auto_rerun.fragment_ids)
            self.note("< stop_auto_rerun")
        elif kind == "page_info_changed":
            self.query = fm.page_info_changed.query_string  # the address bar, as the app set it
        elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
            self.delta_fragment = fm.delta.fragment_id
            self._element(fm.delta.new_element, list(fm.metadata.delta_path))
        elif kind == "script_finished":
            self._run_finished(fm)

    def _run_started(self, fm: ForwardMsg) -> None:
        ns = fm.new_session
        self.session_id = ns.initialize.session_id or self.session_id
        self.page_hash = ns.page_script_hash
        self.cache.max_age = ns.config.max_cached_message_age or self.cache.max_age
        if self.result_in_run and self.result_run_end is None:
            self.result_run_end = "never"  # no script_finished for the run with the result
            self.settled.set()
        self.run_live, self.result_in_run = None, False
        self.note(f"< new_session {'fragment' if fm.metadata.run.fragment_ids else 'full'} run")
        if fm.metadata.run.fragment_ids:
            self.fragment_runs += 1
        else:
            self.runs += 1
            self._stop_timers()  # a full run: the frontend drops every auto-rerun timer

    def _run_finished(self, fm: ForwardMsg) -> None:
        self.note(f"< script_finished {STATUS.get(fm.script_finished)}: live panel "
                  f"{self.run_live}, result {'shown' if self.result_in_run else 'not shown'}")
        if fm.script_finished != EARLY_FOR_RERUN:
            self.cache.script_finished(list(fm.metadata.run.fragment_ids))
        if self.result_in_run and self.result_run_end is None:
            self.result_run_end = STATUS.get(fm.script_finished)
        if self.t_result is not None:
            self.settled.set()
        if fm.script_finished == EARLY_FOR_RERUN:
            return  # the rerun that follows tells the story
        self.last_live = self.run_live
        if self.t_loaded is None and self.train_id is not None:
            self.t_loaded = time.perf_counter()
            self.loaded.set()

    def _element(self, el, path: list[int]) -> None:
        et = el.WhichOneof("type")
        now = time.perf_counter()
        if et in WIDGET_TYPES:  # the last run's widgets, by key (else label): see press()
            w = getattr(el, et)
            key = w.id.rsplit("-", 1)[-1] if w.id.startswith("$$ID-") else "None"
            self.widgets[w.label if key == "None" else key] = w
        if et == "button" and el.button.label == "Train" and path[:1] == [1]:  # 1: sidebar
            self.train_id, self.train_disabled = el.button.id, el.button.disabled
        elif et == "plotly_chart" and self.t_train is not None:
            self._plotly(el.plotly_chart, now)
        elif et == "bidi_component" and el.bidi_component.component_name.endswith("queue_line"):
            bc = el.bidi_component
            data = json.loads(bc.json or bc.mixed.json)
            self._seen_queued(now, data["pos"], data["when"])
            self.board = {**data, "fragment": self.delta_fragment}
            if self.board_task is None:
                self.board_task = asyncio.create_task(self._read_board())
        elif et == "alert":
            m = QUEUE_RE.search(el.alert.body)
            if m:  # the plain line (no board: RQ, or LSTM_QUEUE_BOARD=0)
                self._seen_queued(now, int(m.group(1)), el.alert.body)
            elif PROBLEM_RE.search(el.alert.body) and el.alert.body not in self.problems:
                self.problems.append(el.alert.body[:200])
        elif et == "progress":
            self.run_live = "running"
            if self.queue_seen and self.t_started is None:
                self.t_started = now
        elif et == "exception":
            self.problems.append(f"exception: {el.exception.message[:200]}")
        elif et == "markdown" and el.markdown.body.startswith(RESULT_HEADER):
            self.header, self.result_in_run = el.markdown.body, True
            self.note("< result header")
            if self.t_train is not None and self.t_result is None:
                self.t_result = now
                self.finished.set()
        elif et == "code" and el.code.code_text.startswith(("?", "http", "(all defaults)")):
            self.share = el.code.code_text  # ui/views.py exports(): the share link

    def _seen_queued(self, now: float, position: int, text: str) -> None:
        self.queue_positions.append(position)
        e = ETA_RE.search(text)
        eta = None if e is None else int(e.group(1)) * (60 if e.group(2) == "min" else 1)
        self.queue_seen.append((now, position, eta))
        self.run_live = "queued"

    async def _read_board(self) -> None:
        """The queue line's script (ui/queue_line.py _JS): read the board every `every` ms,
        show this job's place; once the board (written after the line was drawn) no longer
        lists it, rerun the live panel (the line's trigger reruns its fragment)."""
        fired = False
        try:
            while self.board is not None and self.t_started is None:
                b = self.board
                await asyncio.sleep(b["every"] / 1000)
                try:
                    board = await asyncio.to_thread(_get_json, f"{self.base}{b['url']}?t={time.time()}")
                except Exception:  # noqa: BLE001  (the script, too, tries again next second)
                    continue
                self.board_reads += 1
                mine = board.get("jobs", {}).get(b["token"])
                if mine and self.t_started is None:
                    self._seen_queued(time.perf_counter(), mine["pos"], mine["when"])
                elif not mine and board.get("t", 0) > b["since"] and not fired:
                    fired = True
                    await self.send_rerun(fragment=b["fragment"] or None)
        except ConnectionClosed:
            pass

    def _plotly(self, chart, now: float) -> None:
        if FLOW_TITLE not in chart.spec:
            return  # cheap test first: the layout and curve figures arrive as often
        title = json.loads(chart.spec).get("layout", {}).get("title", {}).get("text", "")
        if FLOW_TITLE not in title:
            return
        if self.t_flow is None:
            self.t_flow = now
            self.flow_kind = chart.id.rsplit("-", 1)[-1]  # "$$ID-<hash>-<key>": the key
            self.note(f"< first flow figure ({self.flow_kind})")

    # ---- verdict -----------------------------------------------------------------------------
    def config_problems(self) -> list[str]:
        """Did the server train the intended config? (header and Share line)"""
        out = []
        if self.finished.is_set() and self.share is None:
            out.append("no Share line: the config that ran is unchecked")
        if self.header and not self.header.startswith(self.want_header):
            out.append(f"header {self.header[:90]!r} != {self.want_header!r}")
        if self.share is not None:
            got = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.share).query))
            got = {k: v for k, v in got.items() if k not in ("preset", "run", "lock")}
            if got != self.want_query:
                out.append(f"settings {got} != {self.want_query}")
        return out

    def report(self) -> dict:
        r = self._report()
        if r["state"] != "done" or r["flow_s"] is None or r["problems"] or (
                self.result_run_end not in (None, "successfully")):
            r["events"] = list(self.events)  # the evidence
        return r

    def queue_report(self) -> dict:
        """How often the queue line was refreshed while queued, and how its wait estimates
        compared with the wait that followed (for sessions that started)."""
        seen = self.queue_seen
        if not seen:
            return {"queue_updates": 0, "queue_max_gap_s": None, "eta_errors": []}
        places = [t for t, _, _ in seen]
        times = places + ([self.t_started] if self.t_started else [])
        gaps = [b - a for a, b in zip(times, times[1:])]
        place_gaps = [b - a for a, b in zip(places, places[1:])]
        errors = []
        if self.t_started is not None:
            for t, _, eta in seen:
                actual = self.t_started - t
                if eta is not None and actual >= 1.0:  # a wait under a second: nothing to judge
                    errors.append(round((eta - actual) / actual, 3))
        worst = max(range(len(gaps)), key=gaps.__getitem__) if gaps else None
        return {"queue_updates": len(seen), "queue_max_gap_s": round(max(gaps), 2) if gaps else None,
                # when it began, from this session's Train (to see whether gaps line up)
                "queue_max_gap_at_s": None if worst is None or self.t_train is None
                else round(times[worst] - self.t_train, 2),
                "queue_max_gap_is_start": worst is not None and self.t_started is not None
                and worst == len(gaps) - 1,
                # between two places shown, and from the last place to the run's progress bar
                "place_max_gap_s": round(max(place_gaps), 2) if place_gaps else None,
                "start_gap_s": round(self.t_started - places[-1], 2) if self.t_started else None,
                "queue_wait_s": None if self.t_started is None else round(self.t_started - seen[0][0], 2),
                "eta_errors": errors}

    def _report(self) -> dict:
        # Not finished: what the last script run's live panel showed ("queued" is honest only
        # while the page keeps polling, i.e. an auto-rerun timer is still set).
        state = ("done" if self.finished.is_set() else "not loaded" if self.t_loaded is None
                 else self.last_live or "nothing shown")
        def since_train(t):
            return None if t is None or self.t_train is None else round(t - self.t_train, 3)

        return {"session": self.idx, "query": self.query, "session_id": self.session_id,
                "state": state, "flow_s": since_train(self.t_flow),
                "result_s": since_train(self.t_result),
                "flow_kind": self.flow_kind, "load_s": None if self.t_loaded is None
                else round(self.t_loaded - self.t_open, 3),
                "result_before_flow": self.t_result is not None and (
                    self.t_flow is None or self.t_flow > self.t_result),
                "queued": bool(self.queue_positions),
                **self.queue_report(),
                "max_queue_position": max(self.queue_positions, default=0),
                "runs": self.runs, "fragment_runs": self.fragment_runs, "board_reads": self.board_reads,
                "result_run_end": self.result_run_end,
                "polling": bool(self.timers), "cache_hits": self.cache.hits,
                "cache_misses": self.cache.misses,
                "problems": self.problems + self.config_problems()
                + [p for p in [self.connection_problem()] if p]}


# ---- a scenario ---------------------------------------------------------------------------

async def drive(s: Session, gate: asyncio.Event, deadline: float) -> None:
    """Open, load, wait for the gate, press Train, wait for the result. The connection stays
    open afterwards (the scenario closes it): the app cancels the jobs of closed sessions."""
    try:
        await s.open()
        await asyncio.wait_for(s.loaded.wait(), max(0.1, deadline - time.monotonic()))
        await gate.wait()
        await s.press_train()
        if s.t_train is not None:
            await asyncio.wait_for(s.finished.wait(), max(0.1, deadline - time.monotonic()))
            # The flow figure follows the result header in the same run: give it that run.
            await asyncio.wait_for(s.settled.wait(), max(0.1, min(
                SETTLE_S, deadline - time.monotonic())))
    except (asyncio.TimeoutError, TimeoutError):
        pass
    except Exception as e:  # a session's failure is a finding, not the bench's end
        s.problems.append(f"{type(e).__name__}: {e}"[:200])


async def loaded_or_failed(s: Session, task: asyncio.Task) -> None:
    waiter = asyncio.create_task(s.loaded.wait())
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


async def run_scenario(name: str, base: str, queries: list[tuple[str, object]],
                       budget: float) -> dict:
    deadline = time.monotonic() + budget
    bases = base.split(",")  # several web processes: sessions take turns, as a sticky proxy would
    sessions = [Session(i, bases[i % len(bases)], q, header_for(cfg), cfg.to_query())
                for i, (q, cfg) in enumerate(queries)]
    gate = asyncio.Event()
    tasks = [asyncio.create_task(drive(s, gate, deadline)) for s in sessions]
    t0 = time.monotonic()
    log(f"{name}: opening {len(sessions)} sessions")
    waiters = [asyncio.create_task(loaded_or_failed(s, t)) for s, t in zip(sessions, tasks)]
    await asyncio.wait(waiters, timeout=max(0.1, deadline - time.monotonic()))
    loaded = sum(s.loaded.is_set() for s in sessions)
    log(f"{name}: {loaded}/{len(sessions)} loaded in {time.monotonic() - t0:.1f} s; Train")
    t_click = time.monotonic()
    gate.set()  # every loaded session presses Train in the same loop turn
    next_log = t_click + 10
    while not all(t.done() for t in tasks) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        if time.monotonic() >= next_log:
            next_log += 10
            log(f"{name}: {sum(s.finished.is_set() for s in sessions)}/{len(sessions)} finished")
    for t in tasks + waiters:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    wall = time.monotonic() - t_click
    results = [s.report() for s in sessions]
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return summarize(name, results, wall)


def summarize(name: str, results: list[dict], wall: float) -> dict:
    done = [r for r in results if r["state"] == "done"]
    flows = [r["flow_s"] for r in results if r["flow_s"] is not None]
    states: dict[str, int] = {}
    for r in results:
        states[r["state"]] = states.get(r["state"], 0) + 1
    return {
        "scenario": name, "sessions": len(results), "finished": len(done),
        "queued_then_finished": sum(r["queued"] for r in done),
        "queued_at_end": states.get("queued", 0),
        "lost": len(results) - len(done) - states.get("queued", 0),
        "stuck": sum(r["state"] != "done" and not r["polling"] for r in results),
        "states": states, "flow_figures": len(flows),
        "finished_without_flow": sum(r["flow_s"] is None for r in done),
        "result_run_cut": sum(r["result_run_end"] not in (None, "successfully") for r in results),
        "max_queue_position": max((r["max_queue_position"] for r in results), default=0),
        **_queue_summary(results),
        "p50_s": pct(flows, 50), "p95_s": pct(flows, 95), "max_s": max(flows, default=None),
        "load_p50_s": pct([r["load_s"] for r in results if r["load_s"] is not None], 50),
        "problems": sorted({p for r in results for p in r["problems"]}),
        "wall_s": round(wall, 1), "per_session": results,
    }


def _queue_summary(results: list[dict]) -> dict:
    queued = [r for r in results if r.get("queue_updates")]
    gaps = [r["queue_max_gap_s"] for r in queued if r["queue_max_gap_s"] is not None]
    errs = [e for r in queued for e in r["eta_errors"]]
    places = [r["place_max_gap_s"] for r in queued if r.get("place_max_gap_s") is not None]
    starts = [r["start_gap_s"] for r in queued if r.get("start_gap_s") is not None]
    return {"queued_sessions": len(queued),
            "queue_gap_over_target": sum(g > QUEUE_GAP_TARGET_S for g in gaps),
            "queue_max_gap_p95_s": pct(gaps, 95), "queue_max_gap_max_s": max(gaps, default=None),
            "place_max_gap_p95_s": pct(places, 95), "place_gap_over_target":
                sum(g > QUEUE_GAP_TARGET_S for g in places),
            "start_gap_p50_s": pct(starts, 50), "start_gap_p95_s": pct(starts, 95),
            "eta_estimates": len(errs),
            "eta_within_tolerance": sum(abs(e) <= ETA_TOLERANCE for e in errs),
            "eta_error_p50": pct([abs(e) for e in errs], 50),
            "eta_error_range": (min(errs), max(errs)) if errs else None}


def _pids(pid) -> list[int]:
    """A server's pid, or the pids of several processes (web processes and workers)."""
    return [] if not pid else [pid] if isinstance(pid, int) else list(pid)


def _rss_each(pid) -> dict[int, int]:
    return {p: rss_bytes(p) for p in _pids(pid)}


def _cpu(pid) -> float:
    return sum(cpu_seconds(p) for p in _pids(pid))


async def sample_rss(pid, peaks: dict, halt: asyncio.Event, each: dict | None = None) -> None:
    """Max RSS of the server's process tree(s) (summed), every 0.5 s, into peaks[current
    scenario]; with `each`, also the max of every process tree on its own (pid -> bytes)."""
    while pid and not halt.is_set():
        per = await asyncio.to_thread(_rss_each, pid)
        rss = sum(per.values())
        if each is not None:
            for p, b in per.items():
                each[p] = max(each.get(p, 0), b)
        for k in list(peaks):
            peaks[k] = max(peaks[k], rss)
        try:
            await asyncio.wait_for(halt.wait(), 0.5)
        except (asyncio.TimeoutError, TimeoutError):
            pass


def scenario_queries(name: str, n: int, presets: list[str]) -> list[tuple[str, object]]:
    if name == "A":
        return [(f"preset={PRESET_A}", expected_config(PRESET_A, None))] * n
    out = []
    for i in range(n):  # distinct configs: presets round robin, a different seed each
        p, seed = presets[i % len(presets)], 100 + i
        out.append((f"preset={p}&seed={seed}", expected_config(p, seed)))
    return out


async def bench(args, base: str, pid: int | None) -> dict:
    # Each page fetches the queue board on its own: a browser per student, not 6 threads.
    from concurrent.futures import ThreadPoolExecutor
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=256))
    n = max(1, min(args.sessions, MAX_SESSIONS))
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise SystemExit(f"error: unknown preset(s) {unknown}; see python -m models presets")
    out = {"sessions": n, "budget_s": args.budget, "url": base, "b_presets": presets,
           "code": code_version(), "scenarios": []}
    peaks, halt, each = {"all": 0}, asyncio.Event(), {}
    sampler = asyncio.create_task(sample_rss(pid, peaks, halt, each))
    cpu0 = time.process_time()
    try:
        t = time.monotonic()  # TensorFlow import and a first compile, on a config nobody uses
        warm = await run_scenario("warm-up", base, [(f"preset={PRESET_A}&seed={WARMUP_SEED}",
                                                     expected_config(PRESET_A, WARMUP_SEED))],
                                  WARMUP_BUDGET_S)
        out["warmup_s"], out["warmup_ok"] = round(time.monotonic() - t, 1), warm["finished"] == 1
        out["warmup"] = warm
        for name in ("A", "B"):
            if args.scenario not in (name, "both"):
                continue
            if pid:  # presets still compiling in the background, or the last scenario's tail
                t = time.monotonic()
                for p in _pids(pid):
                    await asyncio.to_thread(wait_until_quiet, p, 120.0)
                out[f"quiet_before_{name}_s"] = round(time.monotonic() - t, 1)
            peaks[name] = 0
            c0 = _cpu(pid) if pid else None
            s = await run_scenario(name, base, scenario_queries(name, n, presets), args.budget)
            s["server_cpu_s"] = None if c0 is None else round(_cpu(pid) - c0, 1)
            s["server_rss_max_gb"] = peaks.pop(name) / 1e9 if pid else None
            out["scenarios"].append(s)
    finally:
        halt.set()
        await sampler
    out["server_rss_max_gb"] = peaks["all"] / 1e9 if pid else None
    out["process_rss_max_gb"] = {str(p): round(b / 1e9, 3) for p, b in each.items()}
    out["client_cpu_s"] = round(time.process_time() - cpu0, 1)
    return out


def print_table(out: dict) -> None:
    f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    print(f"{out['sessions']} websocket sessions per scenario against {out['url']}; warm-up "
          f"{out['warmup_s']:.1f} s ({'ok' if out['warmup_ok'] else 'FAILED'}); "
          f"client CPU {out['client_cpu_s']:.1f} s; code {out['code']}")
    print(f"{'scen':4} {'finished':>9} {'q->fin':>6} {'lost':>4} {'flows':>5} {'p50 s':>6} "
          f"{'p95 s':>6} {'max s':>6} {'maxpos':>6} {'RSS GB':>6} {'srv CPU':>7} {'wall s':>6}  "
          "states")
    for s in out["scenarios"]:
        print(f"{s['scenario']:4} {s['finished']:>4}/{s['sessions']:<4} "
              f"{s['queued_then_finished']:>6} {s['lost']:>4} {s['flow_figures']:>5} "
              f"{f(s['p50_s']):>6} {f(s['p95_s']):>6} {f(s['max_s']):>6} "
              f"{s['max_queue_position']:>6} {f(s['server_rss_max_gb']):>6} "
              f"{f(s['server_cpu_s']):>7} {s['wall_s']:>6.1f}  {s['states']}")
        if s["finished_without_flow"]:
            print(f"     {s['finished_without_flow']} session(s) got a result but no flow figure")
        if s["result_run_cut"]:
            print(f"     {s['result_run_cut']} session(s): the script run that showed the result "
                  "did not finish normally (see result_run_end and events in the JSON)")
        if s["stuck"]:
            print(f"     {s['stuck']} unfinished session(s) no longer polled (no auto-rerun timer)")
        if s["queued_sessions"]:
            print(f"     queue: {s['queued_sessions']} sessions queued; longest gap between "
                  f"queue-line updates p95 {f(s['queue_max_gap_p95_s'])} s, max "
                  f"{f(s['queue_max_gap_max_s'])} s; {s['queue_gap_over_target']} session(s) over "
                  f"{QUEUE_GAP_TARGET_S:.0f} s. Wait estimates: {s['eta_within_tolerance']}/"
                  f"{s['eta_estimates']} within +-{ETA_TOLERANCE:.0%} of the wait that followed "
                  f"(median |error| {f(s['eta_error_p50'])}, range {s['eta_error_range']})")
        for p in s["problems"]:
            print(f"     problem: {p}")
    print("flows: sessions that received a State-flow figure; p50/p95/max: Train sent -> first "
          "State-flow figure received (over those); q->fin: queued, then finished; lost: neither "
          "finished nor showing a queue position at the end; RSS GB: server max during the "
          "scenario")
    for s in out["scenarios"]:
        if s["scenario"] == "A":
            ok = s["p95_s"] is not None and s["p95_s"] <= P95_TARGET_S and not s["lost"]
            print(f"target A: p95 <= {P95_TARGET_S:.0f} s, all finish: "
                  f"{'met' if ok else 'NOT met'}")
        if s["scenario"] == "B":
            ok = s["lost"] == 0
            print(f"target B: none lost (finished or visibly queued): {'met' if ok else 'NOT met'}")
    rss = out["server_rss_max_gb"]
    if rss is not None:
        print(f"target RSS <= {RSS_TARGET_GB} GB: max {rss:.2f} GB over the whole run (warm-up and "
              f"preset pre-compilation included): "
              f"{'met' if rss <= RSS_TARGET_GB else 'NOT met'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=40, help=f"per scenario (max {MAX_SESSIONS})")
    ap.add_argument("--scenario", choices=("A", "B", "both"), default="both")
    ap.add_argument("--budget", type=float, default=600, help="seconds per scenario, then stop")
    ap.add_argument("--presets", default=",".join(PRESETS_B), help="scenario B's presets")
    ap.add_argument("--url", help="use this running server instead of starting one")
    ap.add_argument("--pid", type=int, help="with --url: the server's pid, for RSS and CPU")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    return run_against_server(args, "ws-load", bench, print_table)


def run_against_server(args, name: str, bench, report) -> int:
    """What every load bench does: use the running server of --url (loopback only) or start a
    fresh one, run the async `bench(args, base, pid)`, save test-artifacts/NAME.json, and print
    it (--json) or `report(out)`."""
    server = None
    if args.url:
        host = urllib.parse.urlsplit(args.url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"error: {name} only plays against a server on loopback")
        base, pid = args.url.rstrip("/"), args.pid
    else:
        ARTIFACTS.mkdir(exist_ok=True)
        server = start_server(log_path=ARTIFACTS / f"{name}-server.log")
        base, pid = server.url, server.pid
        log(f"server {base} (pid {pid}) healthy after "
            f"{server.healthy_at - server.started_at:.1f} s")
    try:
        out = asyncio.run(bench(args, base, pid))
    finally:
        if server is not None:
            server.stop()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(out, indent=2))
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        report(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
