"""The replay check on real Keras runs: hT recomputed from the recorded h0, the batch's inputs
and the step's weights by NumPy matches the layer; corrupt any of them and it stops matching."""
import numpy as np
import pytest

from models import limits
from models.config import RunConfig
from models.engine import Engine
from models.trace import REPLAY_BATCHES, REPLAY_KEYS, REPLAY_TOLERANCE, Trace
from viz import carry_summary

# One shape (B=10, L=5: one compiled chunk of 256 batches holds an epoch): the pooled net is
# compiled once for the whole file (and shared with tests/test_engine.py's SMALL).
SMALL = RunConfig(sequences=60, seq_len=20, batch_size=10, layout="chunks", length=5,
                  stateful=True, shuffle="off", reset="never", epochs=2, units=6)


def run(cfg, **kw):
    eng = Engine(cfg)
    try:
        return eng.run(**kw).trace
    finally:
        eng.close()


@pytest.fixture(scope="module")
def stateful():
    return run(SMALL)


@pytest.fixture(scope="module")
def stateless():
    return run(SMALL.replace(stateful=False))


def copy(t: Trace) -> Trace:
    return Trace.from_bytes(t.to_bytes())


def test_replay_matches_the_layer_on_a_stateful_run(stateful):
    t = stateful
    c = t.carry_check()
    assert c["replayed"] == 2  # the first batch of each epoch's chunk
    assert t.batch[t.replay["replay_batch"]].tolist() == [0, 0]
    assert t.epoch[t.replay["replay_batch"]].tolist() == [1, 2]
    print(f"stateful replay error {c['max_replay_error']:.2e}")
    assert c["max_replay_error"] < 1e-5
    # epoch 2's first batch starts from the state epoch 1 ended with (reset: never): the same
    # replay from zeros instead does not match, so the layer did use the carried state
    k = int(t.replay["replay_batch"][1])
    assert not t.reset_before[k] and np.abs(t.h0[k]).max() > 0
    z = copy(t)
    z.h0[k], z.c0[k] = 0, 0
    err = z.carry_check()["max_replay_error"]
    print(f"the same batch replayed from zeros: off by {err:.2e}")
    assert err > REPLAY_TOLERANCE
    assert f"replay of 2 batches from the recorded h0 matches to {c['max_replay_error']:.0e}" \
        in carry_summary(t)


def test_replay_from_zeros_matches_a_stateless_run(stateless):
    t = stateless
    c = t.carry_check()
    assert c["replayed"] == 2 and (t.h0 == 0).all()
    print(f"stateless replay error {c['max_replay_error']:.2e}")
    assert c["max_replay_error"] < 1e-5
    assert "replay of 2 batches from zeros (the recorded h0) matches" in carry_summary(t)


def test_a_wrong_h0_fails_the_replay(stateful, stateless):
    for good in (stateful, stateless):
        t = copy(good)
        assert t.carry_check()["max_replay_error"] < 1e-5  # remembered until an array changes
        k = int(t.replay["replay_batch"][-1])
        t.h0[k] += 0.3
        c = t.carry_check()
        assert c["max_replay_error"] > REPLAY_TOLERANCE, c["max_replay_error"]
        assert "does NOT match" in carry_summary(t)


def test_a_wrong_c0_fails_the_replay(stateful):
    t = copy(stateful)
    t.c0[int(t.replay["replay_batch"][-1])] -= 0.3
    assert t.carry_check()["max_replay_error"] > REPLAY_TOLERANCE


@pytest.mark.parametrize("key", ["replay_kernel", "replay_recurrent", "replay_bias", "replay_x"])
def test_wrong_weights_or_inputs_fail_the_replay(stateful, key):
    t = copy(stateful)
    t.replay[key][-1] += 0.2
    assert t.carry_check()["max_replay_error"] > REPLAY_TOLERANCE


def test_the_weights_of_another_step_fail_the_replay(stateful):
    """The replay needs the weights the step used: epoch 1's weights do not reproduce epoch 2."""
    t = copy(stateful)
    for key in ("replay_kernel", "replay_recurrent", "replay_bias"):
        t.replay[key][1] = t.replay[key][0]
    err = t.carry_check()["max_replay_error"]
    print(f"epoch-2 batch replayed with epoch-1 weights: off by {err:.2e}")
    assert err > REPLAY_TOLERANCE


def test_replay_data_survives_save_and_load(stateful):
    back = copy(stateful)
    for k in REPLAY_KEYS:
        np.testing.assert_array_equal(back.replay[k], stateful.replay[k])
    assert back.carry_check() == stateful.carry_check()


def test_a_trace_without_replay_data_still_loads(stateful):
    arrays = {k: v for k, v in stateful.to_arrays().items() if k not in REPLAY_KEYS}
    t = Trace.from_arrays(arrays)
    c = t.carry_check()
    assert t.replay is None and c["replayed"] == 0 and c["max_replay_error"] is None
    assert c["max_carry_error"] == 0.0 and c["continuation"] > 0
    assert "no replay data in this trace" in carry_summary(t)


def test_broken_replay_data_is_refused_with_a_message(stateful):
    arrays = stateful.to_arrays()
    partial = {k: v for k, v in arrays.items() if k != "replay_bias"}
    with pytest.raises(ValueError, match="replay data without replay_bias"):
        Trace.from_arrays(partial)
    outside = dict(arrays, replay_batch=np.array([0, stateful.n], np.int32))
    with pytest.raises(ValueError, match="outside the recorded batches"):
        Trace.from_arrays(outside)
    wrong = dict(arrays, replay_kernel=arrays["replay_kernel"][:, :, :5])
    with pytest.raises(ValueError, match="do not fit 6 units"):
        Trace.from_arrays(wrong)


def test_a_long_run_replays_batches_spread_over_every_recorded_epoch():
    t = run(SMALL.replace(epochs=20, reset="sequence"))
    c = t.carry_check()
    epochs = t.epoch[t.replay["replay_batch"]]
    assert c["replayed"] == REPLAY_BATCHES and epochs[0] == 1 and epochs[-1] == 20
    assert len(set(epochs.tolist())) == REPLAY_BATCHES  # no epoch sampled twice
    assert c["max_replay_error"] < 1e-5


def test_thinned_run_replays_batches_of_the_kept_epochs(monkeypatch):
    monkeypatch.setattr(limits, "MAX_RECORDED_BATCHES", 40)
    t = run(SMALL.replace(epochs=5))
    assert t.thinned and set(t.epoch.tolist()) == {1, 5}
    pos = t.replay["replay_batch"]
    assert t.epoch[pos].tolist() == [1, 5] and t.batch[pos].tolist() == [0, 0]
    assert t.carry_check()["max_replay_error"] < 1e-5


def test_live_view_of_the_newest_batches_replays_too():
    eng = Engine(SMALL.replace(epochs=3))
    try:
        eng.run(validate=False)
        recent = eng.recent_trace(24)
    finally:
        eng.close()
    # chunks are one epoch (20 batches) long: the newest 24 hold the start of epoch 3's chunk
    assert recent.n == 24 and recent.index[-1] == 59
    assert recent.replay["replay_batch"].tolist() == [4] and recent.batch[4] == 0
    c = recent.carry_check()
    assert c["replayed"] == 1 and c["max_replay_error"] < 1e-5
