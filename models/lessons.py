"""Lessons as data: predict, run, reveal. A lesson is a TOML file in lessons/ (no streamlit here).

Why TOML (Python's tomllib, standard library): a teacher writes it in any text editor, with
`#` comments and multi-line strings for explanations (JSON has neither), and the parser names
the line of a syntax error. Nothing in a lesson is evaluated: it names presets and claims.

    title = "How state flows"              # shown on top
    intro = "..."                           # optional

    [[step]]
    preset = "stateless-resets"             # a preset name (python -m models presets)
    question = "How many fresh starts per epoch?"
    choices = ["5, one per batch", "1,000, one per sequence"]
    claim = "stateless-fresh-per-sample"    # a claim id (python -m models claims); its run
    answer = 2                              # = this step's preset; the choice it supports (1-based)
    explanation = '''Revealed after the run.'''

    [[step]]
    preset = "partial-batch-trap"
    question = "Final validation accuracy?"
    guess = "val"                           # a numeric guess of a measured quantity (GUESSES)
    claim = "partial-batch-trimmed-learns"  # optional for a guess
    explanation = "..."
    [step.settings]                         # optional: settings changed from the preset
    epochs = 3                              # (then no claim: claims hold for their preset)

Every problem is a LessonError naming the file, the line and the step. A step's answer is
judged only through its claim, evaluated on the student's own run: the app never says a choice
is right unless the run that the student watched measured it.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from models.config import FIELD, RunConfig

LESSON_DIR = Path(__file__).resolve().parent.parent / "lessons"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}\Z")
MAX_STEPS = 30
MAX_CHOICES = 6
MAX_TEXT = 2000

# Numeric guesses: what the run measures (read by measured_value), its words and its bounds.
GUESSES = {
    "val": ("final validation accuracy", 0.0, 1.0),
    "fresh_starts": ("fresh starts (states zeroed) in the last epoch", 0.0, 1e6),
    "carried": ("carried states in the last epoch", 0.0, 1e6),
    "contaminated": ("carried states that landed on another sequence, last epoch", 0.0, 1e6),
}
STEP_KEYS = {"preset", "question", "choices", "answer", "claim", "guess", "explanation",
             "settings", "title"}
TOP_KEYS = {"title", "intro", "step"}


class LessonError(ValueError):
    """A lesson file (or a step number) that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Step:
    number: int                 # 1-based
    preset: str
    config: RunConfig
    question: str
    explanation: str
    title: str = ""
    choices: tuple[str, ...] = ()
    answer: int | None = None   # 1-based choice the claim supports
    claim: str | None = None
    guess: str | None = None    # a key of GUESSES
    line: int = 0

    @property
    def kind(self) -> str:
        return "choice" if self.choices else "guess"

    @property
    def guess_words(self) -> str:
        return GUESSES[self.guess][0] if self.guess else ""

    @property
    def guess_bounds(self) -> tuple[float, float]:
        return GUESSES[self.guess][1:] if self.guess else (0.0, 0.0)


@dataclass(frozen=True)
class Lesson:
    name: str
    title: str
    intro: str
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def step(self, n) -> Step:
        """Step n (1-based; int or the URL's string), or a LessonError saying the range."""
        try:
            k = int(str(n).strip())
        except ValueError:
            raise LessonError(f"Step {str(n)[:20]!r} is not a number: this lesson has steps "
                              f"1-{len(self.steps)}.") from None
        if not 1 <= k <= len(self.steps):
            raise LessonError(f"There is no step {k} in lesson {self.name!r}: it has steps "
                              f"1-{len(self.steps)}.")
        return self.steps[k - 1]


def lesson_dir() -> Path:
    """lessons/ of the repository, or $LSTM_LESSONS_DIR (a teacher's own folder)."""
    env = os.environ.get("LSTM_LESSONS_DIR")
    return Path(env).expanduser() if env else LESSON_DIR


def available(directory: Path | None = None) -> dict[str, Path]:
    """Lesson name -> file, from the directory listing (a name is never used as a path)."""
    directory = lesson_dir() if directory is None else directory
    if not directory.is_dir():
        return {}
    return {p.stem: p for p in sorted(directory.glob("*.toml")) if NAME.match(p.stem)}


def load(name: str, directory: Path | None = None) -> Lesson:
    """The lesson called `name` (from the URL), or a LessonError naming what is wrong."""
    found = available(directory)
    if not isinstance(name, str) or name not in found:
        shown = str(name)[:40]
        raise LessonError(f"There is no lesson {shown!r}. Lessons: {', '.join(found) or 'none'}.")
    return parse(found[name].read_text(encoding="utf-8"), name, f"lessons/{found[name].name}")


def _step_lines(text: str) -> list[int]:
    """1-based line of every [[step]] header, in order."""
    return [i for i, ln in enumerate(text.splitlines(), 1)
            if re.match(r"^\s*\[\[\s*step\s*\]\]", ln)]


def _key_line(text: str, start: int, key: str) -> int:
    """The line of `key = ...` in the step whose [[step]] header is on line `start` (else
    `start`)."""
    lines = text.splitlines()
    for i in range(start, len(lines)):  # index start = the line after the header
        if re.match(r"^\s*\[\[\s*step\s*\]\]", lines[i]):
            break
        if re.match(rf"^\s*{re.escape(key)}\s*=", lines[i]):
            return i + 1
    return start


def parse(text: str, name: str = "lesson", where: str = "the lesson file") -> Lesson:
    """Parse and check a lesson's TOML text; every problem names the line (and the step)."""
    from models.claims import BY_ID
    from models.presets import PRESETS
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise LessonError(f"{where} is not valid TOML: {e}. Check that line (quotes, brackets, "
                          f"'key = value').") from None
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise LessonError(f"{where}: unknown top-level key {unknown[0]!r}; use title, intro and "
                          f"[[step]] tables.")
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise LessonError(f"{where}: the lesson needs a title = \"...\" line on top.")
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise LessonError(f"{where}: the lesson has no steps; add [[step]] tables.")
    if len(raw_steps) > MAX_STEPS:
        raise LessonError(f"{where}: {len(raw_steps)} steps; a lesson has at most {MAX_STEPS}.")
    heads = _step_lines(text)
    steps = []
    for k, raw in enumerate(raw_steps, 1):
        start = heads[k - 1] if k - 1 < len(heads) else 0

        def err(msg: str, key: str | None = None, k=k, start=start):
            line = _key_line(text, start, key) if key and start else start
            at = f"line {line}, step {k}" if line else f"step {k}"
            return LessonError(f"{where}, {at}: {msg}")

        if not isinstance(raw, dict):
            raise err("a step must be a [[step]] table.")
        bad = sorted(set(raw) - STEP_KEYS)
        if bad:
            raise err(f"unknown key {bad[0]!r}; a step has {', '.join(sorted(STEP_KEYS))}.", bad[0])
        for key in ("question", "explanation", "title"):
            v = raw.get(key, "" if key == "title" else None)
            if not isinstance(v, str) or (key != "title" and not v.strip()):
                raise err(f"{key} must be text in quotes.", key)
            if len(v) > MAX_TEXT:
                raise err(f"{key} is longer than {MAX_TEXT} characters.", key)
        preset = raw.get("preset")
        if not isinstance(preset, str) or preset not in PRESETS:
            raise err(f"unknown preset {str(preset)[:40]!r}; presets: {', '.join(PRESETS)}.",
                      "preset")
        cfg = PRESETS[preset].config
        settings = raw.get("settings", {})
        if not isinstance(settings, dict):
            raise err("settings must be a [step.settings] table.", "settings")
        if settings:
            unknown_s = [s for s in settings if s not in FIELD]
            if unknown_s:
                raise err(f"unknown setting {unknown_s[0]!r}; settings: {', '.join(FIELD)}.",
                          unknown_s[0])
            for s, v in settings.items():  # one at a time: the message names its line
                cfg, errs = RunConfig.from_mapping(
                    {s: str(v).lower() if isinstance(v, bool) else str(v)}, cfg)
                if errs:  # the URL's wording says what it falls back to; a lesson does not
                    raise err(f"setting {s}: " + re.sub(r"\s*Using .*$", "", " ".join(errs)), s)
        problems = cfg.problems()
        if problems:
            raise err("these settings cannot run: " + " ".join(problems), "preset")
        if cfg.task == "user":
            raise err("a lesson step cannot use the user task (it needs an upload).", "preset")
        claim = raw.get("claim")
        if claim is not None:
            if not isinstance(claim, str) or claim not in BY_ID:
                raise err(f"unknown claim {str(claim)[:60]!r} (python -m models claims lists "
                          f"them).", "claim")
            c = BY_ID[claim]
            if tuple(c.runs) != (preset,):
                raise err(f"claim {claim!r} is checked on runs of {', '.join(c.runs) or 'plain Keras'}"
                          f"; a step's claim must be checked by the step's own run ({preset}).",
                          "claim")
            if settings:
                raise err(f"claim {claim!r} holds for the preset's own settings; drop the "
                          f"[step.settings] or the claim.", "claim")
        choices, guess = raw.get("choices"), raw.get("guess")
        if (choices is None) == (guess is None):
            raise err("a step has either choices = [...] or guess = \"...\" (one of them).",
                      "choices" if choices is not None else "question")
        answer = raw.get("answer")
        if choices is not None:
            if (not isinstance(choices, list) or not 2 <= len(choices) <= MAX_CHOICES
                    or not all(isinstance(c, str) and c.strip() and len(c) <= 300 for c in choices)):
                raise err(f"choices must be a list of 2-{MAX_CHOICES} texts in quotes.", "choices")
            if claim is None:
                raise err("a step with choices needs the claim that decides them.", "choices")
            if not isinstance(answer, int) or isinstance(answer, bool) or not 1 <= answer <= len(choices):
                raise err(f"answer must be the number of the choice the claim supports "
                          f"(1-{len(choices)}).", "answer")
        else:
            if guess not in GUESSES:
                raise err(f"guess must be one of {', '.join(GUESSES)}, not {str(guess)[:30]!r}.",
                          "guess")
            if guess == "val" and cfg.task == "sine":
                raise err("the sine task measures MAE, not accuracy: guess another quantity.",
                          "guess")
            if answer is not None:
                raise err("a guess has no answer = ...: the run measures it.", "answer")
        steps.append(Step(k, preset, cfg, raw["question"].strip(), raw["explanation"].strip(),
                          raw.get("title", "").strip(), tuple(c.strip() for c in choices or ()),
                          answer, claim, guess, start))
    intro = data.get("intro", "")
    if not isinstance(intro, str) or len(intro) > MAX_TEXT:
        raise LessonError(f"{where}: intro must be text in quotes (at most {MAX_TEXT} characters).")
    return Lesson(name, title.strip(), intro.strip(), tuple(steps))


# ---- what a run measured, for the reveal -----------------------------------------------------
def measured_value(step: Step, measure: dict) -> float | None:
    """The quantity a guess step asks for, read from claims.measure() of the student's run."""
    if step.guess == "val":
        return measure.get("val")
    last = measure.get("last_epoch") or {}
    v = last.get(step.guess)
    return None if v is None else float(v)


def reveal(step: Step, measure: dict) -> dict:
    """What the run measured for this step: {"value", "measured", "claim", "holds",
    "supports"} (supports: the choice the claim decides, only when it holds on this run)."""
    from models import claims
    out = {"value": None, "measured": None, "claim": None, "holds": None, "supports": None}
    if step.guess:
        out["value"] = measured_value(step, measure)
    if step.claim:
        v = claims.evaluate(claims.BY_ID[step.claim], {step.preset: measure})
        out.update(measured=v.measured, claim=v.claim.statement, holds=v.holds)
        if v.holds and step.answer:
            out["supports"] = step.answer
    return out


__all__ = ["GUESSES", "Lesson", "LessonError", "Step", "available", "load", "parse",
           "measured_value", "reveal"]
