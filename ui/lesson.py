"""Lesson pages: predict, run, reveal (a student, alone or in a class) and the teacher's view.

Links:
- `?lesson=NAME&step=N`               one student alone, settings locked to the step's.
- `?lesson=NAME&step=N&class=CODE`    the same, answers collected for the class (anonymous).
- `?teacher=KEY`                      the teacher's live view of a class (KEY: the secret the
                                       "Teach this lesson" button gives, never the class code).
Train is enabled only once the student has locked in a prediction; after the run the
prediction is shown beside what that run measured, then the claim judged on it and the
lesson's explanation. Nothing a visitor types reaches Markdown unescaped (ui/safe.plain).
"""
from __future__ import annotations

import secrets
import statistics
import time

import streamlit as st

from models import lessons
from models.classroom import ClassError, Classroom
from models.lessons import LessonError
from ui import flow, runs, views
from ui.safe import plain

PARAMS = ("lesson", "step", "class", "teacher")
BIG = """<style>
@media (min-width: 800px) { .st-key-teacher_view {zoom: 1.6;} }
.st-key-teacher_view h2 code {font-size: 1.4em; letter-spacing: 0.15em;}
.st-key-teacher_view [data-testid="stMarkdownContainer"] p,
.st-key-teacher_view [data-testid="stProgress"] p {font-size: 1.5rem !important;}
</style>"""  # constant CSS: large type for a projector (no visitor text in it)


def wanted() -> bool:
    """Does this page's link open a lesson or a teacher's view?"""
    qp = st.query_params
    return "lesson" in qp or "teacher" in qp


@st.cache_resource
def classroom() -> Classroom:
    return Classroom()


def page() -> None:
    qp = st.query_params.to_dict()
    if "teacher" in qp:
        return teacher_page(qp["teacher"])
    st.title("Stateful LSTM Explorer: a lesson")
    try:
        lesson = lessons.load(qp.get("lesson", ""))
        step = lesson.step(qp.get("step", "1"))
    except LessonError as e:
        st.error(plain(e))
        st.markdown("Lessons on this server: "
                    + (", ".join(f"[{n}](?lesson={n}&step=1)" for n in lessons.available())
                       or "none") + " · [the explorer](?)")
        return
    code = _class_code(qp)
    student_page(lesson, step, code)


# ---- a student ----------------------------------------------------------------------------
def _class_code(qp: dict) -> str | None:
    """The class this student answers for (from the link or the join box), or None."""
    typed = qp.get("class")
    if typed is None:
        return None
    try:
        return classroom().join(typed).code
    except ClassError as e:
        st.error(plain(e))
        return None


def _student() -> str:
    return st.session_state.setdefault("lesson_student", secrets.token_hex(16))


def _answers() -> dict:
    return st.session_state.setdefault("lesson_answers", {})


def _answer_text(step: lessons.Step, a) -> str:
    if a is None:
        return "no prediction"
    if step.kind == "choice":
        return f"{a}. {step.choices[int(a) - 1]}"
    return _num(a)


def _num(v) -> str:
    if v is None:
        return "none"
    v = float(v)
    return f"{v:,.0f}" if v == int(v) and abs(v) >= 10 else f"{v:.3g}"


def student_page(lesson: lessons.Lesson, step: lessons.Step, code: str | None) -> None:
    n = len(lesson.steps)
    st.header(lesson.title)
    if step.number == 1 and lesson.intro:
        st.markdown(lesson.intro)
    st.progress(step.number / n, text=f"Step {step.number} of {n}"
                + (f": {step.title}" if step.title else ""))
    if code:
        st.info(f"Class {code}: your predictions are collected anonymously for your teacher.")
    st.markdown(f"### {step.question}")
    with st.expander(f"The settings of this step (locked): preset {step.preset}"):
        st.caption(" · ".join(f"{k} = {v}" for k, v in step.config.to_dict().items()))
    key = (lesson.name, step.number, code)
    answer = _answers().get(key)
    if answer is None:
        _ask(step, key, code)
    else:
        st.success(f"Your prediction: {plain(_answer_text(step, answer))}")
    pressed = st.button("Train", type="primary", disabled=answer is None, key="lesson_train",
                        help="Runs this step's experiment: first lock in your prediction."
                        if answer is None else "Run this step's experiment.")
    if answer is None:
        st.caption("Train is enabled once you have locked in a prediction.")
    if pressed:
        err = runs.start({"run": step.config})
        if err:
            st.error(plain(err))
        else:
            runs.wait_briefly()
    for _, err in st.session_state.get("errors", {}).items():
        st.error(plain(f"The run did not finish: {err}"))
    runs.collect()
    if runs.any_active():
        st.fragment(run_every=0.5)(views.live_panel)()
    res = (st.session_state.get("results") or {}).get("run")
    if answer is not None and res is not None and res["cfg"] == step.config \
            and not res.get("cancelled"):
        _reveal(step, answer, res, code)
        flow.flow_tab(res)
    _navigation(lesson, step, code, done=answer is not None and res is not None
                and res["cfg"] == step.config)
    if code is None:
        _join_and_teach(lesson, step)


def _ask(step: lessons.Step, key, code: str | None) -> None:
    with st.form(f"predict_{step.number}", border=True):
        if step.kind == "choice":
            value = st.radio("Your prediction", list(range(1, len(step.choices) + 1)), index=None,
                             format_func=lambda i: f"{i}. {step.choices[i - 1]}",
                             key=f"lesson_choice_{step.number}")
        else:
            lo, hi = step.guess_bounds
            integer = step.guess != "val"
            value = st.number_input(f"Your prediction: {step.guess_words}",
                                    min_value=int(lo) if integer else lo,
                                    max_value=int(hi) if integer else hi,
                                    step=1 if integer else 0.01, value=None,
                                    key=f"lesson_guess_{step.number}")
        locked = st.form_submit_button("Lock in my prediction")
    if not locked:
        return
    if value is None:
        st.warning("Choose an answer first." if step.kind == "choice" else "Type a number first.")
        return
    if code:
        try:
            classroom().answer(code, _student(), step.number, value)
        except ClassError as e:
            st.error(plain(e))
            return
    _answers()[key] = value
    st.rerun()


def _measure(res: dict) -> dict:
    """What the claims read from the run (alphabet probe included), once per run."""
    from models import claims
    cache = st.session_state.setdefault("lesson_measures", {})
    k = res.get("run_id") or id(res["trace"])
    if k not in cache:
        m = claims.measure({**res, "preset": None}, probe=True)
        cache.clear()  # one run's measures at a time
        cache[k] = m
    return cache[k]


def _reveal(step: lessons.Step, answer, res: dict, code: str | None) -> None:
    m = _measure(res)
    r = lessons.reveal(step, m)
    st.subheader("Your prediction and your run")
    c1, c2 = st.columns(2)
    c1.markdown("**You predicted**")
    c1.markdown(plain(_answer_text(step, answer)))
    c2.markdown("**Your run measured**")
    if step.guess:
        c2.markdown(f"{step.guess_words}: **{_num(r['value'])}**")
    if r["measured"]:
        c2.markdown(plain(r["measured"]))
    if r["claim"] is not None:
        mark = "holds on your run" if r["holds"] else "does NOT hold on your run"
        st.markdown(f"**The claim {mark}:** {r['claim']}")
    if step.kind == "choice":
        if r["supports"]:
            right = int(answer) == r["supports"]
            (st.success if right else st.warning)(
                f"Your run supports choice {r['supports']}: "
                f"{step.choices[r['supports'] - 1]}. "
                + ("Your prediction was right." if right else "Your prediction was different."))
        else:
            st.warning("The claim did not hold on this run, so this run does not decide the "
                       "question.")
    elif r["value"] is not None:
        st.info(f"You predicted {_num(answer)}; your run measured {_num(r['value'])} "
                f"(difference {float(answer) - r['value']:+.3g}).")
    st.markdown(f"**Why:** {step.explanation}")
    if code:
        sent = st.session_state.setdefault("lesson_sent", set())
        tag = (code, step.number, res.get("run_id") or id(res["trace"]))
        if tag not in sent:
            try:
                classroom().measured(code, _student(), step.number, r["measured"], r["value"],
                                     r["holds"])
                sent.add(tag)
            except ClassError as e:
                st.error(plain(e))


def _navigation(lesson: lessons.Lesson, step: lessons.Step, code: str | None, done: bool) -> None:
    n = len(lesson.steps)
    c1, c2 = st.columns(2)
    if step.number > 1 and c1.button("Previous step", key="lesson_prev"):
        _go(lesson, step.number - 1, code)
    if step.number < n:
        if c2.button("Next step", type="primary" if done else "secondary", disabled=not done,
                     key="lesson_next", help=None if done else "Predict and train first."):
            _go(lesson, step.number + 1, code)
    elif done:
        st.success("You have finished the lesson. The explorer shows every setting: "
                   "[open it](?)")


def _go(lesson: lessons.Lesson, k: int, code: str | None) -> None:
    params = {"lesson": lesson.name, "step": str(k)}
    if code:
        params["class"] = code
    st.query_params.from_dict(params)
    st.rerun()


def _join_and_teach(lesson: lessons.Lesson, step: lessons.Step) -> None:
    st.divider()
    with st.expander("In a class? Enter the code your teacher shows"):
        with st.form("join_class", border=False):
            typed = st.text_input("Class code", max_chars=20, key="lesson_class_code")
            if st.form_submit_button("Join"):
                try:
                    info = classroom().join(typed)
                except ClassError as e:
                    st.error(plain(e))
                else:
                    st.query_params.from_dict({"lesson": info.lesson, "step": str(step.number)
                                               if info.lesson == lesson.name else "1",
                                               "class": info.code})
                    st.rerun()
    with st.expander("Teach this lesson to a class"):
        st.markdown("Start a class: students who open the class link (or type its code) have "
                    "their predictions collected, anonymously; your page shows per step what "
                    "the class predicted and what their runs measured, live.")
        if st.button("Start a class", key="lesson_start_class"):
            try:
                info, key = classroom().create(lesson.name)
            except ClassError as e:
                st.error(plain(e))
                return
            st.query_params.from_dict({"teacher": key})
            st.rerun()


# ---- the teacher --------------------------------------------------------------------------
def teacher_page(key: str) -> None:
    st.markdown(BIG, unsafe_allow_html=True)
    try:
        info = classroom().for_teacher(key)
        lesson = lessons.load(info.lesson)
    except (ClassError, LessonError) as e:
        st.title("Stateful LSTM Explorer: a class")
        st.error(plain(e))
        return
    with st.container(key="teacher_view"):
        st.title(lesson.title)
        left = max(0.0, info.expires - time.time())
        st.markdown(f"## Class code: `{info.code}`")
        st.markdown(f"Students open **?lesson={lesson.name}&class={info.code}** on this server, "
                    f"or the lesson and type the code. The class ends in "
                    f"{left / 3600:.1f} h. Keep this page's link: it is your key to this view.")
        st.fragment(run_every=1.0)(_class_counts)(info.code, lesson)


def _class_counts(code: str, lesson: lessons.Lesson) -> None:
    summary = classroom().summary(code)
    for step in lesson.steps:
        s = summary.get(step.number)
        st.markdown(f"### Step {step.number}" + (f": {step.title}" if step.title else ""))
        st.markdown(step.question)
        if not s:
            st.markdown("No predictions yet.")
            continue
        st.markdown(f"**{s['n']} prediction{'s' if s['n'] != 1 else ''}**")
        if step.kind == "choice":
            for i, choice in enumerate(step.choices, 1):
                k = s["answers"].get(str(i), 0)
                st.progress(k / s["n"], text=f"{i}. {choice}: {k}")
        else:
            vals = [v for a, c in s["answers"].items() for v in [_float(a)] * c if v is not None]
            if vals:
                st.markdown(f"Predicted {step.guess_words}: median {_num(statistics.median(vals))}, "
                            f"from {_num(min(vals))} to {_num(max(vals))}")
        _measured_line(step, s)


def _measured_line(step: lessons.Step, s: dict) -> None:
    if not s["runs"]:
        st.markdown("Measured: no run finished yet.")
        return
    parts = [f"Measured by {s['runs']} run{'s' if s['runs'] != 1 else ''}"]
    if s["values"]:
        parts.append(f"{step.guess_words} median {_num(statistics.median(s['values']))}")
    if s["measured"]:
        text, _ = s["measured"].most_common(1)[0]
        parts.append(plain(text))  # computed by the server, shown literally anyway
    st.markdown(" · ".join(parts))
    if s["holds"]:
        held, failed = s["holds"].get(True, 0), s["holds"].get(False, 0)
        supports = (f" It supports choice {step.answer}: {step.choices[step.answer - 1]}."
                    if step.answer and held else "")
        st.markdown(f"The claim holds on {held} of {held + failed} runs.{supports}")


def _float(a: str) -> float | None:
    try:
        return float(a)
    except ValueError:
        return None
