"""The Answers tab in AppTest (real Streamlit, real Keras): claims with what runs measured."""
from __future__ import annotations

from models import claims
from models.presets import PRESETS
from test_app import app, show, texts, wait_until_idle
from ui import text


def _claim_text(at) -> str:
    return "\n".join(m for m in texts(at, "markdown") if m.startswith("**Checked by runs**"))


def test_alphabet_run_then_answers_shows_the_probe_and_its_claim():
    at = app(preset="alphabet-batch1-positions")
    at.sidebar.button(key="btn_train").click().run()
    wait_until_idle(at)
    assert at.session_state["results"]["run"]["cfg"] == PRESETS["alphabet-batch1-positions"].config
    show(at, "Answers")  # used to crash: the probe's selectbox got a str of options
    md = texts(at, "markdown")
    assert any("the model says:" in m for m in md)
    summary = next(m for m in md if m.startswith("*Measured on this run, every start letter:*"))
    assert "from all 25 start letters" in summary or "of 25 start letters" in summary
    # the claim is judged on this session's run, with the same sentence as the probe summary
    stmt = claims.BY_ID["alphabet-positions"].statement
    line = next(x for x in _claim_text(at).splitlines() if stmt in x)
    assert line.startswith("- ✅ holds") and summary.split(":* ", 1)[1] in line
    # another letter: the probe answers from that letter, no exception
    at.selectbox(key="probe_start").set_value("W").run()
    assert not at.exception
    assert any("fed **W**" in m for m in texts(at, "markdown"))


def test_unmeasured_claims_say_so_and_offer_their_presets_and_the_trap_demo_runs():
    at = show(app(), "Answers")
    block = _claim_text(at)
    stmt = claims.BY_ID["shuffle-batch-breaks"].statement
    line = next(x for x in block.splitlines() if stmt in x)
    if "⏳" in line:  # nobody on this (test) server has run the two presets yet
        assert "Not measured on this server yet" in line
        keys = {b.key for b in at.button}
        need = line.split("(needs ", 1)[1].split(")", 1)[0].split(", ")
        for n in need:  # a button loads every preset the claim still needs
            assert f"claim_2_{n}" in keys or (n == text.preset_for(2) and "ans_2" in keys), n
    trap = claims.BY_ID["keras-one-leftover-broadcast"].statement
    assert "run the plain-Keras demo below" in next(x for x in block.splitlines() if trap in x)
    at.button(key="trap_demo_btn").click().run()
    assert not at.exception
    block = _claim_text(at)
    for cid in ("keras-one-leftover-broadcast", "keras-two-leftover-fails"):
        line = next(x for x in block.splitlines() if claims.BY_ID[cid].statement in x)
        assert line.startswith("- ✅ holds"), line
    assert "Incompatible shapes" in block
