"""Settings: the URL on load, the sidebar widgets (built from config.FIELDS) and the URL after.

Every widget's value lives in st.session_state under "f_<field>"; the preset picker under
"preset". Loading a preset (picker, Answers tab) only writes those keys, in a callback.
"""
from __future__ import annotations

import time

import streamlit as st

from models.config import FIELD, FIELDS, RunConfig
from models.presets import PRESETS, matching
from models.store import run_key
from ui.safe import plain

CUSTOM = "(custom)"
INTERRUPTED_FOR = 6 * 3600.0  # seconds after its start that an interrupted run is still named
APP_PARAMS = ("preset", "lock", "run", "compare")


def key(name: str) -> str:
    return f"f_{name}"


def _set_widgets(cfg: RunConfig) -> None:
    for f in FIELDS:
        st.session_state[key(f.name)] = getattr(cfg, f.name)


def read_url_once() -> None:
    """First run of a session: settings from the URL, problems kept for a warning."""
    if "url_read" in st.session_state:
        return
    qp = st.query_params.to_dict()
    problems: list[str] = []
    base, preset = RunConfig(), qp.get("preset")
    if preset is not None and preset not in PRESETS:
        problems.append(f"There is no preset {preset[:40]!r}; starting from the defaults.")
        preset = None
    if preset:
        base = PRESETS[preset].config
    unknown = [k for k in qp if k not in FIELD and k not in APP_PARAMS]
    problems += [f"Unknown setting {k[:40]!r} ignored." for k in unknown]
    cfg, errs = RunConfig.from_mapping({k: v for k, v in qp.items() if k in FIELD}, base)
    problems += errs
    run_id = qp.get("run")
    if run_id is not None:  # a link to a stored run: open it with its own settings
        from ui import runs
        stored = runs.load_result(run_id)
        if stored is None:
            problems.append(f"The stored run {run_id[:40]!r} could not be opened. "
                            f"{runs.store().why_missing(run_id)} Its settings, if the link "
                            "gives them, are loaded instead.")
        else:
            cfg = stored["cfg"]
            st.session_state.setdefault("results", {})["run"] = stored
            problems += _open_compare(qp.get("compare"), stored)
    elif "compare" in qp:
        problems.append("A compare= link needs the run= it is compared with; ignored.")
    _set_widgets(cfg)
    st.session_state.preset = preset or matching(cfg) or CUSTOM  # a bare link is a preset too
    st.session_state.locked = qp.get("lock", "").lower() in ("1", "true", "yes", "on")
    st.session_state.url_problems = problems
    st.session_state.url_notices = _interrupted(cfg) if "results" not in st.session_state or \
        "run" not in st.session_state.results else []
    st.session_state.url_read = True


def _interrupted(cfg: RunConfig) -> list[str]:
    """A run of these settings that a server crash or restart cut short: say so once, on the
    page the student comes back to (the address kept their settings)."""
    if cfg.problems():
        return []
    from ui import runs
    key = run_key(cfg.to_json(), runs._versions())
    started = runs.store().interrupted(key)
    if started is None or time.time() - started > INTERRUPTED_FOR:
        return []
    ago = max(1, round((time.time() - started) / 60))
    return [f"Your run of these settings, started about {ago} min ago, was interrupted by a "
            "server restart before it finished. Press Train to run it again."]


def _open_compare(other_id: str | None, stored: dict) -> list[str]:
    """?run=<id>&compare=<id>: reopen a Compare (the same settings, stateful and stateless).
    The run= run stays the one whose settings the sidebar shows. Problems as sentences."""
    if other_id is None:
        return []
    from ui import runs
    other = runs.load_result(other_id)
    if other is None:
        return [f"The stored run {other_id[:40]!r} to compare with is not on this server (or "
                "could not be read); only the run= run is opened."]
    if other["cfg"] != stored["cfg"].replace(stateful=not stored["cfg"].stateful):
        return ["The compare= run is not the same settings with stateful flipped, so it is not "
                "a Compare; only the run= run is opened."]
    results = st.session_state["results"]
    results.pop("run")
    for r in (stored, other):
        results["stateful" if r["cfg"].stateful else "stateless"] = r
    st.session_state.mode = "compare"
    st.session_state.show_run = "stateful" if stored["cfg"].stateful else "stateless"
    return []


def load_preset(name: str | None = None) -> None:
    """Callback: put a preset's settings into the widgets."""
    name = name or st.session_state.get("preset")
    if name in PRESETS:
        st.session_state.preset = name
        _set_widgets(PRESETS[name].config)


def current_config() -> RunConfig:
    """The config the widgets show (may have problems(); never raises)."""
    return RunConfig(**{f.name: st.session_state.get(key(f.name), f.default) for f in FIELDS})


def _widget(f, disabled: bool) -> None:
    """Each widget is also given the setting as its own value, not only through its key: a
    widget's proto carries a `default`, and a browser that mounts it without applying the
    session's value (seen in CI: a share link reopened with every setting at its minimum, and
    Train clicks under load that sent every setting at its minimum) shows and sends that
    default. Made the setting itself, that fallback is harmless. With a key, Streamlit names
    the widget by its key alone, so a changing value does not make it a new widget."""
    k, label, help_ = key(f.name), f.label, f.help
    now = st.session_state.get(k, f.default)
    if f.type is bool:
        st.toggle(label, value=bool(now), key=k, help=help_, disabled=disabled)
    elif f.type is str:
        index = f.choices.index(now) if now in f.choices else 0
        st.selectbox(label, f.choices, index=index, key=k, help=help_, disabled=disabled)
    elif f.type is int:
        st.number_input(label, min_value=int(f.lo), max_value=int(f.hi), step=1, key=k,
                        value=min(max(int(now), int(f.lo)), int(f.hi)),
                        help=help_, disabled=disabled)
    else:
        st.number_input(label, min_value=float(f.lo), max_value=float(f.hi), step=0.001,
                        value=min(max(float(now), float(f.lo)), float(f.hi)),
                        format="%.5f", key=k, help=help_, disabled=disabled)


def sidebar() -> tuple[RunConfig, dict]:
    """Draw the controls; return the config and which buttons were pressed."""
    locked = st.session_state.get("locked", False)
    sb = st.sidebar
    with sb:
        st.header("Settings")
        if locked:
            st.info("This link locks the settings to the preset (classroom mode). "
                    "Remove `lock=1` from the address to change them.")
        names = [CUSTOM, *PRESETS]
        shown = st.session_state.get("preset")
        st.selectbox("Preset", names, key="preset", on_change=load_preset,
                     index=names.index(shown) if shown in names else 0,  # as _widget says
                     format_func=lambda n: n if n == CUSTOM else f"{PRESETS[n].title}",
                     help="Named experiments, each answering one of the questions.",
                     disabled=locked)
        name = st.session_state.get("preset")
        cfg = current_config()
        if name in PRESETS and cfg == PRESETS[name].config:
            st.caption(PRESETS[name].explanation)
            st.caption(f"**Expected:** {PRESETS[name].expected}")
        elif name in PRESETS:  # its words describe its own settings, not these
            changed = [f.label for f in FIELDS
                       if getattr(cfg, f.name) != getattr(PRESETS[name].config, f.name)]
            st.caption(f"Changed from the preset *{PRESETS[name].title}*: {', '.join(changed)}; "
                       "its explanation and expected outcome no longer apply.")
        # The upload first: whether Train can run is known, and said, before it is pressed.
        series = upload_series(cfg) if cfg.task == "user" else None
        st.session_state.upload_series = series
        from ui import runs
        why = runs.check(cfg, series)  # cheap: no TensorFlow, nothing arranged
        st.session_state.train_blocked = why
        bad = why is not None
        if not bad and series is None:
            runs.warm_ahead(cfg)
        c1, c2 = st.columns(2)
        pressed = {
            "train": c1.button("Train", type="primary", disabled=bad, key="btn_train",
                               width="stretch",
                               help="Train with these settings in the background."),
            "stop": c2.button("Stop", key="btn_stop", width="stretch",
                              help="Stop your runs; keep what was recorded."),
            "compare": st.button("Compare stateful vs stateless", disabled=bad,
                                 key="btn_compare", width="stretch",
                                 help="Train these settings twice, stateful and stateless, "
                                      "from the same initial weights."),
        }
        for f in FIELDS:
            _widget(f, locked)
        st.toggle("Reduced motion", key="reduced_motion",
                  help="No animation controls in the flow view; pan it by dragging instead.")
    cfg = current_config()
    return cfg, pressed


def write_url(cfg: RunConfig) -> None:
    """Keep the address bar equal to the settings (preset= only while they match it)."""
    if st.session_state.get("locked"):
        return  # a classroom link stays as the teacher wrote it
    if cfg.problems():
        return  # the URL keeps the last settings that could run
    want = cfg.to_query()
    name = st.session_state.get("preset")
    if name in PRESETS and PRESETS[name].config == cfg:
        want = {"preset": name, **want}
    results = st.session_state.get("results", {})
    shown = results.get("run")
    if shown is not None and shown.get("run_id") and shown["cfg"] == cfg:
        want["run"] = shown["run_id"]  # the link opens this very run, even after a restart
    pair = [results.get(k) for k in ("stateful", "stateless")]
    if all(r is not None and r.get("run_id") for r in pair) and cfg in [r["cfg"] for r in pair]:
        this, other = pair if pair[0]["cfg"] == cfg else pair[::-1]
        want["run"], want["compare"] = this["run_id"], other["run_id"]  # reopens the Compare
    if st.query_params.to_dict() != want:
        st.query_params.from_dict(want)


def upload_series(cfg: RunConfig):
    """The sidebar upload for the "user" task: the chosen column's values, or None.

    Every problem is one message saying what to fix; a bad file never clears a result.
    """
    from models.upload import UploadError, check_length, parse_series
    sb = st.sidebar
    up = sb.file_uploader("Your series (CSV, one numeric column)", type=["csv", "txt"],
                          key="upload", disabled=st.session_state.get("locked", False))
    if up is None:
        sb.info("Upload a CSV of one numeric column to train on your own series.")
        return None
    try:
        parsed = parse_series(up.getvalue(), st.session_state.get("upload_column"))
    except UploadError as e:
        sb.error(plain(e))  # may quote the file's own cells
        return None
    if len(parsed.columns) > 1:
        sb.selectbox("Column", parsed.columns, key="upload_column",
                     index=parsed.columns.index(parsed.column))
    try:
        check_length(len(parsed.values), cfg.seq_len + 1)  # inputs plus the next value
    except UploadError as e:
        sb.error(plain(e))
        return None
    sb.caption(plain(f"Column {parsed.column!r}: {len(parsed.values):,} values. " + " ".join(parsed.notes)))
    return parsed.values
