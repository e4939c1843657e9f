"""The Answers tab: the questions people ask, each answer tied to the runs that measure it."""
from __future__ import annotations

import streamlit as st

from models.presets import PRESETS
from models.tasks import LETTERS
from ui import settings, text


def answers_tab(res: dict | None) -> None:
    st.caption(text.CAPTIONS["answers"])
    locked = st.session_state.get("locked", False)
    for q, question, answer in text.QUESTIONS:
        st.markdown(f"#### {q}. {question}")
        st.markdown(answer)
        m = text.measured(q, res)
        if m:
            st.markdown(f"*Measured:* {m}")
        name = text.preset_for(q)
        if name:
            st.button(f"Load preset: {PRESETS[name].title}", key=f"ans_{q}",
                      on_click=settings.load_preset, args=(name,), disabled=locked)
        if q == 3:
            alphabet_probe(res)


def alphabet_probe(res: dict | None) -> None:
    if res is None or res["cfg"].task != "alphabet" or res["trace"].n == 0:
        st.caption("After training the alphabet preset, try it here from any start letter.")
        return
    from models import engine  # loaded already: a run has finished
    probe = getattr(engine, "probe_alphabet", None)
    c1, c2 = st.columns([1, 3])
    # A list, not the string: a str of options is one option to st.selectbox (index 12 crashed).
    start = c1.selectbox("Start letter", list(LETTERS[:-1]), index=12, key="probe_start")
    if probe is None:
        c2.info("The probe needs models.engine.probe_alphabet (not installed yet).")
        return
    n = min(8, 25 - LETTERS.index(start))
    out = probe(res["weights"], res["cfg"], start, n)
    right = LETTERS[LETTERS.index(start) + 1:LETTERS.index(start) + 1 + n]
    c2.markdown(f"From a fresh state, fed **{start}** and then its own answers, the model "
                f"says: **{' '.join(out)}** (the next letters are {' '.join(right)}).")
