"""Per-slot resets (layout "packed"): sequences of different lengths packed one after another
into B streams, and only the slot whose sequence ended is reset (its row of the state assigned
zeros). Real Keras: the other slots' states are untouched, exactly, and the engine agrees with
plain `fit` plus the generated script's per-slot reset callback."""
import os
import subprocess
import sys

import numpy as np
import pytest

from models import layouts
from models.codegen import generate
from models.config import RunConfig
from tests.engine_runs import trained  # noqa: E402
from models.trace import Trace
from viz import flow_figure
from viz.slot_resets import SLOT_RESET

import keras  # noqa: E402

SMALL = RunConfig(sequences=60, seq_len=20, batch_size=10, layout="packed", length=5,
                  stateful=True, shuffle="off", reset="sequence", epochs=2, units=6)


@pytest.fixture(scope="module")
def packed():
    return trained(SMALL)


def test_each_slot_streams_whole_sequences_of_different_lengths():
    s = layouts.arrange(np.zeros((50, 20, 1), np.float32), np.zeros((50, 20)), SMALL)
    lens = layouts.packed_lengths(50, 4, SMALL)
    assert len(set(lens.tolist())) > 1  # different lengths
    seen = set()
    for i in range(SMALL.batch_size):
        col = s.order[:, i]
        seqs, parts = s.seq_id[col], s.part[col]
        for k in range(1, len(col)):  # a slot continues its sequence, or starts the next at 0
            same = seqs[k] == seqs[k - 1]
            assert parts[k] == (parts[k - 1] + 1 if same else 0)
            if not same:
                assert s.last[col[k - 1]]  # the previous sequence had ended
        assert not seen & set(seqs.tolist())  # a sequence lives in one slot only
        seen |= set(seqs.tolist())
    assert layouts.count_batches(SMALL, 50) == s.n_batches
    p = layouts.preview_indices(SMALL, 50, max_batches=6)
    np.testing.assert_array_equal(p[0], s.seq_id[s.order[:6]])


def test_only_the_slot_whose_sequence_ended_is_reset_and_the_others_are_untouched(packed):
    t = packed[1].trace
    r = t.reset_slots
    partial = np.nonzero(r.any(axis=1) & ~r.all(axis=1))[0]
    assert len(partial) > t.n // 2, "most batches reset some slots, not all"
    assert not t.reset_before[partial].any()
    for k in partial:
        if k == 0:
            continue
        reset, kept = r[k], ~r[k]
        assert (t.h0[k][reset] == 0).all() and (t.c0[k][reset] == 0).all()
        # every other slot starts from exactly the state it ended the batch before with
        np.testing.assert_array_equal(t.h0[k][kept], t.hT[k - 1][kept])
        np.testing.assert_array_equal(t.c0[k][kept], t.cT[k - 1][kept])
        assert (t.part[k][reset] == 0).all()  # a reset slot starts a new sequence
    c = t.carry_check()
    assert c["contaminated"] == 0 and c["continuation"] == c["carried"] > 0
    assert c["max_carry_error"] == 0.0 and c["max_fresh_abs"] == 0.0
    assert c["max_replay_error"] < 1e-5
    back = Trace.from_bytes(t.to_bytes())
    np.testing.assert_array_equal(back.reset_slots, r)
    assert back.carry_check() == c


def test_a_slot_reset_that_should_not_have_been_is_detected(packed):
    t = Trace.from_bytes(packed[1].trace.to_bytes())
    # (a first value of 0 keeps an untrained LSTM's h at exactly 0: pick a slot that moved)
    k, i = next((k, i) for k in range(1, t.n) if t.reset_slots[k].any()
                for i in np.nonzero(~t.reset_slots[k])[0] if np.abs(t.hT[k - 1, i]).max() > 0)
    t.h0[k, i] = 0  # as if the whole batch had been reset: this slot lost its state
    assert t.carry_check()["max_carry_error"] > 0
    t = Trace.from_bytes(packed[1].trace.to_bytes())
    k, j = next((k, j) for k in range(1, t.n) if not t.reset_before[k]
                for j in np.nonzero(t.reset_slots[k])[0] if np.abs(t.hT[k - 1, j]).max() > 0)
    t.h0[k, j] = t.hT[k - 1, j]  # a slot that should have been reset carried its state
    assert t.carry_check()["max_fresh_abs"] > 0


def test_engine_agrees_with_fit_and_the_scripts_row_assignment(packed):
    """The generated script's way, in plain Keras: fit with a callback that assigns zeros to
    the rows of the slots whose sequence ended. From the same initial weights, measured: weights
    and states bit-identical to the engine's (bound as test_cells.py's: 1e-6)."""
    eng, r, init, final = packed
    cfg, s = eng.cfg, eng.train
    inp = keras.Input(batch_shape=(cfg.batch_size, cfg.sample_len, 1))
    rnn = keras.layers.LSTM(cfg.units, stateful=True)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(rnn(inp)))
    model.set_weights(init)
    model.compile(keras.optimizers.Adam(cfg.lr), "binary_crossentropy", jit_compile=True)

    class SlotResets(keras.callbacks.Callback):
        flags = None

        def on_train_batch_begin(self, batch, logs=None):
            rows = self.flags[batch]
            for v in rnn.states:
                v.assign(np.where(rows[:, None], 0.0, v.numpy()).astype("float32"))

    cb = SlotResets()
    idx = s.order.reshape(-1)
    for epoch in range(1, cfg.epochs + 1):
        cb.flags = layouts.slot_resets(s, s.order, cfg, epoch == 1)
        model.fit(s.x[idx], s.y[idx].astype("float32")[:, None], batch_size=cfg.batch_size,
                  epochs=epoch, initial_epoch=epoch - 1, shuffle=False, callbacks=[cb], verbose=0)
    werr = max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), r.weights))
    serr = max(float(np.abs(v.numpy() - f).max()) for v, f in zip(rnn.states, final))
    print(f"packed: engine vs fit + row assignment: weights {werr:g}, states {serr:g}")
    assert werr <= 1e-6 and serr <= 1e-6


def test_the_flow_marks_each_slot_reset(packed):
    t = packed[1].trace
    fig = flow_figure(t, max_batches=10)
    [marks] = [d for d in fig.data if d.name == SLOT_RESET]
    own = t.reset_slots[:10, :32] & ~t.reset_before[:10, None]
    assert np.isfinite(np.asarray(marks.x, float)).sum() == 2 * own.sum()
    one = flow_figure(Trace.from_bytes(t.to_bytes()).layer_view(1), max_batches=10)
    assert SLOT_RESET in [d.name for d in one.data]
    chunks = SMALL.replace(layout="chunks")
    assert chunks.to_query()["layout"] == "chunks" and SMALL.to_query()["layout"] == "packed"
    assert RunConfig.from_mapping(SMALL.to_query()) == (SMALL, [])


def test_generated_packed_script_resets_rows_and_runs(tmp_path):
    src = generate(SMALL.replace(layers=2), quick=True)
    assert "def reset_slots(rows)" in src and "reset_slots(self.flags[batch])" in src
    assert "np.random.default_rng([SEED, n, 7])" in src  # the app's lengths
    path = tmp_path / "packed.py"
    path.write_text(src)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    p = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().splitlines()[-1].startswith("val_accuracy ")
    from test_codegen import check_stream
    check_stream(p.stdout, SMALL.replace(layers=2))  # the batch-1 copy streams like slot 0
