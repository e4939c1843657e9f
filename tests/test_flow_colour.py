"""What the state carries, on the first-element task (real Keras runs of two presets, 4 epochs):
the first value's colour (the readout from h0) rides along a row, turns neutral at a reset, and
when shuffled stays with the slot (the state) while the sequences change rows."""
from __future__ import annotations

import numpy as np
import pytest

from models.engine import Engine
from models.presets import PRESETS
from models.trace import NOT_CARRIED, carry_kinds
from viz import flow_figure

EPOCHS = 4  # chunks-stateful agrees on every carried cell by then (measured: 1.0 at 10 epochs)


def _run(name):
    eng = Engine(PRESETS[name].config.replace(epochs=EPOCHS))
    try:
        return eng.run(validate=False).trace
    finally:
        eng.close()


@pytest.fixture(scope="module")
def runs():
    return {n: _run(n) for n in ("chunks-stateful", "shuffle-breaks-state")}


def _agreement(t):
    """In the last epoch, over carried cells: how often the readout from h0 (P(1) > 0.5) names
    the cell's own target, and how often the target of the previous occupant of its slot."""
    last = (t.epoch == t.epoch.max())[:, None]
    carried = carry_kinds(t) != NOT_CARRIED
    says = t.readout_h0[..., 0] > 0.5
    own = says == (t.target > 0.5)
    prev = np.zeros_like(own)
    prev[1:] = says[1:] == (t.target[:-1] > 0.5)
    sel = last & carried
    return float(own[sel].mean()), float(prev[sel].mean())


def test_the_first_value_rides_along_the_row_and_vanishes_at_a_reset(runs):
    t = runs["chunks-stateful"]
    own, prev = _agreement(t)
    print(f"chunks-stateful: readout from h0 names the cell's own target {own:.3f}")
    assert own >= 0.95
    # at a reset every slot starts from zeros: one readout for the whole batch (Dense(0))
    r = t.readout_h0[..., 0]
    reset = np.nonzero(t.reset_before)[0]
    assert len(reset) and all(np.ptp(r[k]) == 0 for k in reset)
    carried = np.nonzero(~t.reset_before & (t.epoch == t.epoch.max()))[0]
    spread = min(np.ptp(r[k]) for k in carried)
    print(f"smallest spread of the readout over a carried batch's slots: {spread:.3f}")
    assert spread > 0.5  # carried, trained: 0s and 1s of different sequences differ by slot
    # the figure colours the cells with exactly those readouts, targets in the corners
    fig = flow_figure(t, colour="readout", max_batches=20)
    assert np.array_equal(np.asarray(fig.data[0].z), r[:20, :32].T)
    marks = next(d for d in fig.data if d.name == "▪ corner: the true target")
    assert np.array_equal(np.asarray(marks.marker.color), t.target[:20, :32].ravel())


def test_shuffled_the_colour_stays_with_the_slot_not_the_sequence(runs):
    t = runs["shuffle-breaks-state"]
    own, prev = _agreement(t)
    print(f"shuffle-breaks-state: readout names its own target {own:.3f}, the previous "
          f"occupant's {prev:.3f}")
    assert own < 0.75 and prev > own + 0.05
    # following one sequence: it changes rows, and the figure says so
    seq = int(t.seq_id[1, 0])
    fig = flow_figure(t, follow=seq, max_batches=8)
    assert "changes slot" in fig.layout.title.text
