"""viz/ on hand-made traces: every number drawn is checked against the trace it came from."""
import json
import subprocess
import sys

import numpy as np
import pytest

from models.trace import Trace, empty_trace
from viz import (batch_curves, carry_summary, compare_curves, epoch_curves, epochs_csv,
                 flow_figure, flow_html, flow_table, hidden_heatmap, layout_figure, metrics_csv,
                 timestep_heatmap)
from viz.curves import ema
from viz.flow import LEGEND, SEGMENT, seq_colour_index


def make_trace(seq, stateful=True, reset=None, units=3, recorded=None, part=None, seed=0):
    """A trace obeying the carry identity: h0[k] = hT[k-1] when carried, else zeros."""
    seq = np.asarray(seq, np.int32)
    n, B = seq.shape
    rng = np.random.default_rng(seed)
    hT = np.tanh(rng.normal(size=(n, B, units))).astype(np.float32)
    cT = rng.normal(size=(n, B, units)).astype(np.float32)
    reset = np.zeros(n, bool) if reset is None else np.asarray(reset, bool)
    idx = np.arange(n) if recorded is None else np.asarray(recorded)
    h0, c0 = np.zeros_like(hT), np.zeros_like(cT)
    for k in range(1, n):
        if stateful and not reset[k] and idx[k] == idx[k - 1] + 1:
            h0[k], c0[k] = hT[k - 1], cT[k - 1]
    if part is None:
        part = np.tile(np.arange(n)[:, None], (1, B))
    return Trace(h0, c0, hT, cT, seq, np.asarray(part, np.int32),
                 epoch=np.ones(n, np.int32), batch=np.asarray(idx, np.int32), reset_before=reset,
                 loss=np.linspace(1, 0.5, n).astype(np.float32),
                 accuracy=np.linspace(0.5, 1, n).astype(np.float32),
                 config=json.dumps({"stateful": stateful, "reset": "sequence"}),
                 recorded=None if recorded is None else np.asarray(recorded, np.int32))


def trace_by_name(fig, name):
    hits = [t for t in fig.data if t.name == name]
    return hits[0] if hits else None


def carried_points(fig):
    t = trace_by_name(fig, LEGEND["continuation"])
    return sorted(zip(np.round(np.asarray(t.x) + 0.5 - SEGMENT, 6).tolist(), np.asarray(t.y).tolist()))


def contamination_points(fig):
    """(column, slot) where a ✕ is drawn (marker size > 0)."""
    t = trace_by_name(fig, LEGEND["contaminated"])
    x, y, size = (np.asarray(v, float) for v in (t.x, t.y, t.marker.size))
    keep = size > 0
    return sorted(zip((x[keep] + 0.5).tolist(), y[keep].astype(int).tolist()))


def reset_bar_columns(fig):
    t = trace_by_name(fig, LEGEND["reset"])
    x = np.asarray(t.x, float)
    return sorted(set((x[~np.isnan(x)] + 0.5).astype(int).tolist()))


STATEFUL = [[0, 1], [0, 1], [0, 1]]  # 3 batches x 2 slots, slot i always sequence i


# ---- flow figure -------------------------------------------------------------------------------


def test_stateful_arrows_match_carry_check():
    t = make_trace(STATEFUL)
    fig = flow_figure(t)
    check = t.carry_check()
    assert check["carried"] == 4 and check["max_carry_error"] == 0
    assert carried_points(fig) == [(1.0, 0), (1.0, 1), (2.0, 0), (2.0, 1)]
    assert len(carried_points(fig)) == check["carried"]
    assert contamination_points(fig) == []
    assert "stateful" in fig.layout.title.text


def test_reset_drawn_before_reset_batches_and_breaks_arrows():
    t = make_trace([[0, 1], [0, 1], [2, 3], [2, 3]], reset=[True, False, True, False])
    fig = flow_figure(t)
    assert reset_bar_columns(fig) == [0, 2]
    assert carried_points(fig) == [(1.0, 0), (1.0, 1), (3.0, 0), (3.0, 1)]
    assert len(carried_points(fig)) == t.carry_check()["carried"]


def test_stateless_says_zeros_and_draws_no_arrows():
    t = make_trace(STATEFUL, stateful=False)
    fig = flow_figure(t)
    assert "stateless" in fig.layout.title.text and "zeros" in fig.layout.title.text
    assert carried_points(fig) == []
    assert trace_by_name(fig, LEGEND["reset"]) is None
    cells = trace_by_name(fig, "stateless")
    assert len(cells.x) == 6 and "starts from zeros" in cells.hovertemplate


def test_contamination_marked_exactly_where_sequence_changes_while_carried():
    # slot 1 switches from sequence 1 to 7 at batch 2 with no reset: its state leaks into s7
    t = make_trace([[0, 1], [0, 1], [0, 7], [0, 7]])
    fig = flow_figure(t)
    assert contamination_points(fig) == [(2.0, 1)]
    assert t.carry_check()["contaminated"] == 1
    line = trace_by_name(fig, LEGEND["contaminated"])
    assert line.line.dash == "dash" and line.marker.symbol == "x"
    # contaminated transition is not also drawn as a clean arrow
    assert (2.0, 1) not in carried_points(fig)
    assert len(carried_points(fig)) + 1 == t.carry_check()["carried"]
    assert "1 carried states land on another sequence" in fig.layout.title.text
    bad = trace_by_name(fig, "contaminated")
    # epoch 1, batch 2, lands on s7 part 2, state came from s1
    assert bad.customdata[0].tolist() == [1, 2, 7, 2, 1]
    assert "lands on s%{customdata[2]}" in bad.hovertemplate


def test_sequence_change_after_reset_is_not_contamination():
    t = make_trace([[0, 1], [0, 1], [5, 7]], reset=[True, False, True])
    assert contamination_points(flow_figure(t)) == []


def test_hover_shows_rounded_h_values_and_where_h0_came_from():
    t = make_trace(STATEFUL, units=12)
    fig = flow_figure(t)
    cells = trace_by_name(fig, "continued")
    pos = [i for i, (x, y) in enumerate(zip(cells.x, cells.y)) if (x, y) == (1, 0)][0]
    first8 = " ".join(f"{v:.3f}".replace("0.", ".", 1) for v in t.hT[1, 0, :8])
    last4 = " ".join(f"{v:.3f}".replace("0.", ".", 1) for v in t.hT[1, 0, 8:])
    assert cells.text[pos] == first8 and cells.hovertext[pos] == last4
    assert "h0 = hT of batch %{customdata[4]} (carried: → continues the same sequence)" \
        in cells.hovertemplate
    assert cells.customdata[pos][4] == 0  # carried from batch 0
    start = trace_by_name(fig, "start")  # batch 0: zeros at the start of the run
    assert sorted(zip(start.x, start.y)) == [(0, 0), (0, 1)]


def test_hover_truncates_units_and_says_how_many_are_hidden():
    t = make_trace(STATEFUL, units=40)
    cells = trace_by_name(flow_figure(t), "continued")
    assert len(cells.text[0].split()) == 8 and len(cells.hovertext[0].split()) == 8
    assert "(+24 units)" in cells.hovertemplate


def test_broken_carry_identity_spells_out_h0():
    t = make_trace(STATEFUL)
    t.h0[2, 1] += 0.5
    fig = flow_figure(t)
    other = trace_by_name(fig, "other")
    assert list(zip(other.x, other.y)) == [(2, 1)]
    assert "≠ hT of the batch before!" in other.hovertext[0]
    assert "largest |h0[k+1]−hT[k]| = 0.5 ·" in carry_summary(t)


def test_one_frame_per_recorded_batch_moving_only_the_window():
    t = make_trace([[0, 1]] * 30)
    fig = flow_figure(t, window=10)
    assert len(fig.frames) == 30
    assert [f.name for f in fig.frames] == [str(k) for k in range(30)]
    assert list(fig.frames[0].layout.xaxis.range) == [-0.5, 9.5]
    assert list(fig.frames[29].layout.xaxis.range) == [19.5, 29.5]
    # each frame: the cursor and the cover over the batches not revealed yet, nothing else
    assert all(len(f.data) == 2 and len(f.data[0].x) == 5 for f in fig.frames)
    cover = [np.asarray(f.data[1].x, float) for f in fig.frames]
    assert cover[0].min() == 0.5 and cover[28].min() == 28.5  # frame k covers columns > k
    assert np.isnan(cover[29]).all()  # the last frame reveals everything
    names = [d.name for d in fig.data]
    assert names.index("not revealed yet") == names.index("current batch") - 1  # over the rest
    assert np.isnan(np.asarray(trace_by_name(fig, "not revealed yet").x, float)).all()  # as sent
    steps = fig.layout.sliders[0].steps
    assert len(steps) == 30 and steps[3].label == "epoch 1 · batch 3"
    labels = [b.label for m in fig.layout.updatemenus for b in m.buttons]
    assert {"slow", "normal", "fast"} <= set(labels)


def test_frame_ms_sets_play_speeds():
    fig = flow_figure(make_trace(STATEFUL), frame_ms=200)
    speed = {b.label: b.args[1]["frame"]["duration"] for b in fig.layout.updatemenus[1].buttons}
    assert speed == {"slow": 600, "normal": 200, "fast": 60}


def test_thinned_trace_title_and_gap_instead_of_arrow():
    t = make_trace([[0, 1]] * 5, recorded=[0, 1, 2, 10, 11])
    fig = flow_figure(t)
    assert "thinned: 5 batches recorded, from epoch 1" in fig.layout.title.text
    t.epoch = np.array([1, 1, 5, 5, 9], np.int32)
    t.config = json.dumps({"stateful": True, "reset": "sequence", "epochs": 9})
    assert "5 batches recorded, from epochs 1, 5, 9 of 9" in flow_figure(t).layout.title.text
    # epochs longer than the recording cap: the first batches of the first and last epochs
    part = make_trace([[0, 1]] * 4, recorded=[0, 1, 40, 41])
    part.epoch = np.array([1, 1, 3, 3], np.int32)
    part.batch = np.array([0, 1, 0, 1], np.int32)
    part.config = json.dumps({"stateful": True, "reset": "never", "epochs": 3})
    assert "4 batches recorded, from the first 2 batches of epochs 1, 3 of 3" in \
        flow_figure(part).layout.title.text
    gap = trace_by_name(fig, LEGEND["gap"])
    x = np.asarray(gap.x, float)
    assert sorted(set((x[~np.isnan(x)] + 0.5).tolist())) == [3.0]
    assert carried_points(fig) == [(1.0, 0), (1.0, 1), (2.0, 0), (2.0, 1), (4.0, 0), (4.0, 1)]
    assert len(carried_points(fig)) == t.carry_check()["carried"]
    assert flow_table(t)[6]["start"] == "carried from batch #9 (not recorded)"


def test_more_slots_than_max_slots_are_cut_and_said():
    t = make_trace([list(range(5))] * 3)
    fig = flow_figure(t, max_slots=3)
    assert "showing slots 0–2 of 5" in fig.layout.title.text
    assert list(fig.layout.yaxis.range) == [2.5, -0.5]  # slot 0 at the top
    assert max(y for _, y in carried_points(fig)) == 2


def test_max_batches_shows_a_slice_without_arrows_from_off_screen():
    t = make_trace([[0, 1]] * 10)
    fig = flow_figure(t, max_batches=4, first=3)
    assert len(fig.frames) == 4
    assert carried_points(fig)[0] == (1.0, 0)  # nothing drawn into column 0
    assert "showing 4 of the 10 recorded batches" in fig.layout.title.text
    assert trace_by_name(fig, "continued").customdata[0][:2].tolist() == [1, 3]


def test_colours_by_sequence_with_grey_padding():
    t = make_trace([[0, 1, -1], [0, 1, -1]])
    z = np.asarray(flow_figure(t).data[0].z)
    assert z.shape == (3, 2)  # slots x batches
    assert z[0, 0] == z[0, 1] != z[1, 0]
    assert z[2, 0] == seq_colour_index(np.array([-1]))[0] != z[0, 0]
    fig = flow_figure(t)
    assert [list(r) for r in fig.data[0].text] == [["s0·p0", "s0·p1"], ["s1·p0", "s1·p1"],
                                                   ["pad", "pad"]]
    hover = trace_by_name(fig, "padding").hovertemplate
    assert hover.startswith("<b>pad</b>") and "padding, no sequence" in hover and "s%{" not in hover


def test_budget_200_batches_32_slots_json_under_1mb():
    n, B = 200, 32
    seq = np.arange(B)[None, :] + B * (np.arange(n) // 20)[:, None]
    t = make_trace(seq, reset=np.arange(n) % 20 == 0, units=32)
    assert len(flow_figure(t).to_json()) < 1_000_000


def test_empty_trace_everywhere():
    t = empty_trace(json.dumps({"stateful": True}), 4, 3)
    fig = flow_figure(t)
    assert "Waiting for the first batch" in fig.layout.annotations[0].text
    assert flow_table(t) == []
    assert carry_summary(t) == "Carry check: no batches recorded yet."
    assert metrics_csv(t) == "index,epoch,batch,loss,accuracy\n"
    assert "Waiting" in hidden_heatmap(t, 0).layout.annotations[0].text
    assert "Waiting for the first batch" in batch_curves([], []).layout.annotations[0].text
    assert "Waiting" in epoch_curves([]).layout.annotations[0].text
    assert "Waiting" in compare_curves({"stateful": []}).layout.annotations[0].text


def test_flow_html_is_standalone_and_does_not_autoplay():
    html = flow_html(make_trace(STATEFUL))
    played = flow_html(make_trace(STATEFUL), autoplay=True)
    assert html.lower().startswith("<!doctype html>") and "plotly.js v" in html.lower()
    assert "Plotly.animate(" not in html.split("Plotly.newPlot(")[-1]
    assert "Plotly.animate(" in played.split("Plotly.newPlot(")[-1]


# ---- table and summary ------------------------------------------------------------------------


def test_flow_table_rows_and_start_strings():
    t = make_trace([[0, 1], [0, 1], [0, 7], [2, 3]], reset=[True, False, False, True])
    rows = flow_table(t)
    assert len(rows) == 8
    assert rows[0] == {"epoch": 1, "batch": 0, "slot": 0, "seq": 0, "part": 0,
                       "start": "reset to 0", "carry": "", "contaminated": False,
                       "|h0| max": 0.0}
    assert [r["start"] for r in rows[::2]] == ["reset to 0", "carried from batch 0",
                                              "carried from batch 1", "reset to 0"]
    assert [r["contaminated"] for r in rows] == [False] * 5 + [True, False, False]
    assert [r["carry"] for r in rows[2:6]] == ["continues its sequence"] * 3 + ["another sequence"]
    assert rows[2]["|h0| max"] == round(float(np.abs(t.hT[0, 0]).max()), 3)
    assert len(flow_table(t, max_rows=3)) == 3


def test_flow_table_stateless_and_start_of_run():
    rows = flow_table(make_trace(STATEFUL, stateful=False))
    assert {r["start"] for r in rows} == {"zeros (stateless)"}
    assert flow_table(make_trace(STATEFUL))[0]["start"] == "zeros (start of run)"


def test_carry_summary_numbers():
    t = make_trace([[0, 1], [0, 1], [0, 7]])
    assert carry_summary(t) == ("Carry check: 4 carried transitions: 3 continue their sequence, "
                                "0 broken (same sequence, wrong part), 1 contaminated (another "
                                "sequence); largest |h0[k+1]−hT[k]| = 0 (exact) · no replay data "
                                "in this trace · 2 fresh starts, largest |h0| = 0 (exact).")
    t.h0[0, 1, 0] = 0.25  # a fresh start that is not zero is said
    assert "2 fresh starts, largest |h0| = 0.25." in carry_summary(t)
    big = make_trace([list(range(10))] * 200)
    assert "1,990 carried transitions" in carry_summary(big)


# ---- curves and CSV ---------------------------------------------------------------------------


def test_batch_curves_raw_and_smoothed():
    loss, acc = [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]
    fig = batch_curves(loss, acc, metric_name="mae", smooth=0.5)
    assert len(fig.data) == 4
    assert list(fig.data[0].y) == loss and fig.data[0].opacity < 1
    np.testing.assert_allclose(fig.data[1].y, ema(loss, 0.5), rtol=1e-6)
    np.testing.assert_allclose(ema(loss, 0.5), [1.0, 1 / 3, 1 / 7], rtol=1e-6)  # debiased
    assert "mae" in fig.data[2].name


def test_epoch_and_compare_curves():
    epochs = [{"epoch": 1, "loss": 0.7, "accuracy": 0.5, "val_loss": None, "val_accuracy": None,
               "seconds": 1.0},
              {"epoch": 2, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7,
               "seconds": 1.1}]
    fig = epoch_curves(epochs)
    assert [tr.name for tr in fig.data] == ["train loss", "validation loss", "train accuracy",
                                            "validation accuracy"]
    assert list(fig.data[3].y) == [None, 0.7]
    cmp = compare_curves({"stateful": epochs, "stateless": epochs[:1]})
    assert [tr.name for tr in cmp.data] == ["stateful", "stateless"]
    a, b = cmp.data
    assert a.line.color != b.line.color and a.line.dash != b.line.dash


def test_metrics_csv_one_row_per_recorded_batch():
    t = make_trace([[0, 1]] * 3, recorded=[0, 1, 5])
    lines = metrics_csv(t).splitlines()
    assert lines[0] == "index,epoch,batch,loss,accuracy"
    assert len(lines) == 4
    assert [ln.split(",")[0] for ln in lines[1:]] == ["0", "1", "5"]
    assert lines[1].split(",")[3:] == ["1", "0.5"]


def test_epochs_csv_blank_for_missing():
    text = epochs_csv([{"epoch": 1, "loss": 0.5, "accuracy": 0.75, "val_loss": None,
                        "val_accuracy": None, "seconds": 2.0}])
    assert text.splitlines() == ["epoch,loss,accuracy,val_loss,val_accuracy,seconds",
                                 "1,0.5,0.75,,,2"]


# ---- hidden state -----------------------------------------------------------------------------


def test_hidden_heatmap_units_by_batches_with_fresh_and_contamination_marks():
    t = make_trace([[0, 1], [0, 1], [0, 7], [2, 3]], reset=[True, False, False, True], units=4)
    fig = hidden_heatmap(t, slot=1)
    heat = fig.data[0]
    np.testing.assert_array_equal(np.asarray(heat.z), t.hT[:, 1, :].T)
    assert (heat.zmin, heat.zmax, heat.zmid) == (-1, 1, 0)
    assert list(fig.data[1].x) == [0, 3]  # batches that start from zeros
    assert list(fig.data[2].x) == [2]  # slot 1's state lands on s7
    h0 = hidden_heatmap(t, slot=1, which="h0")
    assert np.all(np.asarray(h0.data[0].z)[:, 0] == 0)
    with pytest.raises(ValueError):
        hidden_heatmap(t, slot=2)


def test_hidden_heatmap_title_counts_the_batches_the_run_trained():
    # A run stopped at batch 1,000 whose record kept batches 0-1 and 198-199.
    t = make_trace([[0, 1]] * 4, units=2, recorded=np.array([0, 1, 198, 199], np.int32))
    assert "4 of 1,000 batches recorded" in hidden_heatmap(t, 0, total=1000).layout.title.text
    assert "4 of 200 batches recorded" in hidden_heatmap(t, 0).layout.title.text


def test_timestep_heatmap_shape():
    h = np.linspace(-1, 1, 12).reshape(4, 3)  # 4 timesteps, 3 units
    fig = timestep_heatmap(h, "one batch")
    assert np.asarray(fig.data[0].z).shape == (3, 4)
    assert fig.layout.title.text == "one batch"


# ---- layout view ------------------------------------------------------------------------------


def test_layout_figure_labels_and_colours_like_flow():
    seq = np.array([[0, 1, 2], [0, 1, -1]])
    part = np.array([[0, 0, 0], [1, 1, -1]])
    fig = layout_figure(seq, part, title="chunks")
    grid = fig.data[0]
    assert [list(r) for r in grid.text] == [["s0·p0", "s0·p1"], ["s1·p0", "s1·p1"],
                                            ["s2·p0", "pad"]]
    np.testing.assert_array_equal(np.asarray(grid.z), seq_colour_index(seq).T)
    assert len(fig.data) == 1  # no arrows before training
    assert fig.layout.title.text == "chunks"


def test_layout_figure_truncates_and_says_so():
    seq = np.arange(50 * 40).reshape(50, 40)
    fig = layout_figure(seq, np.zeros_like(seq), max_batches=10, max_slots=8)
    assert np.asarray(fig.data[0].z).shape == (8, 10)
    assert "showing batches 0–9 of 50" in fig.layout.title.text
    assert "showing slots 0–7 of 40" in fig.layout.title.text


def test_viz_imports_no_keras_tensorflow_or_streamlit():
    code = ("import sys, viz; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('keras', 'tensorflow', 'streamlit')]; print(bad); sys.exit(bool(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# ---- three kinds of carry ---------------------------------------------------------------------


def crossing_points(fig, kind):
    """(column, slot) where the mark of a broken / contaminated carry is drawn."""
    t = trace_by_name(fig, LEGEND[kind])
    if t is None:
        return []
    x, y, size = (np.asarray(v, float) for v in (t.x, t.y, t.marker.size))
    keep = size > 0
    return sorted(zip((x[keep] + 0.5).tolist(), y[keep].astype(int).tolist()))


def with_layout(t, **cfg):
    t.config = json.dumps({"stateful": True, "reset": "never", **cfg})
    return t


def test_three_kinds_drawn_apart_and_counted_like_the_carry_check():
    # naive chunks of length 5 in sequences of 20, batch 2: slot 0 runs s0·p0 then s0·p2, slot 1
    # s0·p1 then s0·p3 (each skips a part: broken), then s1 takes both slots (contaminated).
    seq = [[0, 0], [0, 0], [1, 1]]
    part = [[0, 1], [2, 3], [0, 1]]
    t = with_layout(make_trace(seq, part=part), layout="naive_chunks", length=5, seq_len=20)
    from models.trace import BROKEN, CONTAMINATED, carry_kinds
    kinds = carry_kinds(t)
    assert kinds[1].tolist() == [BROKEN, BROKEN] and kinds[2].tolist() == [CONTAMINATED] * 2
    fig = flow_figure(t)
    assert crossing_points(fig, "broken") == [(1.0, 0), (1.0, 1)]
    assert crossing_points(fig, "contaminated") == [(2.0, 0), (2.0, 1)]
    assert carried_points(fig) == []
    c = t.carry_check()
    assert (c["continuation"], c["broken"], c["contaminated"], c["carried"]) == (0, 2, 2, 4)
    brk, bad = trace_by_name(fig, LEGEND["broken"]), trace_by_name(fig, LEGEND["contaminated"])
    # told apart by line style and marker, not by colour alone
    assert (brk.line.dash, brk.marker.symbol) == ("dot", "circle-open")
    assert (bad.line.dash, bad.marker.symbol) == ("dash", "x")
    cells = trace_by_name(fig, "broken")
    assert "not the next part" in cells.hovertemplate
    assert cells.customdata[0].tolist() == [1, 1, 0, 2, 0]  # s0·p2, its state came from p0
    assert "⋯ 2 carried states land on the wrong part" in fig.layout.title.text
    assert "2 broken (same sequence, wrong part), 2 contaminated" in carry_summary(t)
    assert [r["carry"] for r in flow_table(t)][2:] == ["same sequence, wrong part"] * 2 + \
        ["another sequence"] * 2


def test_chunks_that_follow_each_other_are_continuations():
    t = with_layout(make_trace([[0, 1]] * 4, part=[[0, 0], [1, 1], [2, 2], [3, 3]]),
                    layout="chunks", length=5, seq_len=20)
    c = t.carry_check()
    assert (c["continuation"], c["broken"], c["contaminated"]) == (6, 0, 0)
    assert len(carried_points(flow_figure(t))) == 6
    t.part[2, 1] = 1  # slot 1 repeats part 1: same sequence, not the next part
    c = t.carry_check()
    assert (c["continuation"], c["broken"]) == (4, 2)  # into the repeat and out of it


def test_overlapping_windows_are_broken_and_adjacent_windows_continue():
    # windows of length 3, stride 1: window w starts at step w
    t = with_layout(make_trace([[0]] * 3, part=[[0], [1], [4]]), layout="windows", length=3,
                    seq_len=20)
    from models.trace import BROKEN, CONTINUATION, carry_kinds
    # w0 -> w1 overlaps (broken); w1 (steps 1-3) -> w4 (steps 4-6) follows on (continuation)
    assert carry_kinds(t)[1:, 0].tolist() == [BROKEN, CONTINUATION]


def test_full_sequences_carried_into_the_same_sequence_repeat_it():
    t = with_layout(make_trace([[0, 1]] * 2, part=[[0, 0], [0, 0]]), layout="full", seq_len=20)
    c = t.carry_check()
    assert (c["continuation"], c["broken"], c["contaminated"]) == (0, 2, 0)


def test_padding_is_neither_kind_and_draws_no_arrow():
    t = make_trace([[0, -1], [0, -1]])
    c = t.carry_check()
    assert (c["continuation"], c["broken"], c["contaminated"], c["carried"]) == (1, 0, 0, 2)
    assert carried_points(flow_figure(t)) == [(1.0, 0)]
    assert "1 padding" in carry_summary(t)


def test_summary_says_when_the_replay_does_not_match():
    from models.trace import REPLAY_TOLERANCE
    t = make_trace(STATEFUL, units=2)  # hand-made hT: an LSTM replay cannot reproduce it
    t.replay = {"replay_batch": np.array([1], np.int32),
                "replay_x": np.zeros((1, 2, 1, 1), np.float32),
                "replay_kernel": np.zeros((1, 1, 8), np.float32),
                "replay_recurrent": np.zeros((1, 2, 8), np.float32),
                "replay_bias": np.zeros((1, 8), np.float32)}
    c = t.carry_check()
    assert c["replayed"] == 1 and c["max_replay_error"] > REPLAY_TOLERANCE
    assert "replay of 1 batch from the recorded h0 does NOT match" in carry_summary(t)
