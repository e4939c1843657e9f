"""The live panel (progress, queue, live curves) and the tabs that show a finished run."""
from __future__ import annotations

import hashlib
from urllib.parse import urlencode

import streamlit as st

import viz
from models import jobs, layouts
from models.config import FIELDS, ConfigError, RunConfig
from models.tasks import make_task
from ui import queue_line, runs, text
from ui.safe import plain
from viz.flow import empty_figure

SLOT_NAMES = {"run": "Run", "stateful": "Stateful", "stateless": "Stateless"}
LIVE_SLOTS = 16  # slots shown in the live state-flow figure


def _chart(fig, key: str | None = None) -> None:
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


def layer_control(trace, key: str = "flow_layer",
                  shows: str = "The flow shows the chosen layer's h0 and hT") -> int:
    """Which stacked layer a view draws (offered only when there is more than one; the top
    layer, the one Dense reads, until the user picks another)."""
    if trace.layers < 2:
        return 1
    options = list(range(1, trace.layers + 1))
    if st.session_state.get(key) not in options:
        st.session_state[key] = trace.layers
    return int(st.radio("Layer shown", options, key=key, horizontal=True,
                        format_func=lambda k: f"layer {k}" + (" (input)" if k == 1 else
                                                              " (top, read by Dense)"
                                                              if k == trace.layers else ""),
                        help="Each stacked layer keeps its own state per slot. "
                             f"{shows}; the carry check covers all layers."))


def direction_control(trace, key: str = "flow_direction",
                      shows: str = "The flow shows the chosen one's h0 and hT",
                      layer: int = 1, summary: bool = True) -> str:
    """Which direction of a Bidirectional layer a view draws (offered only for one; "forward"
    for any other run). The flow, the gradient view and the Hidden state tab share it.
    `trace` is the whole run's (its carry check covers every layer), `layer` the one shown.
    summary=False: no carry-check caption (the live panel, rerun every half second)."""
    if not trace.bidirectional:
        return "forward"
    if summary:
        st.caption(viz.direction_summary(trace, layer if trace.layers > 1 else None))
    return st.radio("Direction shown", ["forward", "backward"], key=key, horizontal=True,
                    format_func=lambda d: {"forward": "forward (first step → last)",
                                           "backward": "backward (last step → first)"}[d],
                    help="keras.layers.Bidirectional holds a forward_layer and a backward_layer, "
                         f"each with its own state per slot. {shows}; the carry check covers "
                         "both.")


# ---- the live panel (rerun alone every 0.5 s while a job is active) -----------------------

def live_panel() -> None:
    if runs.collect():
        st.rerun()  # a run just finished: redraw the whole page with its result
    sts = runs.statuses()
    if st.session_state.get("live_every") != runs.LIVE_POLL and not runs.all_queued(sts):
        st.rerun()  # a queued job started: poll at the live rate from now on
    for slot, s in sts.items():
        if s is None:
            continue
        name = SLOT_NAMES.get(slot, slot)
        info = s.info or {}
        if s.state == jobs.QUEUED:
            queue_line.show(name, st.session_state.runs[slot]["job"], s)
            continue
        if s.cancel_requested:
            why = f" {s.stopped_reason}" if s.stopped_reason else ""
            st.warning(f"**{name}:** stopping… the batches recorded so far will be kept.{plain(why)}")
        if info.get("phase") != "training":
            st.progress(0.0, text=f"**{name}:** {info.get('phase', 'starting')}…")
        else:
            st.progress(min(1.0, s.progress),
                        text=f"**{name}:** epoch {info['epoch']}/{info['epochs']} · "
                             f"{info['done']:,}/{info['total']:,} batches · "
                             f"about {text.fmt_seconds(info.get('left'))} left")
    active = [slot for slot, s in sts.items() if s is not None and s.state == jobs.RUNNING
              and (s.info or {}).get("phase") == "training"]
    if not active:
        return
    slot = active[0]
    trace = runs.live(slot, "trace")
    recent = runs.live(slot, "recent")
    epochs = runs.live(slot, "epochs") or []
    if trace is None or recent is None:
        return
    done = int((sts[slot].info or {}).get("done", trace.n))
    layer = layer_control(recent, key="live_layer", shows="The live flow shows the chosen "
                          "layer's h0 and hT")
    direction = direction_control(recent, key="live_direction", layer=layer, summary=False,
                                  shows="The live flow shows the chosen one's h0 and hT")
    # The flow is sent before the curves are built: a run's first frame is its states.
    _chart(_live_flow(slot, recent, layer, direction), key=f"live_flow_{slot}")
    if recent.bidirectional:  # the direction drawn: a backward carry is no continuation
        st.caption(f"Newest {recent.n} batches, layer {layer} {direction}: "
                   + viz.carry_summary(recent.layer_view(layer).direction_view(direction)))
    else:
        st.caption(f"Newest {recent.n} batches: " + viz.carry_summary(recent))
    (k_batch, batch), (k_epoch, epoch) = _live_curves(slot, trace, epochs, done)
    c1, c2 = st.columns(2)
    with c1:
        _chart(batch, key=k_batch)
    with c2:
        _chart(epoch, key=k_epoch)


def live_flow_title(recent, total_epochs: int, max_slots: int, layer: int = 1,
                    direction: str = "forward") -> str:
    """What the live flow shows: the newest trained batches, whatever the record keeps (and,
    for stacked or Bidirectional layers, which layer's and direction's states)."""
    a, b = int(recent.index[0]), int(recent.index[-1])
    cfg = recent.config_dict()
    mode = (f"stateful, reset: {cfg.get('reset', '?')}" if recent.stateful()
            else "stateless: every sample starts from zeros")
    notes = [f"the newest {recent.n} trained batches, #{a:,}–#{b:,} "
             f"(epoch {int(recent.epoch[-1])} of {total_epochs})"]
    if recent.layers > 1:
        notes.append(f"layer {layer} of {recent.layers}")
    if recent.bidirectional:
        notes.append(f"{direction} direction")
    if recent.batch_size > max_slots:
        notes.append(f"showing slots 0–{max_slots - 1} of {recent.batch_size}")
    return f"<b>Live state flow</b> · {mode}<br><sup>{' · '.join(notes)}</sup>"


def _live_flow(slot: str, recent, layer: int = 1, direction: str = "forward"):
    """The live flow of the newest trained batches (`recent`), which a thinned record may not
    keep; rebuilt only when the job published something new (the fragment reruns every half
    second; building figures competes with training for the CPU)."""
    version = (slot, id(recent), recent.n, layer, direction)
    cached = st.session_state.get("live_flow_fig")
    if cached and cached[0] == version:
        return cached[1]
    cfg = runs_cfg(slot)
    # a stacked run: the chosen layer's states; a Bidirectional one: the chosen direction's
    shown = recent.layer_view(layer).direction_view(direction)
    flow = viz.flow_figure(shown, window=runs.LIVE_BATCHES, max_slots=LIVE_SLOTS,
                           max_batches=runs.LIVE_BATCHES)
    if recent.n:  # its own title: viz would call 24 newest batches a "thinned" record
        flow.update_layout(title_text=live_flow_title(recent, cfg.epochs if cfg else 0, LIVE_SLOTS,
                                                      layer, direction))
    st.session_state.live_flow_fig = (version, flow)
    return flow


def _live_curves(slot: str, trace, epochs: list, done: int) -> list:
    """The live batch and epoch curves (cached like the flow); the batch curves show the
    record, shaded where it skips batches already trained."""
    version = (slot, id(trace), trace.n, len(epochs))
    cached = st.session_state.get("live_figs")
    if cached and cached[0] == version:
        return cached[1]
    metric = _metric_of(runs_cfg(slot))
    figs = [(f"live_batch_{slot}", _live_batch_curves(trace, metric, done)),
            (f"live_epoch_{slot}", viz.epoch_curves(epochs, metric))]
    st.session_state.live_figs = (version, figs)
    return figs


def _live_batch_curves(trace, metric: str, done: int):
    if trace.n == 0 and done > 0:  # "waiting for the first batch" would be false here
        return empty_figure(f"{done:,} batches trained, none recorded yet: a long run's "
                            "record keeps a few whole epochs<br>(to bound memory), and "
                            "this one has not reached them. The per-epoch curves follow "
                            "training.")
    return viz.batch_curves(trace.loss, trace.accuracy, metric, x=trace.index,
                            total=max(done, trace.n))


def server_status() -> None:
    """One line for whoever hosts the class: how busy the shared server is."""
    m = runs.manager()
    c = m.counts()
    if c.get("error"):  # Redis backend unreachable
        st.sidebar.warning(c["error"])
    elif "workers" in c:  # Redis backend: the workers train
        st.sidebar.caption(f"Server: {c['running']} run(s) training, {c['queued']} waiting "
                           f"({c['workers']} worker(s), one run each at a time).")
        if not c["workers"]:
            st.sidebar.warning("No worker is connected to the job queue: runs wait until "
                               "one starts (python -m models worker).")
    else:
        st.sidebar.caption(f"Server: {c['running']} run(s) training, {c['queued']} waiting "
                           f"(trains {m.max_workers} at a time).")
    notes = runs.store().problems[-3:]  # store corruption, runs too big to keep, ...
    if notes:
        st.sidebar.caption("Server notes: " + " · ".join(plain(n) for n in notes))


def runs_cfg(slot: str) -> RunConfig | None:
    r = st.session_state.get("runs", {}).get(slot)
    return r["cfg"] if r else None


def _metric_of(cfg: RunConfig | None) -> str:
    return "mae" if cfg is not None and cfg.task in ("sine", "user") else "accuracy"


# ---- which finished run the views show ----------------------------------------------------

def shown_result() -> tuple[str | None, dict | None]:
    results = st.session_state.get("results", {})
    if not results:
        return None, None
    names = list(results)
    if len(names) > 1:
        slot = st.radio("Show run", names, horizontal=True, key="show_run",
                        format_func=lambda n: SLOT_NAMES.get(n, n))
    else:
        slot = names[0]
    return slot, results.get(slot)


def result_header(res: dict, current: RunConfig) -> None:
    cfg = res["cfg"]
    mode = "stateful" if cfg.stateful else "stateless"
    what = "stopped early, partial record" if res["cancelled"] else "finished"
    if res.get("stopped_reason"):
        st.warning(plain(res["stopped_reason"]))
    mode += "" if cfg.cell == "LSTM" else f" {cfg.cell}"
    st.markdown(f"**Last run:** {mode}, {cfg.task}, layout {cfg.layout}, batch size "
                f"{cfg.batch_size}: {what} after {len(res['epochs'])} epoch(s) "
                f"({res['batches_trained']:,} batches) in {res['seconds']:.1f} s.")
    for n in res["notes"]:
        if n in current.notes():
            continue  # already shown above for the current settings
        st.caption(plain(f"Note: {n}"))
    if res.get("not_stored"):
        st.caption(res["not_stored"])
    tr = res["trace"]
    if tr.thinned:
        st.caption(f"The record keeps {tr.n:,} of the run's {res['batches_trained']:,} batches "
                   f"({kept_text(tr, res['batches_per_epoch'])}) to bound memory; dotted bars "
                   "in the flow and grey bands in the curves mark batches trained but not recorded.")


def kept_text(trace, per_epoch: int) -> str:
    """Which batches a thinned record kept, in words: 'epochs 1 and 10', 'epoch 10',
    'epochs 1 (its first 1,000 of 3,000 batches) and 2 (its first 1,000 of 3,000 batches)'."""
    kept = sorted(set(trace.epoch.tolist()))
    if len(kept) > 6:
        return f"{len(kept)} epochs from {kept[0]} to {kept[-1]}"

    def one(e: int) -> str:
        m = int((trace.epoch == e).sum())
        return f"{e}" if m >= per_epoch else f"{e} (its first {m:,} of {per_epoch:,} batches)"
    names = [one(e) for e in kept]
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return ("epoch " if len(kept) == 1 else "epochs ") + joined


def settings_diff(a: RunConfig, b: RunConfig) -> list[str]:
    """'Label: a → b' for every setting that differs."""
    return [f"{f.label}: {getattr(a, f.name)} → {getattr(b, f.name)}" for f in FIELDS
            if getattr(a, f.name) != getattr(b, f.name)]


def shown_configs() -> list[RunConfig]:
    return [r["cfg"] for r in st.session_state.get("results", {}).values()]


def results_link(current: RunConfig | None = None) -> str | None:
    """A link that reopens the results shown (stored runs only): ?run=<id>, and for Compare
    ?run=<id>&compare=<id> (run= the one whose settings the sidebar shows). None: not stored."""
    results = st.session_state.get("results", {})
    if set(results) == {"stateful", "stateless"}:
        ids = [results[k].get("run_id") for k in ("stateful", "stateless")]
        if not all(ids):
            return None
        if current is not None and current == results["stateless"]["cfg"]:
            ids.reverse()
        return _with_base(urlencode({"run": ids[0], "compare": ids[1]}))
    res = results.get("run")
    if res is None or not res.get("run_id"):
        return None
    return _with_base(urlencode({"run": res["run_id"]}))


def mismatch_notice(res: dict, current: RunConfig) -> bool:
    """Say so when the sidebar's settings are not those of the run shown (after a change,
    e.g. with Stop): the views show that run, the Data layout, Keras code and share link
    follow the sidebar. Offers the link that reopens the run shown, if it was stored.
    True when they differ."""
    if current in shown_configs():
        return False
    diff = settings_diff(res["cfg"], current)
    if current in [r["cfg"] for r in st.session_state.get("runs", {}).values()]:
        st.info("A run with the sidebar's settings is training; until it finishes, the views "
                "below show the previous run (" + "; ".join(diff) + ").")
        return True
    link = results_link(current)
    again = (f" [Reopen the run shown]({link}) (its own settings)." if link else
             " That run was not stored (stopped early, or your own series), so no link "
             "reopens it.")
    st.warning("**The settings in the sidebar differ from the run shown** ("
               + "; ".join(diff) + "). The State flow, Hidden state, Curves and Answers show "
               "that run; the Data layout, the Keras code and the share link follow the "
               "sidebar." + again)
    return True


def follows_caption(current: RunConfig) -> None:
    """Which settings a settings-based tab (Data layout, Keras code) follows."""
    results = st.session_state.get("results", {})
    if not results:
        st.caption("Follows the settings in the sidebar.")
    elif current in shown_configs():
        st.caption("Follows the settings in the sidebar: those of the run shown.")
    else:
        shown = next(iter(results.values()))["cfg"]
        st.caption("Follows the settings in the sidebar, **not those of the run shown** ("
                   + "; ".join(settings_diff(shown, current)) + ").")


# ---- tabs -----------------------------------------------------------------------------------

def hidden_tab(res: dict | None) -> None:
    st.caption(text.CAPTIONS["hidden"])
    if res is None or res["trace"].n == 0:
        st.info("Train first: this view shows recorded states.")
        return
    trace = res["trace"]
    st.caption(text.state_caption(trace.cell))
    layer = layer_control(trace, key="hidden_layer",
                          shows="This view shows the chosen layer's h for one slot")
    direction = direction_control(trace, key="hidden_direction",
                                  shows="This view shows the chosen one's h for one slot",
                                  layer=layer)
    # that layer's states (h0_l2...), and that direction's (h0_bw, h0_bw_l2...)
    trace = trace.layer_view(layer).direction_view(direction)
    B = trace.batch_size
    slot = st.number_input("Slot", 0, B - 1, 0, step=1, key="hidden_slot",
                           help=f"Which of the {B} rows of the batch to follow.")
    which = st.radio("State", ("hT", "h0"), horizontal=True, key="hidden_which",
                     format_func=lambda w: {"hT": "after the batch (hT)",
                                            "h0": "before the batch (h0)"}[w])
    from ui.flow import is_phone  # (ui.flow imports this module)
    _chart(viz.hidden_heatmap(trace, int(slot), which, total=res.get("batches_trained"),
                              layer=layer, compact=is_phone()), key="hidden_fig")
    if direction == "backward":
        st.caption("The backward layer reads each batch last step first: h0_bw is the state "
                   "it starts from, at the batch's last step, and hT_bw its state after the "
                   "batch's first step. Where the marker row shows ◀, the state carried from "
                   "the previous chunk's start entered this chunk at its end.")


@st.cache_data(max_entries=32, show_spinner=False)
def _preview(cfg_json: str, series_digest: str | None, _series=None):
    """The first batches' (seq_id, part), from indices alone: a page view never arranges
    (or even cuts) the data set, whatever its size (models/layouts.preview_indices)."""
    from models import cost
    cfg = RunConfig.from_json(cfg_json)
    n = None
    if cfg.task == "user":
        make_task(cfg, _series)  # an upload's own problems, in its words
        n = cost.upload_sequences(cfg, len(_series))
    p = layouts.preview_indices(cfg, cost.sequence_counts(cfg, n)[0], max_batches=40)
    return p[0], p[1], p[2], p.n_batches


def layout_tab(cfg: RunConfig, series) -> None:
    st.caption(text.CAPTIONS["layout"])
    follows_caption(cfg)
    if cfg.problems():
        st.info("Fix the settings first (see the error above).")
        return
    digest = hashlib.sha256(series.tobytes()).hexdigest() if series is not None else None
    try:
        seq_id, part, notes, n = _preview(cfg.to_json(), digest, series)
    except ConfigError as e:
        st.error(plain(e))
        return
    _chart(viz.layout_figure(seq_id, part), key="layout_fig")
    st.caption(f"{n:,} batches of {cfg.batch_size} per epoch, samples of {cfg.sample_len} "
               f"timestep(s). Shuffling shown as epoch 1 will see it.")
    for n_ in notes + cfg.notes():
        st.caption(plain(f"Note: {n_}"))
    shapes_panel(cfg, series, digest)


@st.cache_data(max_entries=32, show_spinner=False)
def _shapes(cfg_json: str, series_digest: str | None, _series=None):
    """Every tensor's shape, read from the Keras model built for these settings."""
    from models import shapes
    cfg = RunConfig.from_json(cfg_json)
    rows = shapes.for_config(cfg, _series)
    return [r.to_row() for r in rows], shapes.units_sentence(rows, cfg)


def shapes_panel(cfg: RunConfig, series, digest: str | None) -> None:
    """The units question. Off by default: building the model imports Keras, which the
    page's first run never does."""
    st.markdown("**Is units the output dimension?** " + text.CAPTIONS["shapes"])
    if not st.toggle("Show every tensor's shape, read from the built Keras model",
                     key="show_shapes"):
        return
    try:
        with st.spinner("Building the model…"):
            rows, sentence = _shapes(cfg.to_json(), digest, series)
    except ConfigError as e:
        st.error(plain(e))
        return
    st.markdown(sentence)
    st.table(rows)


def curves_tab(res: dict | None) -> None:
    st.caption(text.CAPTIONS["curves"])
    results = st.session_state.get("results", {})
    if {"stateful", "stateless"} <= set(results):
        metric = results["stateful"]["metric"]
        st.markdown("**Compare:** the same settings and initial weights, stateful vs stateless.")
        _chart(viz.compare_curves({k: results[k]["epochs"] for k in ("stateful", "stateless")},
                                  metric), key="compare_fig")
    if res is None:
        st.info("Train to see the curves.")
        return
    tr = res["trace"]
    c1, c2 = st.columns(2)
    with c1:
        _chart(viz.batch_curves(tr.loss, tr.accuracy, res["metric"], x=tr.index,
                                total=res["batches_trained"]), key="batch_fig")
    with c2:
        _chart(viz.epoch_curves(res["epochs"], res["metric"]), key="epoch_fig")


def code_tab(cfg: RunConfig) -> None:
    st.caption(text.CAPTIONS["code"])
    follows_caption(cfg)
    if cfg.problems():
        st.info("Fix the settings first (see the error above).")
        return
    from models import codegen
    script = codegen.generate(cfg)
    st.download_button("Download the script (.py)", script, file_name=codegen.file_name(cfg),
                       mime="text/x-python", on_click="ignore", key="dl_code")
    st.code(script, language="python", line_numbers=True)


# ---- share and export -------------------------------------------------------------------------

def _base() -> str:
    """The page's address as the browser sees it (so behind a proxy too), without a query."""
    base = (st.context.url or "").split("?")[0]
    return base.rstrip("/") + "/" if base else ""  # ".../?a=1", as the address bar shows it


def _with_base(qs: str) -> str:
    return f"{_base()}?{qs}"


def share_link() -> str:
    """The page's address plus the settings (and run=/compare= when they are the run shown)."""
    qs = urlencode(st.query_params.to_dict())
    return _with_base(qs) if qs else (_base() or "(all defaults)")


def exports(cfg: RunConfig, res: dict | None) -> None:
    st.markdown("**Share:** this link (also in the address bar) holds every setting and the "
                "seed. Add `&lock=1` to hand out a link whose settings cannot be changed.")
    st.code(share_link(), language=None)
    if res is None:
        return
    tr = res["trace"]
    c1, c2, c3, c4 = st.columns(4)
    c1.download_button("Trace (.npz)", tr.to_bytes, file_name="trace.npz",
                       mime="application/octet-stream", on_click="ignore", key="dl_npz")
    c2.download_button("Batch metrics (.csv)", lambda: viz.metrics_csv(tr), file_name="metrics.csv",
                       mime="text/csv", on_click="ignore", key="dl_csv")
    c3.download_button("Epoch metrics (.csv)", lambda: viz.epochs_csv(res["epochs"]),
                       file_name="epochs.csv", mime="text/csv", on_click="ignore", key="dl_epochs")
    c4.download_button("Flow animation (.html)", lambda: viz.flow_html(tr), file_name="flow.html",
                       mime="text/html", on_click="ignore", key="dl_html")
