"""A stateful Bidirectional LSTM in plain Keras (models/bidirectional.py): what each direction
carries across chunks, which reset reaches which direction, the claims built on it (and that
they fail on a stateless layer and on corrupted measurements), and the Answers entry."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from models import bidirectional as bd
from models import claims
from models.claims import CLAIMS, Bidi
from test_app import app, show, texts
from ui import text

BIDI = [c for c in CLAIMS if isinstance(c, Bidi)]


@pytest.fixture(scope="module")
def measured():
    return {"stateful": bd.measure(True), "stateless": bd.measure(False)}


def test_forward_state_after_chunk_1_starts_chunk_2(measured):
    f = measured["stateful"]["forward"]
    assert f["chunk1_fresh"] <= bd.EQUAL
    assert f["stored_vs_step_L"] <= bd.EQUAL          # the stored state is the state at step L
    assert f["chunk2_from_stored"] <= bd.EQUAL        # and chunk 2 starts from it
    assert f["chunk2_vs_whole"] <= bd.EQUAL           # = one pass over 1..2L
    assert f["chunk2_from_zeros"] > bd.APART          # a fresh start would be visibly different


def test_backward_state_is_handed_from_step_1_to_step_2L(measured):
    b = measured["stateful"]["backward"]
    assert b["chunk1_fresh"] <= bd.EQUAL              # chunk 1 read L..1 from zeros
    assert b["stored_vs_step_1"] <= bd.EQUAL          # stored: the state at step 1 (read last)
    assert b["stored_h_vs_step_L"] > bd.APART         # not the state at step L
    assert b["chunk2_from_stored"] <= bd.EQUAL
    assert b["chunk2_from_step_1"] <= bd.EQUAL        # chunk 2 read 2L..L+1 from step 1's state
    assert b["chunk2_from_zeros"] > bd.APART
    # The whole sequence read backwards starts fresh at 2L: at step L+1 it is the fresh pass.
    assert b["chunk2_vs_whole"] == pytest.approx(b["chunk2_from_zeros"], abs=bd.EQUAL)
    assert b["chunk2_vs_whole"] > bd.APART
    # chunk 1's backward output cannot see chunk 2: it differs from the whole pass at step 1
    assert b["chunk1_vs_whole"] > bd.APART


def test_resets(measured):
    z = measured["stateful"]["reset"]
    m = z["methods"]
    assert not m["model.reset_states"] and not m["model.reset_state"]  # Keras 3.15: none on Model
    assert m["layer.reset_states"] and m["layer.reset_state"]
    assert z["before"]["forward"] > bd.APART and z["before"]["backward"] > bd.APART
    for how in ("layer.reset_states", "layer.reset_state"):
        assert z[how]["forward"] == 0.0 and z[how]["backward"] == 0.0, how
    fo = z["forward_layer.reset_state"]
    assert fo["forward"] == 0.0 and fo["backward"] > bd.APART and fo["backward_moved"] == 0.0


def test_a_stateless_bidirectional_layer_carries_nothing(measured):
    s = measured["stateless"]
    assert s["state_names"] == {"forward": [], "backward": []}
    assert s["forward"]["chunk2_from_zeros"] <= bd.EQUAL
    assert s["backward"]["chunk2_from_zeros"] <= bd.EQUAL
    assert s["forward"]["chunk2_from_step_L"] > bd.APART


@pytest.mark.parametrize("c", BIDI, ids=lambda c: c.id)
def test_bidi_claim_holds_on_the_stateful_layer(measured, c):
    v = claims.evaluate(c, {"bidirectional": measured["stateful"]})
    assert v.holds, f"{c.id}: {c.statement} -- measured: {v.measured}"
    assert c.question == 11 and c.runs == ()


@pytest.mark.parametrize("c", BIDI, ids=lambda c: c.id)
def test_bidi_claim_fails_on_a_stateless_layer(measured, c):
    v = claims.evaluate(c, {"bidirectional": measured["stateless"]})
    assert not v.holds, f"{c.id} holds on a stateless layer: {v.measured}"


# Corruptions: each one a measurement the claim's words rule out.
CORRUPT = {
    "keras-bidi-forward-carries": [("forward", "chunk2_from_stored", 0.05),
                                   ("forward", "chunk2_from_zeros", 0.0)],
    "keras-bidi-backward-wrong-end": [("backward", "stored_vs_step_1", 0.1),   # stored step L's
                                      ("backward", "chunk2_from_step_1", 0.09),  # started fresh
                                      ("backward", "chunk2_vs_whole", 0.0)],   # = the whole pass
    "keras-bidi-reset-both": [("reset", ("layer.reset_states", "backward"), 0.4),
                              ("reset", ("forward_layer.reset_state", "backward_moved"), 0.2),
                              ("reset", ("methods", "model.reset_states"), True)],
}


@pytest.mark.parametrize("cid", list(CORRUPT))
def test_bidi_claim_fails_on_a_corrupted_measurement(measured, cid):
    assert set(CORRUPT) == {c.id for c in BIDI}
    for part, key, value in CORRUPT[cid]:
        m = copy.deepcopy(measured["stateful"])
        if isinstance(key, tuple):
            m[part][key[0]][key[1]] = value
        else:
            m[part][key] = value
        assert not claims.evaluate(claims.BY_ID[cid], {"bidirectional": m}).holds, (part, key)


def test_the_words_cite_the_measured_numbers(measured):
    m = measured["stateful"]
    w = text.bidi_words(m)
    assert f"{m['backward']['chunk2_vs_whole']:.2g}" in w
    assert f"{m['forward']['chunk2_from_zeros']:.2g}" in w
    assert "`model.reset_states` exists: False" in w


def test_the_answers_page_imports_no_tensorflow_until_the_toggle():
    code = ("import sys; from test_app import app, show; at = show(app(), 'Answers'); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "print(bad); sys.exit(bool(bad))")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests'}", "LSTM_PREWARM": "0",
           "LSTM_DATA_DIR": tempfile.mkdtemp(prefix="lstm-test-bidi-")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_answers_entry_renders_after_the_toggle():
    at = show(app(), "Answers")
    md = texts(at, "markdown")
    assert any(m.startswith("#### 11. Can a Bidirectional layer be stateful?") for m in md)
    block = "\n".join(m for m in md if m.startswith("**Checked by runs**"))
    for c in BIDI:
        line = next(x for x in block.splitlines() if c.statement in x)
        assert "⏳" in line and "turn on the plain-Keras measurement" in line
    at.toggle(key="bidi_on").set_value(True).run()
    assert not at.exception, at.exception
    md = texts(at, "markdown")
    words = next(m for m in md if m.startswith("*Measured:* Keras"))
    assert "Bidirectional(LSTM(" in words and "from step 1's state" in words
    block = "\n".join(m for m in md if m.startswith("**Checked by runs**"))
    for c in BIDI:
        line = next(x for x in block.splitlines() if c.statement in x)
        assert line.startswith("- ✅ holds"), line
