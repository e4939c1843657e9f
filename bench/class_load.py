"""A class of N students answers a lesson step; how soon does the teacher's page count them?

Issue 13's "Done means": 30 students answer a step and the teacher's view shows the right
counts within 2 s. Everything goes through a real server (bench._server.start_server, loopback)
and Streamlit's own websocket protocol (bench/ws_load.py's Session client, no browser):

  1. the teacher: a session opens ?lesson=LESSON&step=1, presses "Start a class" (the button of
     ui/lesson.py, key lesson_start_class); the app moves that page to ?teacher=KEY, which shows
     "Class code: `CODE`" and the class counts in a fragment rerun every second (the client
     sends those reruns, as the frontend does). So the class is created by the path a teacher
     uses, and this session is the teacher's page from then on;
  2. N students open ?lesson=LESSON&step=1&class=CODE (one websocket session each), and, all
     in the same loop turn, lock in a prediction for step 1: the form's radio (key
     lesson_choice_1) set to a known choice and "Lock in my prediction" pressed in one
     rerun_script, as the frontend submits a form. The mix is uneven (choices 1,1,1,2,2,3
     repeated, rotated by one per repeat) so that a count given to the wrong choice shows;
  3. each student's page must confirm "Your prediction: <choice>"; the clock starts when the
     last lock-in message is sent (and, for comparison, when the last confirmation arrives) and
     stops when the teacher's page shows, for step 1, every choice's count equal to the answers
     given and "<N> predictions" (read from the progress bars' texts "i. <choice>: k").

A repeat is a new class (a new teacher page) and N new students. Server RSS (process tree) is
sampled every 0.5 s. Target: correct counts <= 2 s after the last answer, in every repeat.

    python bench/class_load.py [--students 30] [--repeats 3] [--lesson stateful-basics]
                               [--budget 180] [--json] [--url URL [--pid PID]]

--students is capped at 200, --repeats at 10; --budget bounds each repeat (seconds). Without
--url the bench starts its own server (log in test-artifacts/class-load-server.log) and stops
it at the end. The full JSON goes to test-artifacts/class-load.json.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import pct, rss_bytes, wait_until_quiet  # noqa: E402
from bench.ws_load import (EARLY_FOR_RERUN, Session, code_version, log,  # noqa: E402
                            run_against_server)
from models import lessons  # noqa: E402  (TOML only: no TensorFlow, no streamlit server)

MAX_STUDENTS = 200
MAX_REPEATS = 10
TARGET_S = 2.0
PATTERN = (1, 1, 1, 2, 2, 3)  # choices of students 0, 1, 2, ... (cycled; rotated per repeat)
START_CLASS = "lesson_start_class"      # ui/lesson.py _join_and_teach()
LOCK_IN = "Lock in my prediction"       # ui/lesson.py _ask(): the form's submit button
CODE_RE = re.compile(r"^## Class code: `([A-Z0-9]+)`")   # ui/lesson.py teacher_page()
STEP_RE = re.compile(r"^### Step (\d+)")                  # ui/lesson.py _class_counts()
BAR_RE = re.compile(r"^(\d+)\. .*: (\d+)\Z", re.S)        # st.progress text "i. choice: k"
N_RE = re.compile(r"^\*\*(\d+) predictions?\*\*\Z")
NONE_YET = "No predictions yet."
CONFIRM_RE = re.compile(r"^Your prediction: (\d+)")      # ui/lesson.py student_page()


def prewarm_delay() -> float:
    """ui/runs.py's PREWARM_DELAY, read the same way (ui/ is not imported by a client)."""
    try:
        return max(0.0, min(60.0, float(os.environ.get("LSTM_PREWARM_DELAY", 8.0))))
    except ValueError:
        return 8.0


def choices_for(n: int, repeat: int, n_choices: int) -> list[int]:
    return [(PATTERN[i % len(PATTERN)] - 1 + repeat) % n_choices + 1 for i in range(n)]


def counts_of(answers: list[int], n_choices: int) -> dict[int, int]:
    return {c: answers.count(c) for c in range(1, n_choices + 1)}


class LessonSession(Session):
    """A ws_load Session on a lesson page: loaded once a full script run has finished (the
    explorer's rule, a Train button in the sidebar, does not apply here); reads the class code,
    the student's confirmation and the teacher's step-1 counts as their elements arrive."""

    def __init__(self, idx: int, base: str, query: str, n_choices: int = 0):
        super().__init__(idx, base, query, want_header="", want_query={})
        self.n_choices = n_choices
        self.code: str | None = None
        self.confirmed: int | None = None      # the choice the page says was locked in
        self.t_sent: float | None = None       # lock-in sent
        self.t_confirmed: float | None = None  # "Your prediction" received
        self.got_confirm = asyncio.Event()
        self.expected: dict[int, int] | None = None  # teacher: the counts to wait for
        self.t_correct: float | None = None
        self.correct = asyncio.Event()
        self.shown: dict | None = None         # teacher: step 1 as last shown {choice: k}, n
        self.shown_n: int | None = None
        self.views = 0                         # teacher: step-1 count displays received
        self._step = None
        self._bars: dict[int, int] = {}
        self._n: int | None = None

    def _run_started(self, fm) -> None:
        super()._run_started(fm)
        self._step, self._bars, self._n = None, {}, None

    def _run_finished(self, fm) -> None:
        super()._run_finished(fm)
        if fm.script_finished != EARLY_FOR_RERUN and self.t_loaded is None:
            self.t_loaded = time.perf_counter()
            self.loaded.set()

    def _element(self, el, path: list[int]) -> None:
        super()._element(el, path)
        et = el.WhichOneof("type")
        now = time.perf_counter()
        if et == "markdown":
            body = el.markdown.body
            m = CODE_RE.match(body)
            if m:
                self.code = m.group(1)
            m = STEP_RE.match(body)
            if m:
                self._step = int(m.group(1))
            elif self._step == 1:
                m = N_RE.match(body)
                if m:
                    self._n = int(m.group(1))
                elif body == NONE_YET:
                    self._n, self._bars = 0, {c: 0 for c in range(1, self.n_choices + 1)}
                    self._shown(now)
        elif et == "progress" and self._step == 1:
            m = BAR_RE.match(el.progress.text)
            if m:
                self._bars[int(m.group(1))] = int(m.group(2))
                if len(self._bars) == self.n_choices:
                    self._shown(now)
        elif et == "alert":
            m = CONFIRM_RE.match(el.alert.body)
            if m and self.t_sent is not None and self.t_confirmed is None:
                self.confirmed, self.t_confirmed = int(m.group(1)), now
                self.got_confirm.set()

    def _shown(self, now: float) -> None:
        """Step 1's counts are complete in this run: what the teacher sees now."""
        self.shown, self.shown_n = dict(self._bars), self._n
        self.views += 1
        if (self.expected is not None and self.t_correct is None and self.shown == self.expected
                and self.shown_n == sum(self.expected.values())):
            self.t_correct = now
            self.correct.set()
            self.note(f"< correct counts {self.shown}")


async def until(event: asyncio.Event, deadline: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), max(0.1, deadline - time.monotonic()))
        return True
    except (asyncio.TimeoutError, TimeoutError):
        return False


async def open_loaded(s: LessonSession, deadline: float) -> bool:
    try:
        await s.open()
    except Exception as e:  # a session that cannot connect is a finding
        s.problems.append(f"open: {type(e).__name__}: {e}"[:200])
        return False
    return await until(s.loaded, deadline)


async def one_class(base: str, lesson: lessons.Lesson, n: int, repeat: int,
                    budget: float) -> dict:
    deadline = time.monotonic() + budget
    step = lesson.step("1")
    k = len(step.choices)
    out = {"repeat": repeat, "students": n, "problems": []}
    # 1. The teacher starts a class from the lesson page and keeps the page it lands on.
    teacher = LessonSession(-1, base, f"lesson={lesson.name}&step=1", n_choices=k)
    students: list[LessonSession] = []
    try:
        if not await open_loaded(teacher, deadline):
            out["problems"].append("the lesson page did not load for the teacher")
            return out
        if START_CLASS not in teacher.widgets:
            out["problems"].append("no 'Start a class' button on the lesson page")
            return out
        await teacher.press(START_CLASS)
        while teacher.code is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if teacher.code is None or not teacher.query.startswith("teacher="):
            out["problems"].append(f"no class code shown (page {teacher.query[:9]}...)")
            return out
        out["class_code"] = teacher.code
        while not teacher.timers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the counts fragment asks the client to rerun it
        out["teacher_polls_every_s"] = next(iter(teacher.timers.values()))[0] \
            if teacher.timers else None
        # 2. N students open the class link.
        answers = choices_for(n, repeat, k)
        expected = counts_of(answers, k)
        out["expected"] = {str(c): v for c, v in expected.items()}
        q = f"lesson={lesson.name}&step=1&class={teacher.code}"
        students = [LessonSession(i, base, q, n_choices=k) for i in range(n)]
        t0 = time.monotonic()
        ok = await asyncio.gather(*(open_loaded(s, deadline) for s in students))
        out["students_loaded"] = sum(ok)
        out["load_s"] = round(time.monotonic() - t0, 2)
        radio_key = f"lesson_choice_{step.number}"
        ready = [s for s in students if s.loaded.is_set() and radio_key in s.widgets
                 and LOCK_IN in s.widgets]
        if len(ready) < n:
            out["problems"].append(f"{n - len(ready)} student page(s) without the prediction form")
        # 3. All lock in at once; the teacher is told what to expect only for those who did.
        out["shown_before"] = None if teacher.shown is None else \
            {str(c): v for c, v in teacher.shown.items()}  # the teacher's page before any answer
        sent = []
        for s, c in zip(students, answers):
            if s in ready:
                radio = s.widgets[radio_key]
                s.t_sent = time.perf_counter()
                sent.append((s, c))
                await s.press(LOCK_IN, values=((radio.id, "string_value", radio.options[c - 1]),))
        if not sent:
            return out
        t_last_sent = max(s.t_sent for s, _ in sent)
        teacher.expected = counts_of([c for _, c in sent], k)
        if teacher.shown == teacher.expected and teacher.shown_n == len(sent):
            teacher.t_correct = time.perf_counter()  # (cannot happen before all answers)
            teacher.correct.set()
        await asyncio.gather(*(until(s.got_confirm, deadline) for s, _ in sent))
        await until(teacher.correct, deadline)
        confirmed = [s for s, c in sent if s.confirmed == c]
        wrong = [(s.idx, c, s.confirmed) for s, c in sent if s.confirmed not in (None, c)]
        out["answered"] = len(sent)
        out["confirmed"] = len(confirmed)
        if wrong:
            out["problems"].append(f"pages confirmed another choice (student, sent, shown): "
                                   f"{wrong[:5]}")
        silent = sum(s.confirmed is None for s, _ in sent)
        if silent:
            out["problems"].append(f"{silent} student(s) got no confirmation of their prediction")
        t_last_conf = max((s.t_confirmed for s in confirmed), default=None)
        out["expected_shown"] = {str(c): v for c, v in teacher.expected.items()}
        out["shown"] = None if teacher.shown is None else \
            {str(c): v for c, v in teacher.shown.items()}
        out["shown_n"] = teacher.shown_n
        out["teacher_views"] = teacher.views
        out["correct"] = teacher.t_correct is not None
        out["s_from_last_answer"] = None if teacher.t_correct is None else \
            round(teacher.t_correct - t_last_sent, 3)
        out["s_from_last_confirmation"] = None if teacher.t_correct is None or \
            t_last_conf is None else round(teacher.t_correct - t_last_conf, 3)
        out["answer_spread_s"] = None if t_last_conf is None else \
            round(t_last_conf - min(s.t_sent for s, _ in sent), 3)
        for s in [teacher, *students]:
            for p in s.problems + [x for x in [s.connection_problem()] if x]:
                if p not in out["problems"]:
                    out["problems"].append(p)
        if not out["correct"]:
            out["teacher_events"] = list(teacher.events)[-40:]
        return out
    finally:
        await asyncio.gather(*(s.close() for s in [teacher, *students]), return_exceptions=True)


async def bench(args, base: str, pid: int | None) -> dict:
    lesson = lessons.load(args.lesson)
    n = max(1, min(args.students, MAX_STUDENTS))
    reps = max(1, min(args.repeats, MAX_REPEATS))
    out = {"students": n, "repeats": reps, "lesson": lesson.name, "url": base,
           "code": code_version(), "class_created_by": "the teacher's page over the websocket "
           "(lesson page -> Start a class -> ?teacher=KEY)", "classes": []}
    if pid and not args.no_quiet:
        # The server compiles the presets' nets in the background, starting LSTM_PREWARM_DELAY
        # s after its first page (ui/runs.py): open a page, let that start, wait for its end.
        t = time.monotonic()
        first = LessonSession(-2, base, f"lesson={lesson.name}&step=1")
        await open_loaded(first, time.monotonic() + 60)
        await first.close()
        await asyncio.sleep(prewarm_delay() + 2.0)
        await asyncio.to_thread(wait_until_quiet, pid, 180.0)
        out["quiet_wait_s"] = round(time.monotonic() - t, 1)
    peak = {"rss": 0}
    halt = asyncio.Event()

    async def sampler():
        while pid and not halt.is_set():
            peak["rss"] = max(peak["rss"], await asyncio.to_thread(rss_bytes, pid))
            try:
                await asyncio.wait_for(halt.wait(), 0.5)
            except (asyncio.TimeoutError, TimeoutError):
                pass

    task = asyncio.create_task(sampler())
    try:
        for r in range(reps):
            c = await one_class(base, lesson, n, r, args.budget)
            log(f"class {r + 1}/{reps}: {c.get('answered', 0)}/{n} answered, counts "
                f"{'correct' if c.get('correct') else 'NOT correct'} after "
                f"{c.get('s_from_last_answer')} s")
            out["classes"].append(c)
    finally:
        halt.set()
        await task
    ts = [c["s_from_last_answer"] for c in out["classes"] if c.get("s_from_last_answer") is not None]
    out["p50_s"], out["max_s"] = pct(ts, 50), max(ts, default=None)
    out["all_correct"] = all(c.get("correct") and c.get("answered") == n for c in out["classes"])
    out["met"] = out["all_correct"] and len(ts) == reps and max(ts) <= TARGET_S
    out["server_rss_max_gb"] = peak["rss"] / 1e9 if pid else None
    return out


def print_report(out: dict) -> None:
    f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    print(f"{out['students']} students x {out['repeats']} class(es), lesson {out['lesson']}, "
          f"step 1, against {out['url']}; code {out['code']}")
    print(f"class created by {out['class_created_by']}")
    print(f"{'class':5} {'answered':>8} {'confirmed':>9} {'expected':>16} {'shown':>16} "
          f"{'from last answer s':>18} {'from last confirm s':>19} {'load s':>6}")
    for c in out["classes"]:
        exp = ",".join(f"{k}:{v}" for k, v in (c.get("expected_shown") or {}).items())
        shown = ",".join(f"{k}:{v}" for k, v in (c.get("shown") or {}).items())
        print(f"{c['repeat'] + 1:5} {c.get('answered', 0):>4}/{c['students']:<3} "
              f"{c.get('confirmed', 0):>9} {exp:>16} {shown or '-':>16} "
              f"{f(c.get('s_from_last_answer')):>18} {f(c.get('s_from_last_confirmation')):>19} "
              f"{f(c.get('load_s')):>6}")
        for p in c["problems"]:
            print(f"      problem: {p}")
    print("expected/shown: step 1's count per choice (choice:students); shown: the teacher's page "
          "(progress-bar texts) when the clock stopped, or its last display. The clock: last "
          "lock-in sent (or last 'Your prediction' received) -> the teacher's page showing "
          "every count right; the teacher's page reruns its counts every "
          f"{out['classes'][0].get('teacher_polls_every_s') if out['classes'] else '-'} s.")
    if out.get("quiet_wait_s") is not None:
        print(f"measured on a quiet server: waited {out['quiet_wait_s']:.1f} s after its first "
              "page for the background pre-compilation of the presets to end (--no-quiet: not)")
    print(f"seconds to correct counts: p50 {f(out['p50_s'])}, max {f(out['max_s'])}")
    rss = out["server_rss_max_gb"]
    print(f"server RSS max: {f(rss)} GB" if rss is not None else "server RSS: - (no pid)")
    print(f"target: every class's counts right within {TARGET_S:.0f} s of the last answer: "
          f"{'met' if out['met'] else 'NOT met'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=30, help=f"per class (max {MAX_STUDENTS})")
    ap.add_argument("--repeats", type=int, default=3, help=f"classes, one after another "
                    f"(max {MAX_REPEATS})")
    ap.add_argument("--lesson", default="stateful-basics")
    ap.add_argument("--budget", type=float, default=180, help="seconds per class, then stop")
    ap.add_argument("--url", help="use this running server instead of starting one")
    ap.add_argument("--pid", type=int, help="with --url: the server's pid, for RSS")
    ap.add_argument("--no-quiet", action="store_true", help="measure at once, while the "
                    "server may be compiling the presets in the background (it starts "
                    "LSTM_PREWARM_DELAY s after the first page)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        lesson = lessons.load(args.lesson)
        if lesson.step("1").kind != "choice":
            raise SystemExit(f"error: step 1 of {args.lesson} asks for a number, not a choice")
    except lessons.LessonError as e:
        raise SystemExit(f"error: {e}")
    if not 1 <= args.budget <= 3600:
        raise SystemExit("error: --budget must be between 1 and 3600 seconds")
    return run_against_server(args, "class-load", bench, print_report)


if __name__ == "__main__":
    sys.exit(main())
