"""Class sessions (models/classroom.py): codes, expiry, anonymous answers, limits, isolation."""
from __future__ import annotations

import sqlite3

import pytest

from models import classroom
from models.classroom import ClassError, Classroom


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def room(tmp_path):
    clock = Clock()
    r = Classroom(tmp_path / "results.sqlite3", now=clock)
    r.clock = clock
    yield r
    r.close()


def test_a_class_collects_answers_per_step_by_its_code(room):
    info, key = room.create("stateful-basics")
    assert classroom.CODE.match(info.code) and len(key) >= 20
    assert room.for_teacher(key) == info
    for i, a in enumerate(["1", "1", "2"]):
        room.answer(info.code.lower(), f"student{i}", 1, a)  # typed in lower case: fine
    room.answer(info.code, "student0", 1, "3")  # answering again replaces the answer
    room.answer(info.code, "student0", 6, "0.9")
    room.measured(info.code, "student0", 1, "100 carried, 100 continuations", None, True)
    s = room.summary(info.code)
    assert s[1]["answers"] == {"1": 1, "2": 1, "3": 1} and s[1]["n"] == 3
    assert s[1]["runs"] == 1 and s[1]["holds"] == {True: 1}
    assert s[1]["measured"] == {"100 carried, 100 continuations": 1}
    assert s[6]["answers"] == {"0.9": 1} and s[6]["runs"] == 0


def test_another_class_sees_nothing_of_this_one(room):
    a, _ = room.create("stateful-basics")
    b, key_b = room.create("stateful-basics")
    assert a.code != b.code
    room.answer(a.code, "s", 1, "1")
    assert room.summary(b.code) == {}
    assert room.for_teacher(key_b).code == b.code
    assert 1 in room.summary(a.code)


def test_students_are_stored_anonymously(room, tmp_path):
    info, key = room.create("stateful-basics")
    room.answer(info.code, "session-id-of-alice", 1, "2")
    con = sqlite3.connect(tmp_path / "results.sqlite3")
    dump = "\n".join(con.iterdump())
    assert "session-id-of-alice" not in dump and key not in dump


@pytest.mark.parametrize("code, needle", [
    ("K7WQ", "is not a class code"), ("<b>x</b>", "is not a class code"),
    ("ZZZZZZ", "No class has the code ZZZZZZ"), ("", "is not a class code")])
def test_a_wrong_code_says_so(room, code, needle):
    room.create("stateful-basics")
    with pytest.raises(ClassError, match=needle):
        room.join(code)


def test_an_expired_code_says_so_and_is_forgotten_a_day_later(room):
    info, key = room.create("stateful-basics")
    room.answer(info.code, "s", 1, "1")
    room.clock.t += classroom.hours() * 3600 + 1
    with pytest.raises(ClassError, match="has ended"):
        room.join(info.code)
    with pytest.raises(ClassError, match="has ended"):
        room.answer(info.code, "s", 2, "1")
    with pytest.raises(ClassError, match="has expired"):
        room.for_teacher(key)
    room.clock.t += classroom.KEEP_EXPIRED
    room.create("other")  # creating purges what expired a day ago
    with pytest.raises(ClassError, match="No class has the code"):
        room.join(info.code)
    assert room.summary(info.code) == {}


@pytest.mark.parametrize("key", ["short", "x" * 30, None, "'; DROP TABLE class_sessions; --"])
def test_a_wrong_teacher_key_says_so(room, key):
    room.create("stateful-basics")
    with pytest.raises(ClassError, match="teacher link"):
        room.for_teacher(key)


def test_answers_are_rate_limited_per_student(room):
    info, _ = room.create("stateful-basics")
    for i in range(classroom.RATE):
        room.answer(info.code, "eager", 1 + i % 6, "1")
    with pytest.raises(ClassError, match="Too many answers"):
        room.answer(info.code, "eager", 1, "2")
    room.answer(info.code, "calm", 1, "2")  # another student is not limited by it
    room.clock.t += classroom.RATE_WINDOW
    room.answer(info.code, "eager", 1, "3")  # a minute later: fine again
    assert room.summary(info.code)[1]["answers"] == {"3": 1, "2": 1}


def test_classes_and_students_are_bounded(room, monkeypatch):
    monkeypatch.setattr(classroom, "MAX_OPEN", 3)
    monkeypatch.setattr(classroom, "MAX_STUDENTS", 2)
    info, _ = room.create("l")
    room.create("l")
    room.create("l")
    with pytest.raises(ClassError, match="3 classes open"):
        room.create("l")
    room.answer(info.code, "a", 1, "1")
    room.answer(info.code, "b", 1, "1")
    room.answer(info.code, "a", 2, "1")  # a known student may go on
    with pytest.raises(ClassError, match="2 students, the limit"):
        room.answer(info.code, "c", 1, "1")


def test_answers_are_bounded_in_length(room):
    info, _ = room.create("l")
    room.answer(info.code, "s", 1, "9" * 10_000)
    (ans,) = room.summary(info.code)[1]["answers"]
    assert len(ans) == classroom.MAX_ANSWER
