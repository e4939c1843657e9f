"""The State-flow tab in AppTest (real Streamlit, real Keras): colour by what the state carries,
follow one sequence, where the gradient stops, reduced motion and the table still work."""
from __future__ import annotations

import json

import numpy as np

from test_app import SMALL, app, texts, wait_until_idle


def _spec(at, key: str) -> dict:
    [chart] = [c for c in at.get("plotly_chart") if key in c.proto.id]
    return json.loads(chart.proto.spec)


def _arr(v):
    if isinstance(v, dict) and "bdata" in v:  # plotly's typed arrays
        import base64
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape([int(s) for s in str(v.get("shape", len(a))).split(",")]) \
            if "shape" in v else a
    return np.asarray(v, dtype=float)


def test_flow_colours_follows_and_shows_where_the_gradient_stops():
    at = app(**SMALL)
    at.sidebar.button(key="btn_train").click().run()
    wait_until_idle(at)
    tr = at.session_state["results"]["run"]["trace"]
    assert tr.readout_h0 is not None and tr.grad_h0 is not None
    # colour by the readout from h0: the heatmap's values are the recorded readouts
    at.radio(key="flow_colour").set_value("readout").run()
    assert not at.exception
    spec = _spec(at, "flow_fig")
    z = _arr(spec["data"][0]["z"])
    n = z.shape[1]
    f = at.select_slider(key="flow_first").value if tr.n > n else 0  # the page shown
    assert np.allclose(z, tr.readout_h0[f:f + n, :z.shape[0], 0].T, atol=1e-6)
    assert "colour: readout from h0 vs target" in spec["layout"]["title"]["text"]
    names = [d.get("name") for d in spec["data"]]
    assert "▪ corner: the true target" in names
    # one unit of h0
    at.radio(key="flow_colour").set_value("unit").run()
    at.number_input(key="flow_unit").set_value(3).run()
    z = _arr(_spec(at, "flow_fig")["data"][0]["z"])
    assert np.allclose(z, tr.h0[f:f + n, :z.shape[0], 3].T, atol=1e-6)
    # follow a sequence: its cells outlined, where its state came from and went, in words
    seq = int(tr.seq_id[f + 1, 2])
    at.selectbox(key="flow_follow").set_value(seq).run()
    spec = _spec(at, "flow_fig")
    assert f"following s{seq}:" in spec["layout"]["title"]["text"]
    path = next(d for d in spec["data"] if d.get("name") == f"◻ following s{seq}")
    assert set(_arr(path["y"]).astype(int).tolist()) == {2}  # streams: slot i keeps sequence i
    # the gradient: a companion figure with the recorded |dL/dx_t| and the cut at each boundary
    at.toggle(key="flow_gradients").set_value(True).run()
    g = _spec(at, "grad_fig")
    bars = _arr(g["data"][0]["y"])
    per = at.session_state["flow_per_page"]
    assert np.allclose(bars, tr.grad_x[f:f + per].ravel(), rtol=1e-6)
    assert "Where the gradient stops" in g["layout"]["title"]["text"]
    # the phone layout (a desktop browser here: off until flipped): five batches, bare slots
    assert at.toggle(key="flow_compact").value is False and per == 20
    at.toggle(key="flow_compact").set_value(True).run()
    spec = _spec(at, "flow_fig")
    assert at.session_state["flow_per_page"] == 5 and len(spec["layout"]["xaxis"]["ticktext"]) == 5
    assert spec["layout"]["yaxis"]["ticktext"][:2] == ["0", "1"]
    # reduced motion: no frames, no play; the table still works
    at.session_state["reduced_motion"] = True
    at.run()
    spec = _spec(at, "flow_fig")
    assert not spec.get("frames") and any("Reduced motion" in c for c in texts(at, "caption"))
    at.toggle(key="flow_table").set_value(True).run()
    assert not at.exception and len(at.dataframe) == 1
