"""The Answers tab: the questions people ask, each answer tied to the claims and runs that check it.

The page does not run every claim on load. For each claim it shows the statement and, when the
run(s) it needs are this session's results or in the server's result store, what they measured
and whether the claim holds; otherwise it says so and offers the presets to run.
"""
from __future__ import annotations

import streamlit as st

from models import claims as claims_mod
from models.presets import PRESETS
from models.store import run_key
from models.tasks import LETTERS
from ui import runs, settings, text


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
        if q == 8:
            inference_panel(res)
        if q == 11:
            bidi_panel()
        claims_block(q, locked)


# ---- claims ---------------------------------------------------------------------------------
def _result_for(name: str) -> dict | None:
    """The finished run of a preset: this session's own result, or the server's stored one."""
    cfg = PRESETS[name].config
    for r in (st.session_state.get("results") or {}).values():
        if r and r.get("cfg") == cfg and not r.get("cancelled") and r.get("trace") is not None:
            return r
    try:
        key = run_key(cfg.to_json(), runs._versions())
        return runs.load_result(key) if runs.store().has(key) else None
    except Exception:  # noqa: BLE001  (a store problem must not break the page; it reports itself)
        return None


def _measure(name: str) -> dict | None:
    """What the claims read from a preset's run, computed once per run per session."""
    res = _result_for(name)
    if res is None:
        return None
    cache = st.session_state.setdefault("claim_measures", {})
    key = (name, res.get("run_id") or id(res["trace"]))
    if key not in cache:
        m = claims_mod.measure({**res, "preset": name}, probe=False)
        if any(c.preset == name for c in claims_mod.CLAIMS if isinstance(c, claims_mod.Inference)):
            m["inference"] = _inference(res)
        if res["cfg"].task == "alphabet":
            m["alphabet"] = _alphabet_answers(res)
        cache[key] = m
    return cache[key]


def _alphabet_answers(res: dict) -> dict[str, list[str]]:
    """The probe from every start letter A-Y (5 answers each), once per run per session."""
    from models import engine
    cache = st.session_state.setdefault("claim_measures", {})
    key = ("alphabet", res.get("run_id") or id(res["trace"]))
    if key not in cache:
        cache[key] = {s: engine.probe_alphabet(res["weights"], res["cfg"], s, 5) for s in LETTERS[:-1]}
    return cache[key]


def claim_lines(q: int) -> tuple[list[str], list[str]]:
    """(markdown lines, presets not measured yet) for the claims behind question q."""
    cs = [c for c in claims_mod.CLAIMS if c.question == q]
    lines, missing = [], []
    trap = st.session_state.get("trap_demo") or {}
    bidi = st.session_state.get("bidi_demo")
    for c in cs:
        if isinstance(c, claims_mod.Bidi):
            if bidi is None:
                lines.append(f"- ⏳ {c.statement} *Not measured in this session yet: turn on the "
                             f"plain-Keras measurement above.*")
                continue
            v = claims_mod.evaluate(c, {"bidirectional": bidi})
        elif isinstance(c, claims_mod.Trap):
            if f"trap{c.leftover}" not in trap:
                lines.append(f"- ⏳ {c.statement} *Not measured in this session yet: run the "
                             f"plain-Keras demo below.*")
                continue
            v = claims_mod.evaluate(c, dict(trap))
        else:
            measures = {n: m for n in c.runs if (m := _measure(n)) is not None}
            need = [n for n in c.runs if n not in measures]
            if need:
                missing += [n for n in need if n not in missing]
                lines.append(f"- ⏳ {c.statement} *Not measured on this server yet "
                             f"(needs {', '.join(need)}).*")
                continue
            v = claims_mod.evaluate(c, measures)
        mark = "✅ holds" if v.holds else "❌ does not hold"
        lines.append(f"- {mark}: {c.statement} *Measured:* {v.measured}.")
    return lines, missing


def claims_block(q: int, locked: bool) -> None:
    lines, missing = claim_lines(q)
    if not lines:
        return
    st.markdown("**Checked by runs** (each contrast changes one setting against its control):\n"
                + "\n".join(lines))
    for n in missing:
        if n == text.preset_for(q):
            continue  # its button is right under the answer already
        st.button(f"Load preset: {PRESETS[n].title}", key=f"claim_{q}_{n}",
                  on_click=settings.load_preset, args=(n,), disabled=locked)
    if q == 5 and "trap_demo" not in st.session_state:
        if st.button("Run the plain-Keras partial-batch demo (a few seconds)", key="trap_demo_btn"):
            from models import traps
            with st.spinner("Training a tiny stateful LSTM with model.fit…"):
                st.session_state["trap_demo"] = {f"trap{n}": traps.partial_batch(n) for n in (1, 2)}
            st.rerun()


# ---- the alphabet probe ---------------------------------------------------------------------
def alphabet_probe(res: dict | None) -> None:
    if res is None or res["cfg"].task != "alphabet" or res["trace"].n == 0:
        st.caption("After training the alphabet preset, try it here from any start letter.")
        return
    from models import engine  # loaded already: a run has finished
    c1, c2 = st.columns([1, 3])
    # A list, not the string: a str of options is one option to st.selectbox (index 12 crashed).
    start = c1.selectbox("Start letter", list(LETTERS[:-1]), index=12, key="probe_start")
    n = min(8, 25 - LETTERS.index(start))
    out = engine.probe_alphabet(res["weights"], res["cfg"], start, n)
    right = LETTERS[LETTERS.index(start) + 1:LETTERS.index(start) + 1 + n]
    c2.markdown(f"From a fresh state, fed **{start}** and then its own answers, the model "
                f"says: **{' '.join(out)}** (the next letters are {' '.join(right)}).")
    st.markdown(f"*Measured on this run, every start letter:* "
                f"{claims_mod.alphabet_summary(_alphabet_answers(res))}")


# ---- a stateful Bidirectional layer, in plain Keras ----------------------------------------
@st.cache_data(max_entries=1, show_spinner=False)
def _bidi_cached() -> dict:
    """The Bidirectional measurement (the same for every session: fixed seed, a few seconds)."""
    from models import bidirectional
    return bidirectional.measure()


def bidi_panel() -> None:
    """Measure a stateful Bidirectional LSTM in plain Keras, behind a toggle (TensorFlow is
    imported only when it is turned on)."""
    if not st.toggle("Measure a stateful Bidirectional LSTM in plain Keras (a few seconds)",
                     key="bidi_on"):
        return
    with st.spinner("Feeding two chunks to a stateful Bidirectional LSTM…"):
        st.session_state["bidi_demo"] = _bidi_cached()
    st.markdown(f"*Measured:* {text.bidi_words(st.session_state['bidi_demo'])}")


# ---- inference with another batch size ------------------------------------------------------
@st.cache_data(max_entries=8, show_spinner=False)
def _inference_cached(cfg_json: str, run: str, _weights) -> dict:
    """The inference measurement of one run, shared by every session (a few seconds)."""
    from models import inference
    from models.config import RunConfig
    return inference.for_run(RunConfig.from_json(cfg_json), _weights)


def _inference(res: dict) -> dict:
    run = res.get("run_id") or f"session-{id(res['trace'])}"
    with st.spinner("Copying the trained weights into a batch-1 model and streaming…"):
        return _inference_cached(res["cfg"].to_json(), run, res["weights"])


def inference_panel(res: dict | None) -> None:
    """The run shown, copied into a batch-1 stateful model and fed one validation sequence."""
    from models.config import ConfigError
    if res is None or res["trace"].n == 0 or not res["cfg"].stateful or res["cfg"].task == "user":
        st.caption("After a stateful run (not on your own series), its weights are copied into "
                   "a batch-1 model here and one validation sequence is streamed through it.")
        return
    if not st.toggle("Copy this run's weights into a batch-1 model and stream a sequence "
                     "(a few seconds)", key="inference_on"):
        return
    try:
        m = _inference(res)
    except ConfigError as e:
        from ui.safe import plain
        st.error(plain(e))
        return
    import viz
    st.plotly_chart(viz.stream_figure(m), width="stretch", key="inference_fig",
                    config={"displaylogo": False})
    st.markdown(text.inference_words(m))
