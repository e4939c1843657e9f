"""A waiting run's queue line, kept current by the browser instead of by script reruns.

On this process's own job manager the server writes every queued job's place to a small
file once a second (models/queue_board.py); the line is a component whose JavaScript reads
that file each second and rewrites the text, and reruns the live panel (a trigger) once the
job has left the queue. Elsewhere (Redis + RQ, AppTest) the line is the plain `st.info` the
live panel's slower reruns refresh (ui/runs.QUEUE_POLL).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import streamlit as st

from models import jobs, queue_board
from ui import text

STATIC = Path(__file__).resolve().parent.parent / "static"  # served at /app/static/
BOARD_POLL_MS = 1000  # the browser reads the board this often
# The live panel still reruns this often while its runs wait (s): a safety net only.
SAFETY_POLL = float(os.environ.get("LSTM_QUEUE_SAFETY_POLL", 10.0))
SENTENCE = "waiting in the queue, position {pos} ({when}). The server trains a few runs at a time."

_JS = """
export default function(component) {
  const { data, parentElement, setTriggerValue } = component;
  let box = parentElement.querySelector("div.qline");
  if (!box) {
    box = document.createElement("div");
    box.className = "qline";
    parentElement.appendChild(box);
  }
  const show = (pos, when) => {  // text only: nothing here is read as markup
    const name = document.createElement("b");
    name.textContent = data.name + ":";
    const rest = " " + data.sentence.replace("{pos}", String(pos)).replace("{when}", when);
    box.replaceChildren(name, document.createTextNode(rest));
    box.dataset.pos = String(pos);
  };
  show(data.pos, data.when);
  let stopped = false, fired = false, timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      const r = await fetch(data.url + "?t=" + Date.now(), { cache: "no-store" });
      if (r.ok) {
        const board = await r.json();
        const mine = board.jobs ? board.jobs[data.token] : undefined;
        if (mine) {
          show(mine.pos, mine.when);
        } else if (board.t > data.since && !fired) {
          fired = true;  // it left the queue: the live panel reruns and shows the run
          setTriggerValue("left", Date.now());
        }
      }
    } catch (e) { /* the panel's own slower rerun still comes */ }
    if (!stopped) timer = setTimeout(tick, data.every);
  };
  timer = setTimeout(tick, data.every);
  return () => { stopped = true; clearTimeout(timer); };
}
"""
_CSS = """
div.qline { padding: 1rem; border-radius: 0.5rem; line-height: 1.6;
            background: rgba(28, 131, 225, 0.1); color: rgb(0, 66, 128); }
"""


def when(eta: float | None) -> str:
    if eta == 0:
        return "a worker is free: starts now"
    return "start time not known yet" if eta is None else f"starts in about {text.fmt_seconds(eta)}"


@st.cache_resource
def _board() -> tuple[queue_board.QueueBoard, str] | None:
    """This process's board and its address, when pages can read it: a real server with
    static serving on, this process's own job manager, LSTM_QUEUE_BOARD not 0."""
    from ui import runs
    from ui.first_paint import serving
    m = runs.manager()
    if (os.environ.get("LSTM_QUEUE_BOARD", "1") == "0" or not serving()
            or not st.get_option("server.enableStaticServing") or not hasattr(m, "queue_starts")):
        return None
    name = f"queue-{os.getpid()}.json"  # one per server: tests run several from one checkout
    _remove_stale(STATIC)
    try:
        board = queue_board.QueueBoard(m.queue_starts, STATIC / name, when)
    except OSError:  # a read-only app directory: the plain line and its rerun remain
        return None
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return board, f"/{base + '/' if base else ''}app/static/{name}"


def _remove_stale(folder: Path) -> None:
    """Boards of servers that are gone."""
    for f in folder.glob("queue-*.json"):
        try:
            pid = int(f.stem.split("-", 1)[1])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            f.unlink(missing_ok=True)
        except OSError:
            pass


def board_on() -> bool:
    return _board() is not None


def show(name: str, job_id: str, s: jobs.JobStatus) -> None:
    """The line for run `job_id` (status `s`, queued) of the slot called `name`."""
    board = _board()
    if board is None:
        st.info(f"**{name}:** " + SENTENCE.format(pos=s.queue_position, when=when(s.eta_seconds)))
        return
    _component()(key=f"queue_line_{job_id}", on_left_change=lambda: None, data={
        "name": name, "sentence": SENTENCE, "pos": s.queue_position, "when": when(s.eta_seconds),
        "token": queue_board.token(job_id), "url": board[1], "since": time.time(),
        "every": BOARD_POLL_MS})


@st.cache_resource
def _component():
    return st.components.v2.component("queue_line", js=_JS, css=_CSS)
