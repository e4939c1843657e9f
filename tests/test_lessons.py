"""Lessons as data (models/lessons.py) and the lesson page (ui/lesson.py), with real Keras runs
and real Streamlit (AppTest)."""
from __future__ import annotations

import re

import pytest

from models import claims, lessons
from models.lessons import LessonError, parse
from models.presets import PRESETS

SHIPPED = "stateful-basics"
GOOD_STEP = '''
[[step]]
preset = "seed004-streams-stateful"
question = "What does slot i carry?"
choices = ["its own sequence", "another one"]
claim = "streams-slot-continues"
answer = 1
explanation = "Slot i continues slot i."
'''


def lesson_text(*steps: str, head: str = 'title = "T"\n') -> str:
    return head + "".join(steps)


# ---- the format -------------------------------------------------------------------------------
def test_shipped_lesson_walks_the_seed_questions_in_order():
    lesson = lessons.load(SHIPPED)
    assert [s.preset for s in lesson.steps] == [
        "seed004-streams-stateful", "naive-chunks-mistake", "shuffle-breaks-state",
        "stateless-resets", "alphabet-batch1-positions", "partial-batch-trap"]
    for s in lesson.steps:
        assert s.config == PRESETS[s.preset].config
        assert s.claim in claims.BY_ID and claims.BY_ID[s.claim].runs == (s.preset,)
        assert (s.kind == "choice") == (s.answer is not None)
    assert lesson.steps[-1].kind == "guess" and lesson.steps[-1].guess == "val"
    assert SHIPPED in lessons.available()


def test_a_good_step_parses_with_its_line():
    lesson = parse(lesson_text(GOOD_STEP, GOOD_STEP))
    assert len(lesson.steps) == 2
    assert [s.line for s in lesson.steps] == [3, 11]
    assert lesson.steps[0].choices == ("its own sequence", "another one")


def test_settings_change_a_preset_and_are_checked():
    step = '''
[[step]]
preset = "chunks-stateful"
question = "Accuracy with 2 epochs?"
guess = "val"
explanation = "..."
[step.settings]
epochs = 2
'''
    s = parse(lesson_text(step)).steps[0]
    assert s.config == PRESETS["chunks-stateful"].config.replace(epochs=2)


@pytest.mark.parametrize("step, needle, line", [
    (GOOD_STEP.replace('"seed004-streams-stateful"', '"no-such-preset"'),
     "unknown preset 'no-such-preset'", 3),
    (GOOD_STEP.replace('"streams-slot-continues"', '"no-such-claim"'), "unknown claim", 6),
    (GOOD_STEP.replace('"streams-slot-continues"', '"chunks-learn"'),
     "checked on runs of chunks-stateful", 6),
    (GOOD_STEP.replace("answer = 1", "answer = 3"), "answer must be the number", 7),
    (GOOD_STEP.replace('choices = ["its own sequence", "another one"]', 'choices = ["one"]'),
     "choices must be a list of 2-6", 5),
    (GOOD_STEP.replace('question = "What does slot i carry?"\n', ""), "question must be text", 2),
    (GOOD_STEP.replace("answer = 1", "answr = 1"), "unknown key 'answr'", 7),
    (GOOD_STEP + 'guess = "val"\n', "either choices", 5),
    (GOOD_STEP.replace('choices = ["its own sequence", "another one"]', 'guess = "speed"')
     .replace("answer = 1\n", ""), "guess must be one of", 5),
    (GOOD_STEP + "[step.settings]\nbatch_size = 0\n", "setting batch_size: Batch size must be between 1 and", 10),
    (GOOD_STEP + "[step.settings]\ncolour = 1\n", "unknown setting 'colour'", 10),
    (GOOD_STEP + "[step.settings]\nepochs = 3\n", "drop the [step.settings] or the claim", 6),
])
def test_a_bad_step_names_its_line_and_step(step, needle, line):
    with pytest.raises(LessonError) as e:
        parse(lesson_text(GOOD_STEP, step), where="lessons/x.toml")
    msg = str(e.value)
    assert needle in msg
    first = len(lesson_text(GOOD_STEP).splitlines())  # the bad step starts after the good one
    assert f"lessons/x.toml, line {first + line}, step 2:" in msg, msg


@pytest.mark.parametrize("text, needle", [
    ('title = "T"\n[[step]\npreset = "x"\n', "is not valid TOML: .*line 2"),
    ('title = "T"\n[[step]]\nquestion = "unclosed\n', "is not valid TOML: .*line 3"),
    ('[[step]]\npreset = "x"\n', "needs a title"),
    ('title = "T"\n', "has no steps"),
    ('title = "T"\nteacher = "me"\n' + GOOD_STEP, "unknown top-level key 'teacher'"),
])
def test_a_malformed_file_says_where(text, needle):
    with pytest.raises(LessonError, match=needle):
        parse(text)


@pytest.mark.parametrize("n, needle", [(0, "no step 0"), (7, "no step 7"), ("x", "not a number"),
                                       ("-1", "no step -1")])
def test_out_of_range_step(n, needle):
    lesson = lessons.load(SHIPPED)
    with pytest.raises(LessonError, match=f"{needle}.*steps 1-6"):
        lesson.step(n)


@pytest.mark.parametrize("name", ["nope", "../models/config", "stateful-basics.toml", "", "A" * 300])
def test_unknown_lesson_names_are_never_paths(name):
    with pytest.raises(LessonError, match=r"There is no lesson .*Lessons: stateful-basics"):
        lessons.load(name)


# ---- the reveal reads the student's own run ---------------------------------------------------
@pytest.fixture(scope="module")
def streams_and_naive():
    return {n: claims.run_preset(n) for n in ("seed004-streams-stateful", "naive-chunks-mistake")}


def test_reveal_supports_a_choice_only_when_the_claim_holds_on_the_run(streams_and_naive):
    lesson = lessons.load(SHIPPED)
    s1, s2 = lesson.steps[0], lesson.steps[1]
    r = lessons.reveal(s1, streams_and_naive[s1.preset])
    assert r["holds"] is True and r["supports"] == 1
    assert re.search(r"[\d,]+ carried, [\d,]+ continuations, 0 contaminated", r["measured"])
    # The same claim judged on the naive-chunks run does not hold: no choice is declared.
    wrong = lessons.reveal(s1, streams_and_naive[s2.preset])
    assert wrong["holds"] is False and wrong["supports"] is None
    r2 = lessons.reveal(s2, streams_and_naive[s2.preset])
    assert r2["holds"] is True and r2["supports"] == 2


def test_a_guess_reads_the_measured_value(streams_and_naive):
    step = parse(lesson_text('''
[[step]]
preset = "seed004-streams-stateful"
question = "Carried states in the last epoch?"
guess = "carried"
explanation = "..."
''')).steps[0]
    m = streams_and_naive["seed004-streams-stateful"]
    r = lessons.reveal(step, m)
    assert r["value"] == m["last_epoch"]["carried"] > 0
    assert r["claim"] is None


# ---- the lesson page (AppTest: real Streamlit, real jobs, real Keras) -------------------------
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def page(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def shown(at: AppTest, kind: str) -> list[str]:
    """Text as a reader sees it (ui.safe.plain escapes punctuation with backslashes)."""
    return [re.sub(r"\\(.)", r"\1", e.value) for e in getattr(at, kind)]


def button(at: AppTest, key: str):
    return at.button(key=key)


def predict(at: AppTest, step, value) -> None:
    if step.kind == "choice":
        at.radio(key=f"lesson_choice_{step.number}").set_value(value)
    else:
        at.number_input(key=f"lesson_guess_{step.number}").set_value(value)
    next(b for b in at.get("form_submit_button") if b.label == "Lock in my prediction").click()
    at.run()
    assert not at.exception, at.exception


def train(at: AppTest, limit: float = 180.0) -> None:
    button(at, "lesson_train").click()
    at.run()
    t0 = time.time()
    while at.session_state["runs"]:
        assert time.time() - t0 < limit, "the step's run did not finish"
        time.sleep(0.4)
        at.run()
        assert not at.exception, at.exception


def test_a_student_completes_the_shipped_lesson():
    lesson = lessons.load(SHIPPED)
    at = page(lesson=SHIPPED, step="1")
    for step in lesson.steps:
        assert at.query_params["step"] == str(step.number)
        assert any(step.question[:40] in m for m in shown(at, "markdown"))
        assert button(at, "lesson_train").disabled  # no Train before a prediction
        if step.number < len(lesson.steps):
            assert button(at, "lesson_next").disabled
        # Predict the supported choice on odd steps and another one on even steps.
        wrong = step.number % 2 == 0
        value = (step.answer if not wrong else step.answer % len(step.choices) + 1) \
            if step.kind == "choice" else 0.5
        predict(at, step, value)
        assert not button(at, "lesson_train").disabled
        train(at)
        text = "\n".join(shown(at, "markdown") + shown(at, "success") + shown(at, "warning")
                         + shown(at, "info"))
        assert "You predicted" in text and "Your run measured" in text
        assert "The claim holds on your run:" in text, text  # every shipped claim holds on its run
        assert step.explanation[:40] in text
        if step.kind == "choice":
            assert f"Your run supports choice {step.answer}" in text
            assert ("Your prediction was different." if wrong else "Your prediction was right.") in text
        else:  # the number measured is shown beside the guess
            val = claims.final_val(at.session_state["results"]["run"]["epochs"])
            assert f"You predicted 0.5; your run measured {val:.3g}" in text
        if step.number < len(lesson.steps):
            button(at, "lesson_next").click()
            at.run()
            assert not at.exception, at.exception
    assert any("You have finished the lesson" in s for s in shown(at, "success"))


@pytest.mark.parametrize("params, needle", [
    ({"lesson": "nope"}, "There is no lesson 'nope'. Lessons: stateful-basics"),
    ({"lesson": "<b>x</b> [a](http://e.vil)"}, "There is no lesson '<b>x</b> `[a](http://e.vil)"),
    ({"lesson": SHIPPED, "step": "9"}, "There is no step 9 in lesson 'stateful-basics'"),
    ({"lesson": SHIPPED, "step": "two"}, "Step 'two' is not a number"),
    ({"lesson": SHIPPED, "step": "1", "class": "ZZZZZZ"}, "No class has the code ZZZZZZ"),
    ({"lesson": SHIPPED, "step": "1", "class": "**hi**"}, "'**hi**' is not a class code"),
    ({"teacher": "nope"}, "This teacher link is not valid"),
    ({"teacher": "A" * 32}, "This teacher link does not open a class"),
])
def test_bad_links_each_get_their_message(params, needle):
    at = page(**params)
    assert any(needle in e for e in shown(at, "error")), shown(at, "error")


@pytest.mark.parametrize("text, needle", [
    ('title = "T"\n[[step]\n', "lessons/broken.toml is not valid TOML: .*line 2"),
    ('title = "T"\n' + GOOD_STEP.replace("seed004-streams-stateful", "gone"),
     "lessons/broken.toml, line 4, step 1: unknown preset 'gone'"),
])
def test_a_bad_lesson_file_gets_its_message_on_the_page(tmp_path, monkeypatch, text, needle):
    (tmp_path / "broken.toml").write_text(text)
    monkeypatch.setenv("LSTM_LESSONS_DIR", str(tmp_path))
    at = page(lesson="broken", step="1")
    assert any(re.search(needle, e) for e in shown(at, "error")), shown(at, "error")


def test_a_class_collects_predictions_for_the_teacher():
    at = page(lesson=SHIPPED, step="1")
    button(at, "lesson_start_class").click()
    at.run()
    key = at.query_params["teacher"]
    teacher = page(teacher=key)
    code = re.search(r"Class code: `([A-Z0-9]{6})`", "\n".join(shown(teacher, "markdown"))).group(1)
    step = lessons.load(SHIPPED).steps[0]
    for choice in (1, 1, 2):  # three students, each their own session
        student = page(lesson=SHIPPED, step="1", **{"class": code})
        assert any(f"Class {code}" in i for i in shown(student, "info"))
        predict(student, step, choice)
    other = page(lesson=SHIPPED, step="1")  # alone: not counted
    predict(other, step, 3)
    teacher.run()
    bars = [p.proto.text for p in teacher.get("progress")]
    assert f"1. {step.choices[0]}: 2" in bars and f"2. {step.choices[1]}: 1" in bars
    assert f"3. {step.choices[2]}: 0" in bars
    assert "**3 predictions**" in [m.value for m in teacher.markdown]


# ---- in a real browser (Playwright, Debian Chromium) -----------------------------------------
@pytest.mark.browser
def test_browser_student_predicts_trains_sees_the_reveal_and_moves_on(streamlit_server,
                                                                     browser_page, artifacts):
    from bench._server import wait_for_app_loaded, wait_for_app_run
    page_ = browser_page
    step = lessons.load(SHIPPED).steps[0]
    page_.goto(f"{streamlit_server}/?lesson={SHIPPED}&step=1", wait_until="domcontentloaded")
    wait_for_app_loaded(page_)
    train_btn = page_.locator(".st-key-lesson_train button").first
    assert train_btn.is_disabled()  # no Train before a prediction
    page_.get_by_text(step.choices[1]).click()
    page_.get_by_role("button", name="Lock in my prediction").click()
    wait_for_app_run(page_)
    assert train_btn.is_enabled()
    train_btn.click()
    page_.get_by_text("Your run measured", exact=True).wait_for(timeout=180_000)
    wait_for_app_run(page_)
    body = page_.inner_text("[data-testid='stMain']")
    assert f"2. {step.choices[1]}" in body  # the prediction, beside
    assert re.search(r"[\d,]+ carried, [\d,]+ continuations, 0 contaminated", body)  # the run
    assert "Your run supports choice 1" in body and "Your prediction was different." in body
    page_.screenshot(path=str(artifacts / "lesson-student-reveal.png"))
    page_.locator(".st-key-lesson_next button").first.click()
    page_.wait_for_url(re.compile(r"step=2"))
    wait_for_app_run(page_)
    second = lessons.load(SHIPPED).steps[1]
    page_.get_by_text(second.question[:50]).wait_for()
    assert page_.locator(".st-key-lesson_train button").first.is_disabled()
