"""The flow figure's layout (pure viz): the play row and the slider never share a row, the phone
layout gives the cells the width (bare slot numbers, the colour bar across the top), and the
target square sits clear of the carry arrowhead. What a browser draws is checked in
tests/test_flow_browser.py."""
from __future__ import annotations

import numpy as np
import pytest

from bench.flow_figure import random_trace
from viz import flow_figure
from viz.flow import SEGMENT


@pytest.fixture(scope="module")
def trace():
    t = random_trace(n=40, B=8, units=4)
    t.readout_h0 = np.random.default_rng(1).random((t.n, t.batch_size, 1)).astype(np.float32)
    t.target = (np.random.default_rng(2).random((t.n, t.batch_size)) > 0.5).astype(np.float32)
    t.config = '{"stateful": true, "reset": "sequence", "task": "first_element"}'
    return t


@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize("compact", [False, True])
def test_the_slider_has_its_own_row_below_the_buttons(trace, compact, large):
    fig = flow_figure(trace, window=5, max_batches=5, compact=compact, large=large)
    play, speeds = fig.layout.updatemenus
    slider = fig.layout.sliders[0]
    assert (slider.x, slider.len) == (0, 1)  # full width, under both button groups
    lowest_buttons = max(play.pad.t, speeds.pad.t)
    assert slider.pad.t - lowest_buttons >= 45, (slider.pad.t, lowest_buttons)
    if large:  # big buttons: the speeds get a row of their own
        assert speeds.pad.t - play.pad.t >= 50
    else:  # one row: play at the left edge, the speeds at the right edge
        assert (play.x, play.xanchor, speeds.x, speeds.xanchor) == (0, "left", 1, "right")
    assert not [a for a in fig.layout.annotations if a.text == "speed:"]
    assert fig.layout.margin.b >= slider.pad.t + 45  # the slider and its label inside the figure


def test_phone_layout_gives_the_cells_the_width(trace):
    wide = flow_figure(trace, window=5, max_batches=5, colour="readout")
    phone = flow_figure(trace, window=5, max_batches=5, colour="readout", compact=True)
    assert list(wide.layout.yaxis.ticktext[:2]) == ["slot 0", "slot 1"]
    assert list(phone.layout.yaxis.ticktext[:2]) == ["0", "1"]
    assert phone.layout.yaxis.title.text == "slot"
    assert phone.layout.margin.l + phone.layout.margin.r < wide.layout.margin.l + wide.layout.margin.r - 50
    assert phone.data[0].colorbar.orientation == "h" and wide.data[0].colorbar.orientation != "h"
    assert phone.data[0].colorbar.title.text == wide.data[0].colorbar.title.text  # same words
    # the same cells, values and frames
    assert np.array_equal(np.asarray(phone.data[0].z), np.asarray(wide.data[0].z))
    assert len(phone.frames) == len(wide.frames) == 5


def test_target_square_is_clear_of_the_arrowhead(trace):
    fig = flow_figure(trace, window=5, max_batches=5, colour="readout")
    [marks] = [d for d in fig.data if d.name == "▪ corner: the true target"]
    offset = np.asarray(marks.x) - np.rint(np.asarray(marks.x))
    # arrowheads sit at the cell's left edge + SEGMENT; the squares in its right half
    assert np.all(offset > 0.25) and np.all(offset > -0.5 + SEGMENT + 0.2)
