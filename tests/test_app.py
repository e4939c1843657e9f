"""The Streamlit page, driven by AppTest: real widgets, real jobs, real Keras (no mocks)."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from models.config import FIELDS, RunConfig
from models.presets import PRESETS
from ui import flow, views
from ui.settings import CUSTOM

APP = str(Path(__file__).resolve().parent.parent / "app.py")
SMALL = {"preset": "seed004-streams-stateful", "epochs": "2"}


def app(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def show(at: AppTest, view: str) -> AppTest:
    """Open a tab: tabs are lazy, only the open one is computed (like a click on it)."""
    at.session_state["view"] = view
    at.run()
    assert not at.exception, at.exception
    return at


def _widgets(at):
    return [*at.sidebar.toggle, *at.sidebar.selectbox, *at.sidebar.number_input]


def config(at: AppTest) -> RunConfig:
    return RunConfig(**{f.name: at.session_state[f"f_{f.name}"] for f in FIELDS})


def texts(at: AppTest, kind: str) -> list[str]:
    """What a reader sees: a visitor's words are backslash-escaped in the Markdown source
    (ui/safe.py), shown without the backslashes."""
    return [re.sub(r"\\(.)", r"\1", e.value) for e in getattr(at, kind)]


def flow_columns(at: AppTest) -> list[str]:
    """The column labels (epoch·batch) of the State-flow figure on the page."""
    [chart] = [c for c in at.get("plotly_chart") if "flow_fig" in c.proto.id]
    return json.loads(chart.proto.spec)["layout"]["xaxis"]["ticktext"]


def wait_until_idle(at: AppTest, limit: float = 90.0) -> float:
    """Rerun like the live fragment does until this session has no active job."""
    t0 = time.time()
    while time.time() - t0 < limit:
        time.sleep(0.4)
        at.run()
        assert not at.exception, at.exception
        if not at.session_state["runs"]:
            return time.time() - t0
    raise AssertionError(f"job still active after {limit} s")


def _other_value(f, v):
    if f.type is bool:
        return not v
    if f.type is str:
        return next(c for c in f.choices if c != v)
    if f.type is int:
        return v + 1 if v + 1 <= f.hi else v - 1
    return v / 2


@pytest.mark.parametrize("f", FIELDS, ids=[f.name for f in FIELDS])
def test_every_setting_has_a_control_that_changes_the_config(f):
    at = app()
    w = next(w for w in _widgets(at) if w.key == f"f_{f.name}")
    assert w.label == f.label and not w.disabled
    new = _other_value(f, getattr(RunConfig(), f.name))
    w.set_value(new).run()
    assert not at.exception
    assert getattr(config(at), f.name) == new
    cfg = config(at)
    if not cfg.problems():  # the URL follows every runnable change
        assert dict(at.query_params) == cfg.to_query()


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_loads_its_settings(name):
    at = app()
    at.sidebar.selectbox(key="preset").set_value(name).run()
    assert config(at) == PRESETS[name].config
    assert at.query_params["preset"] == name
    assert PRESETS[name].expected in " ".join(texts(at.sidebar, "caption"))


def test_query_params_round_trip():
    at = app(preset="chunks-stateful", seed="7", units="12")
    cfg = config(at)
    assert cfg == PRESETS["chunks-stateful"].config.replace(seed=7, units=12)
    url = dict(at.query_params)
    assert url["seed"] == "7" and url["units"] == "12" and "preset" not in url
    again = app(**url)
    assert config(again) == cfg and not texts(again, "warning")


def test_bad_params_are_reported_and_replaced_by_defaults():
    at = app(units="9999", task="bogus", epochs="two", colour="red", preset="nope")
    warning = " ".join(texts(at, "warning"))
    for word in ("Units", "Task", "Epochs", "colour", "nope"):
        assert word in warning
    assert config(at) == RunConfig()


def test_impossible_combination_is_explained_not_run():
    at = app()
    at.sidebar.selectbox(key="f_layout").set_value("chunks").run()
    at.sidebar.number_input(key="f_length").set_value(7).run()
    assert any("do not tile" in e for e in texts(at, "error"))
    assert at.sidebar.button(key="btn_train").disabled
    assert not at.exception


def test_notes_explain_settings_that_do_nothing():
    at = app(stateful="false")
    assert any("reset policy changes nothing" in i for i in texts(at, "info"))


def test_lock_disables_the_settings():
    at = app(preset="chunks-stateful", lock="1")
    assert all(w.disabled for w in _widgets(at) if w.key and w.key.startswith("f_"))
    assert at.sidebar.selectbox(key="preset").disabled
    assert config(at) == PRESETS["chunks-stateful"].config
    assert not at.sidebar.button(key="btn_train").disabled


def test_data_layout_and_keras_code_before_training():
    at = app(preset="partial-batch-trap")
    assert at.session_state["view"] == "Data layout"  # before any run, the layout tab is open
    assert any("Trimmed 1 of 1000 " in c for c in texts(at, "caption"))
    show(at, "Keras code")
    assert not any("Trimmed 1 of 1000 " in c for c in texts(at, "caption"))  # lazy
    code = at.code[0].value if len(at.code) == 1 else "\n".join(c.value for c in at.code)
    assert "keras.Input(batch_shape=(BATCH_SIZE, SAMPLE_LEN, N_FEATURES))" in code
    assert "BATCH_SIZE, UNITS, EPOCHS, LR = 111" in code


def test_data_layout_counts_every_batch_of_the_epoch_though_it_draws_forty():
    from models.layouts import arrange
    from models.tasks import make_task
    cfg = PRESETS["seed004-windows-stateless"].config
    d = make_task(cfg)
    n = arrange(d.x_train, d.y_train, cfg).n_batches  # the engine's own count
    assert n > 40
    at = app(preset="seed004-windows-stateless")
    assert any(f"{n:,} batches of {cfg.batch_size} per epoch" in c for c in texts(at, "caption"))


def test_an_oversized_link_is_refused_with_the_setting_to_lower():
    at = app(layout="windows", length="100", units="64", sequences="5000", seq_len="200",
             batch_size="1000")
    warning = " ".join(texts(at, "warning"))
    assert "MB" in warning and "lower" in warning.lower(), warning
    assert config(at) == RunConfig()  # the defaults instead: nothing of that size is built


def test_a_run_over_the_time_budget_is_stopped_and_says_so():
    from ui import runs
    m = runs.manager()
    long = {"preset": "long-memory-stateful", "epochs": "100", "seed": "5"}  # ~10 s of training
    warm = app(**{**long, "epochs": "1"})  # compiles its shape first (a compile is not training)
    warm.sidebar.button(key="btn_train").click().run()
    wait_until_idle(warm)
    m._max_seconds = 2.0  # this server's budget, lowered for the test (the real watcher stops it)
    try:
        at = app(**long)
        at.sidebar.button(key="btn_train").click().run()
        wait_until_idle(at)
    finally:
        m._max_seconds = None
    res = at.session_state["results"]["run"]
    assert res["cancelled"] and res["trace"].n > 0  # stopped, what it recorded kept
    assert any("time budget" in w for w in texts(at, "warning"))
    assert res["batches_trained"] < 100 * 200


def test_train_runs_a_real_job_and_the_carry_check_is_exact():
    at = app(**SMALL)
    at.sidebar.button(key="btn_train").click().run()
    assert at.session_state["runs"] or "run" in at.session_state["results"], "Train did nothing"
    wait_until_idle(at)
    res = at.session_state["results"]["run"]
    assert not res["cancelled"] and len(res["epochs"]) == 2
    carry = [m for m in texts(at, "markdown") if "Carry check:" in m]
    assert carry and "largest |h0[k+1]−hT[k]| = 0 (exact)" in carry[0]
    assert "0 contaminated" in carry[0]
    assert at.session_state["view"] == "State flow"  # a finished run opens its flow
    # Long runs are shown a page of batches at a time; the slider moves to later ones.
    tr = res["trace"]
    label = [f"e{e}·b{b}" for e, b in zip(tr.epoch, tr.batch)]
    # It opens on the page holding the last epoch's first batch (the trained state).
    k = list(tr.epoch).index(tr.epoch[-1])
    first = k // flow.FLOW_PAGE * flow.FLOW_PAGE
    assert at.select_slider(key="flow_first").value == first
    assert flow_columns(at) == label[first:first + flow.FLOW_PAGE]
    at.select_slider(key="flow_first").set_value(0).run()
    assert flow_columns(at) == label[:flow.FLOW_PAGE]
    show(at, "Answers")
    assert any(m.startswith("*Measured:*") for m in texts(at, "markdown"))
    labels = [b.label for b in at.get("download_button")]
    assert {"Trace (.npz)", "Batch metrics (.csv)", "Flow animation (.html)"} <= set(labels)
    # changing a control after training keeps the result
    at.sidebar.number_input(key="f_units").set_value(11).run()
    assert "run" in at.session_state["results"] and not at.exception


def test_stop_cancels_and_keeps_the_partial_record():
    at = app(preset="seed004-streams-stateful", epochs="300", seed="11")
    at.sidebar.button(key="btn_train").click().run()
    t0 = time.time()
    while time.time() - t0 < 60:  # wait until batches are being trained
        time.sleep(0.3)
        at.run()
        info = next(iter(at.session_state["runs"].values()))
        from ui.runs import manager
        st_ = manager().status(info["job"])
        if st_.info.get("done", 0) > 0:
            break
    at.sidebar.button(key="btn_stop").click().run()
    took = wait_until_idle(at, limit=10)
    assert took < 3
    res = at.session_state["results"]["run"]
    assert res["cancelled"] and res["trace"].n > 0 and len(res["epochs"]) < 300
    assert any("stopped early" in m for m in texts(at, "markdown"))


def test_compare_trains_stateful_and_stateless():
    at = app(**SMALL, seed="5")  # a seed no other test trained: nothing comes from the store
    at.sidebar.button(key="btn_compare").click().run()
    started = set(at.session_state["runs"]) | set(at.session_state["results"])
    assert started == {"stateful", "stateless"}  # (a fast job may already have finished)
    wait_until_idle(at)
    results = at.session_state["results"]
    assert set(results) == {"stateful", "stateless"}
    assert results["stateful"]["cfg"].stateful and not results["stateless"]["cfg"].stateful
    assert results["stateful"]["cfg"].seed == results["stateless"]["cfg"].seed
    show(at, "Curves")
    assert any(m.startswith("**Compare:**") for m in texts(at, "markdown"))
    show(at, "State flow")
    # stateless: every sample starts from zeros, nothing is carried
    at.radio(key="show_run").set_value("stateless").run()
    carry = next(m for m in texts(at, "markdown") if "Carry check:" in m)
    assert "0 carried transitions" in carry


def test_a_finished_run_is_answered_from_the_store_and_opens_by_link():
    at = app(preset="chunks-stateful", epochs="2")
    at.sidebar.button(key="btn_train").click().run()
    wait_until_idle(at)
    run_id = at.session_state["results"]["run"]["run_id"]
    assert run_id and at.query_params["run"] == run_id
    # another session, same settings: answered from the store, no training job, and the
    # link names the run in that same click's page
    again = app(preset="chunks-stateful", epochs="2")
    again.sidebar.button(key="btn_train").click().run()
    assert again.session_state["runs"] == {} and again.query_params["run"] == run_id
    res = again.session_state["results"]["run"]
    assert res["stored"] and res["trace"].carry_check()["max_carry_error"] == 0.0
    # a link to the run opens it, settings included
    linked = app(run=run_id)
    assert linked.session_state["results"]["run"]["run_id"] == run_id
    assert config(linked) == PRESETS["chunks-stateful"].config.replace(epochs=2)
    assert any("Carry check:" in m for m in texts(linked, "markdown"))
    missing = app(run="0123456789abcdef")
    assert any("not on this server" in w for w in texts(missing, "warning"))


def _csv(values, header="value") -> bytes:
    return (header + "\n" + "\n".join(f"{v:.4f}" for v in values)).encode()


def test_own_series_trains_and_bad_files_get_messages_without_losing_the_result():
    import numpy as np
    at = app(task="user", seq_len="10", layout="chunks", length="5", batch_size="4", epochs="2",
             sequences="100")
    assert any("Upload a CSV" in i for i in texts(at.sidebar, "info"))
    good = np.sin(np.arange(200) / 5.0)
    at.sidebar.file_uploader(key="upload").set_value(("series.csv", _csv(good), "text/csv")).run()
    assert any("200 values" in c for c in texts(at.sidebar, "caption"))
    at.sidebar.button(key="btn_train").click().run()
    wait_until_idle(at)
    res = at.session_state["results"]["run"]
    assert res["cfg"].task == "user" and res["run_id"] is None  # private: never stored
    assert res["trace"].carry_check()["max_carry_error"] == 0.0

    bad = {
        "empty": (b"", "empty"),
        "binary": (bytes(range(256)) * 4, "binary"),
        "text": (b"name\nalice\nbob\n", "No column of numbers"),
        "nan": (_csv([1.0, 2.0, float("nan"), 4.0] * 10), "line"),
        "short": (_csv(good[:15]), "need at least 22 values"),
    }
    for name, (data, words) in bad.items():
        at.sidebar.file_uploader(key="upload").set_value((f"{name}.csv", data, "text/csv")).run()
        assert not at.exception, name
        errors = " ".join(texts(at.sidebar, "error"))
        assert words.lower() in errors.lower(), (name, errors)
        assert at.session_state["results"]["run"] is res  # the earlier result is kept

    two = b"a;b\n" + b"\n".join(f"{i};{v:.3f}".replace(".", ",").encode() for i, v in enumerate(good))
    at.sidebar.file_uploader(key="upload").set_value(("two.csv", two, "text/csv")).run()
    assert at.sidebar.selectbox(key="upload_column").options == ["a", "b"]
    at.sidebar.selectbox(key="upload_column").set_value("b").run()
    assert any("Column 'b'" in c for c in texts(at.sidebar, "caption"))


def test_train_click_waits_only_for_runs_that_can_finish_in_time():
    """The Train click's script run waits for a run that will end within QUICK_RUN (its
    result is drawn in that same run), never for one queued, compiling or predicted longer
    (the live panel then shows its first states at once)."""
    from models.jobs import JobStatus
    from ui.runs import COMPILING, _may_finish_within

    def status(state="running", **info):
        return JobStatus(id="j", state=state, info=info)
    assert _may_finish_within(status(phase="building the model"), 0.5)
    assert _may_finish_within(status(phase="training", left=0.2), 0.5)
    assert not _may_finish_within(status(phase="training", left=2.0), 0.5)
    assert not _may_finish_within(status(phase=COMPILING), 0.5)
    assert not _may_finish_within(status(state="queued"), 0.5)
    assert not _may_finish_within(JobStatus(id="j", state="queued", eta_seconds=5.0), 0.5)
    # On Redis + RQ every run is queued until a free worker takes it (ms): wait for it.
    assert _may_finish_within(JobStatus(id="j", state="queued", eta_seconds=0.0), 0.5)


def test_train_click_waits_for_the_first_states_of_a_run_still_getting_its_net(monkeypatch):
    """A run that takes longer than QUICK_RUN to get its net (a loaded machine) and cannot
    finish in time: the Train click's own script run waits on for its first states (up to
    FIRST_STATES_WAIT), so that run draws them, not the live panel's next tick. It never
    waits for a compile (seconds)."""
    import functools
    import streamlit as st
    from models import jobs
    from ui import runs

    def job(first_phase, ctx):
        ctx.progress(0.0, {"phase": first_phase})
        time.sleep(runs.QUICK_RUN + 0.4)
        ctx.publish("recent", "the first states")
        ctx.progress(0.01, {"phase": "training", "left": 60.0})
        ctx.cancelled.wait(30)

    m = jobs.JobManager(max_workers=2)
    monkeypatch.setattr(runs, "manager", lambda: m)
    assert runs.QUICK_RUN + 0.4 < runs.FIRST_STATES_WAIT
    try:
        for phase, waits in ((runs.BUILDING, True), (runs.COMPILING, False)):
            jid = m.submit(functools.partial(job, phase), owner="t")
            st.session_state["runs"] = {"run": {"job": jid}}
            runs.wait_briefly()
            assert (m.live(jid, "recent") is not None) == waits, phase
            m.cancel(jid)
    finally:
        st.session_state.pop("runs", None)
        m.shutdown(timeout=5)


def _live_flow_ticks(at: AppTest) -> list[str]:
    charts = [c for c in at.get("plotly_chart") if "live_flow_run" in c.proto.id]
    if not charts:
        return []
    return json.loads(charts[0].proto.spec)["layout"]["xaxis"].get("ticktext") or []


def test_live_flow_follows_training_past_what_the_record_keeps():
    """A long run's record keeps few epochs; the live flow still shows the newest batches
    trained, in the epoch the progress bar names (it used to stay on epoch 1)."""
    from ui.runs import manager
    at = app(preset="seed004-streams-stateful", epochs="300", seed="12")
    at.sidebar.button(key="btn_train").click().run()
    t0, seen = time.time(), None
    while time.time() - t0 < 60 and seen is None:
        time.sleep(0.3)
        job = at.session_state["runs"]["run"]["job"]
        before = manager().status(job).info.get("epoch", 0)
        at.run()
        assert not at.exception, at.exception
        if not at.session_state["runs"]:
            break  # finished (300 short epochs) without a live flow: fails below
        ticks = _live_flow_ticks(at)
        after = manager().status(job).info.get("epoch", 0)
        batch_fig = [c for c in at.get("plotly_chart") if "live_batch_run" in c.proto.id]
        if ticks and batch_fig:  # batches were trained: not "waiting for the first batch"
            assert "Waiting for the first batch" not in batch_fig[0].proto.spec
        if before >= 3 and ticks:
            seen = (before, after, ticks)
    at.sidebar.button(key="btn_stop").click().run()
    wait_until_idle(at, limit=10)
    assert seen, "no live flow from epoch 3 on while training"
    before, after, ticks = seen
    epochs = {int(t.split("·")[0][1:]) for t in ticks}
    # the newest batches: from the epoch in progress (or the one just before, at its start)
    assert max(epochs) >= before - 1 and max(epochs) <= after, (before, after, ticks)


def test_settings_changed_after_a_run_say_which_run_is_shown():
    at = app(preset="chunks-stateful", epochs="2", seed="21")
    at.sidebar.button(key="btn_train").click().run()
    wait_until_idle(at)
    run_id = at.session_state["results"]["run"]["run_id"]
    assert run_id and not any("differ from the run shown" in w for w in texts(at, "warning"))
    show(at, "Data layout")
    assert any("those of the run shown" in c for c in texts(at, "caption"))
    at.sidebar.number_input(key="f_units").set_value(11).run()
    at.sidebar.button(key="btn_stop").click().run()
    [warn] = [w for w in texts(at, "warning") if "differ from the run shown" in w]
    assert "Units: 10 → 11" in warn and f"?run={run_id})" in warn
    assert "run" not in at.query_params  # the share link follows the sidebar, and says so
    for view in ("Data layout", "Keras code"):
        show(at, view)
        assert any("not those of the run shown" in c and "Units: 10 → 11" in c
                   for c in texts(at, "caption")), view
    reopened = app(run=run_id)  # the notice's link reopens the run shown, its settings too
    assert config(reopened) == at.session_state["results"]["run"]["cfg"]
    assert not any("differ from the run shown" in w for w in texts(reopened, "warning"))
    at.sidebar.number_input(key="f_units").set_value(10).run()  # back: nothing to say
    assert not any("differ from the run shown" in w for w in texts(at, "warning"))
    assert at.query_params["run"] == run_id


def test_compare_has_one_link_that_reopens_both_runs():
    at = app(**SMALL, seed="22")
    at.sidebar.button(key="btn_compare").click().run()
    wait_until_idle(at)
    results = at.session_state["results"]
    ids = {k: results[k]["run_id"] for k in ("stateful", "stateless")}
    assert all(ids.values())
    # the sidebar is stateful: run= is that run, compare= the stateless one
    assert at.query_params["run"] == ids["stateful"]
    assert at.query_params["compare"] == ids["stateless"]
    linked = app(run=ids["stateful"], compare=ids["stateless"])
    assert {k: r["run_id"] for k, r in linked.session_state["results"].items()} == ids
    show(linked, "Curves")
    assert any(m.startswith("**Compare:**") for m in texts(linked, "markdown"))
    assert linked.query_params["compare"] == ids["stateless"]
    # not a pair (the same run twice), or missing: said, and run= alone is opened
    for other, words in ((ids["stateful"], "not the same settings with stateful flipped"),
                         ("0123456789abcdef", "to compare with is not on this server")):
        bad = app(run=ids["stateful"], compare=other)
        assert any(words in w for w in texts(bad, "warning"))
        assert set(bad.session_state["results"]) == {"run"}
    assert any("needs the run=" in w for w in texts(app(compare=ids["stateless"]), "warning"))


def test_a_link_to_an_evicted_run_says_it_was_evicted():
    from models.store import ResultStore, data_dir
    side = ResultStore(data_dir() / "results.sqlite3", max_bytes=10**9)
    gone = "00000000000000e1"
    with side._lock:  # record an eviction as the store does when it makes room
        with side._conn:
            side._gone(side._conn, [gone], "evicted")
    at = app(run=gone)
    assert any("evicted" in w and "LSTM_STORE_MAX_MB" in w for w in texts(at, "warning"))
    assert at.query_params.get("run") != gone  # no dead link kept in the address


def test_a_run_cut_short_by_a_server_restart_is_named_when_its_student_returns():
    import subprocess
    import sys

    from models.store import data_dir, run_key
    from ui import runs
    cfg = PRESETS["chunks-stateful"].config.replace(seed=77)
    key = run_key(cfg.to_json(), runs._versions())
    crash = ("import os, sys\nfrom models.store import ResultStore\n"
             "ResultStore(sys.argv[1]).started(sys.argv[2], '{}')\nos._exit(0)\n")
    subprocess.run([sys.executable, "-c", crash, str(data_dir() / "results.sqlite3"), key],
                   check=True, cwd=Path(APP).parent)
    at = app(preset="chunks-stateful", seed="77")  # the address kept the student's settings
    assert any("interrupted by a server restart" in i for i in texts(at, "info"))
    other = app(preset="chunks-stateful", seed="78")
    assert not any("interrupted" in i for i in texts(other, "info"))


def test_a_run_too_big_to_store_gets_no_link_and_says_why():
    from ui import runs
    s, m = runs.store(), runs.manager()
    keep, s.max_bytes = s.max_bytes, 1000  # this server's store, made too small for one run
    # ...in this process: the job stores from here for this test (the trainer process's store
    # notes reaching the page: tests/test_trainer.py)
    trainer, m.trainer = m.trainer, None
    try:
        at = app(preset="seed004-streams-stateful", epochs="1", seed="91")
        at.sidebar.button(key="btn_train").click().run()
        wait_until_idle(at)
    finally:
        s.max_bytes, m.trainer = keep, trainer
    res = at.session_state["results"]["run"]
    assert res["run_id"] is None and "run" not in at.query_params
    assert any("could not be stored" in c for c in texts(at, "caption"))
    assert any("exceed" in c for c in [c.value for c in at.sidebar.caption])  # server notes


def test_train_is_disabled_and_says_why_before_it_is_pressed():
    at = app(layout="chunks", length="5", sequences="12", batch_size="50")  # 10 training sequences
    assert at.sidebar.button(key="btn_train").disabled
    assert any("larger than the 10 sequences" in e for e in texts(at, "error"))
    import numpy as np
    up = app(task="user", seq_len="10", layout="chunks", length="5", batch_size="40")
    up.sidebar.file_uploader(key="upload").set_value(
        ("s.csv", _csv(np.sin(np.arange(200) / 5.0)), "text/csv")).run()  # 19 sequences: 16 train
    assert up.sidebar.button(key="btn_train").disabled
    assert any("larger than the 16 sequences" in e for e in texts(up, "error"))


def test_the_sidebar_drops_a_preset_text_once_its_settings_change():
    at = app(preset="chunks-stateful")
    explanation = PRESETS["chunks-stateful"].explanation
    assert explanation in texts(at.sidebar, "caption")
    at.sidebar.number_input(key="f_units").set_value(12).run()
    captions = texts(at.sidebar, "caption")
    assert explanation not in captions
    assert any("no longer apply" in c and "Units" in c for c in captions)


def test_state_colours_on_epoch_one_point_to_the_trained_epochs():
    at = app(preset="chunks-stateful", seed="31")
    at.sidebar.button(key="btn_train").click().run()
    wait_until_idle(at)
    show(at, "State flow")
    hint = "This page is from epoch 1, the start"
    assert not any(hint in c for c in texts(at, "caption"))  # coloured by sequence: no hint
    at.radio(key="flow_colour").set_value("readout").run()
    # it opens on the last epoch (the trained state) and says so
    assert any("This page is from epoch 10, the last recorded" in c for c in texts(at, "caption"))
    at.select_slider(key="flow_first").set_value(0).run()
    assert any(hint in c and "epoch 10" in c for c in texts(at, "caption"))


def _defaults_are_the_settings(at: AppTest) -> None:
    """Each sidebar widget's own default (what a browser that has not applied the session's
    value shows and sends) is the setting it stands for."""
    cfg = config(at)
    for f in FIELDS:
        w = next(w for w in _widgets(at) if w.key == f"f_{f.name}")
        want = getattr(cfg, f.name)
        got = f.choices[w.proto.default] if f.type is str else f.type(w.proto.default)
        assert got == want, (f.name, got, want)
    picker = at.sidebar.selectbox(key="preset")
    assert picker.proto.default == [CUSTOM, *PRESETS].index(picker.value)


def test_a_widget_the_browser_mounts_without_its_value_still_shows_the_setting():
    """Session 20's CI: a share link reopened in a fresh browser showed every setting at its
    widget's minimum (batch 1, epochs 1, stateless, ...), and under load Train clicks once sent
    those minimums: the browser had fallen back to each widget's own default. Those defaults
    are now the settings themselves, from a link, a user's change and a preset alike."""
    at = app(preset="chunks-stateful", seed="7")
    _defaults_are_the_settings(at)
    at.sidebar.number_input(key="f_units").set_value(12).run()
    assert config(at).units == 12
    _defaults_are_the_settings(at)
    at.sidebar.selectbox(key="preset").set_value(SMALL["preset"]).run()
    assert config(at) == PRESETS[SMALL["preset"]].config
    _defaults_are_the_settings(at)
