"""Compiling a student's shape ahead, while the settings are chosen (issue 11: a new shape's
Train should not wait for XLA), and the pool that keeps those nets beside the presets'.

Real child process and real Keras for the compile; the pool's bookkeeping with stand-in nets
(only their `sig` is read there)."""
from __future__ import annotations

import functools
import threading
import time
from types import SimpleNamespace

import pytest

from models import engine, limits, training
from models.trainer import Trainer

from tests.engine_runs import SMALL


class Recorder:
    """A job context (models.jobs.JobContext's interface) that keeps every phase reported."""

    def __init__(self):
        self.cancelled, self.phases = threading.Event(), []

    def progress(self, fraction, info=None):
        self.phases.append((info or {}).get("phase"))

    def publish(self, name, value):
        pass


def test_a_shape_compiled_ahead_trains_without_compiling_and_a_new_shape_still_compiles():
    t = Trainer()
    try:
        ahead = SMALL.replace(units=5, batch_size=15, seed=2)  # no other test uses these shapes
        assert t.wait_warmed(ahead.to_json(), 0) is None  # nothing asked yet
        t.warm(ahead.to_json())
        assert t.wait_warmed(ahead.to_json(), 300) == 1  # one net compiled, in the child
        t.warm(ahead.replace(lr=0.05).to_json())  # same shape, another rate: nothing to compile
        assert t.wait_warmed(ahead.replace(lr=0.05).to_json(), 300) == 0
        ctx = Recorder()
        res = t.run(functools.partial(training.train_job, ahead, None), ctx)
        assert res["batches_trained"] > 0 and training.COMPILING not in ctx.phases, ctx.phases
        other = Recorder()  # the control: a shape nobody compiled ahead compiles on Train
        t.run(functools.partial(training.train_job, ahead.replace(units=4), None), other)
        assert training.COMPILING in other.phases, other.phases
    finally:
        t.close(wait=5)


@pytest.fixture
def pool(monkeypatch):
    monkeypatch.setattr(engine, "_POOL", {})
    monkeypatch.setattr(engine, "_PINNED", set())
    monkeypatch.setattr(limits, "MAX_POOLED_NETS", 2)
    monkeypatch.setattr(limits, "MAX_EXTRA_NETS", 1)
    return engine._POOL


def net(sig):
    return SimpleNamespace(sig=sig)


def test_the_pool_keeps_the_presets_nets_and_the_most_recent_other_shapes(pool):
    engine._PINNED.update({"preset-a", "preset-b"})
    for sig in ("preset-a", "preset-b", "mine-1"):
        engine.release_net(net(sig))
    assert set(pool) == {"preset-a", "preset-b", "mine-1"}  # 2 + 1 places: all kept
    engine.release_net(net("mine-2"))  # full: the least recent shape no preset uses goes
    assert set(pool) == {"preset-a", "preset-b", "mine-2"}
    engine.release_net(net("preset-a"))  # a second net of a pinned shape: full, so one goes
    assert sum(map(len, pool.values())) == 3 and "preset-b" in pool and "preset-a" in pool


def test_without_pinned_shapes_the_least_recently_used_net_goes(pool):
    for sig in ("a", "b", "c"):
        engine.release_net(net(sig))
    engine.release_net(net("a"))  # a second net of "a": "a" is now the most recent, "b" goes
    assert {k: len(v) for k, v in pool.items()} == {"c": 1, "a": 2}
    engine.release_net(net("d"))  # then "c"
    assert {k: len(v) for k, v in pool.items()} == {"a": 2, "d": 1}


def test_a_train_of_a_shape_whose_net_is_still_being_built_ahead_waits_for_it(monkeypatch):
    """The claim starts before the net is built (Keras model, optimizer: a second or more on a
    busy server), so a Train that comes then waits instead of compiling the shape a second
    time beside the first (measured: both compiles then took twice as long)."""
    monkeypatch.setattr(engine, "_POOL", {})
    cfg = SMALL.replace(units=13, sequences=20)  # no other test compiles this shape
    real_init, built, go = engine.Net.__init__, [], threading.Event()

    def init(self, sig):  # the ahead-of-time build, held until a Train of its shape waits
        built.append(sig)
        go.wait(60)
        real_init(self, sig)
    monkeypatch.setattr(engine.Net, "__init__", init)
    ahead = threading.Thread(target=engine.prewarm, args=([cfg],), kwargs={"pin": False})
    ahead.start()
    deadline = time.monotonic() + 60  # a bound against hanging, not a timing assertion
    while not (engine._WARMING and built) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine._WARMING and built, "the shape was not claimed while its net was built"
    sig, waited, got = next(iter(engine._WARMING)), threading.Event(), []
    train = threading.Thread(target=lambda: got.append(
        engine.acquire_net(sig, 3, 0.01, on_wait=waited.set)))
    train.start()
    waited.wait(60)
    go.set()
    train.join(120)
    ahead.join(120)
    assert waited.is_set() and got and got[0].warm  # the net built ahead, compiled
    assert built == [sig]  # one build, one compile
    engine.release_net(got[0])
