"""The units panel (models/shapes.py): every shape is read from the model the engine builds.

Compared with an independent Keras build of the same settings (plain keras layers, written
here); the same comparison against a build that differs in one setting must fail.
"""
import keras
import pytest

from models import shapes
from models.config import RunConfig

LAYERS = {"LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU, "SimpleRNN": keras.layers.SimpleRNN}


def independent(cfg: RunConfig, n_features: int, n_out: int) -> list[tuple]:
    """The shapes of the same model, built here without the app's code, in the panel's order."""
    B, L, U = cfg.batch_size, cfg.sample_len, cfg.units
    inp = keras.Input(batch_shape=(B, L, n_features))
    rnn = LAYERS[cfg.cell](U, stateful=cfg.stateful, return_state=True)
    out, *states = rnn(inp)
    y = keras.layers.Dense(n_out)(out)
    seq = LAYERS[cfg.cell](U, return_sequences=True)(inp)
    state_shapes = [tuple(v.shape) for v in rnn.states] if cfg.stateful else [tuple(s.shape) for s in states]
    return [tuple(inp.shape), *state_shapes, tuple(out.shape), tuple(seq.shape), tuple(y.shape),
            tuple(rnn.cell.kernel.shape), tuple(rnn.cell.recurrent_kernel.shape)]


CASES = [RunConfig(layout="chunks", length=5, batch_size=50, units=10, cell="LSTM"),
         RunConfig(layout="steps", batch_size=7, units=3, cell="GRU", stateful=False),
         RunConfig(layout="full", seq_len=20, batch_size=4, units=6, cell="SimpleRNN"),
         RunConfig(task="alphabet", layout="steps", batch_size=1, units=16, sequences=2, seq_len=25)]


@pytest.mark.parametrize("cfg", CASES, ids=lambda c: f"{c.cell}-{c.layout}-{c.stateful}")
def test_shapes_match_an_independent_keras_build(cfg):
    rows = shapes.for_config(cfg)
    n_out = 26 if cfg.task == "alphabet" else 1
    assert [r.shape for r in rows] == independent(cfg, 1, n_out)
    # The check can fail: a model that differs in one setting does not match.
    for other in (cfg.replace(units=cfg.units + 1), cfg.replace(batch_size=cfg.batch_size + 1),
                  cfg.replace(cell="GRU" if cfg.cell == "LSTM" else "LSTM")):
        assert [r.shape for r in rows] != independent(other, 1, n_out)


def independent_stack(cfg: RunConfig, n_features: int, n_out: int) -> list[tuple]:
    """A stack of cfg.layers layers (Bidirectional or not), built here, in the panel's order."""
    B, L, U = cfg.batch_size, cfg.sample_len, cfg.units
    x = inp = keras.Input(batch_shape=(B, L, n_features))
    states, seqs, kernels = [], [], []
    for n in range(cfg.layers):
        last = n == cfg.layers - 1
        rnn = LAYERS[cfg.cell](U, stateful=cfg.stateful, return_sequences=not last)
        wrap = keras.layers.Bidirectional(rnn) if cfg.bidirectional else rnn
        x = wrap(x)
        dirs = [wrap.forward_layer, wrap.backward_layer] if cfg.bidirectional else [wrap]
        states += [tuple(v.shape) for d in dirs for v in d.states]
        kernels += [tuple(dirs[0].cell.kernel.shape), tuple(dirs[0].cell.recurrent_kernel.shape)]
        if not last:
            seqs.append(tuple(x.shape))
    y = keras.layers.Dense(n_out)(x)
    return [tuple(inp.shape), *states, tuple(x.shape), *seqs, tuple(y.shape), *kernels]


STACKS = [RunConfig(layout="chunks", length=5, batch_size=50, units=10, layers=3),
          RunConfig(layout="chunks", length=4, batch_size=8, units=6, layers=2, cell="GRU",
                    bidirectional=True)]


@pytest.mark.parametrize("cfg", STACKS, ids=lambda c: f"{c.cell}-x{c.layers}-bi{c.bidirectional}")
def test_a_stack_shows_each_layers_output_and_kernels(cfg):
    """A lower layer's sequence is used (the next layer reads it): the panel reads it from the
    model and names who reads it; it never says return_sequences=True is "not used here"."""
    rows = shapes.for_config(cfg)
    assert [r.shape for r in rows] == independent_stack(cfg, 1, 1)
    for other in (cfg.replace(units=cfg.units + 1), cfg.replace(layers=cfg.layers - 1)):
        assert [r.shape for r in rows] != independent_stack(other, 1, 1)
    names = [r.tensor for r in rows]
    assert not any("not used here" in t for t in names)
    seqs = [r for r in rows if r.tensor.startswith("Layer ")]
    assert [r.tensor for r in seqs] == [f"Layer {n} output (return_sequences=True, read by "
                                        f"layer {n + 1})" for n in range(1, cfg.layers)]
    width = 2 * cfg.units if cfg.bidirectional else cfg.units
    assert all(r.shape == (cfg.batch_size, cfg.sample_len, width) for r in seqs)
    assert f"{cfg.cell} kernel (layer {cfg.layers})" in names


def test_sentences_name_the_axes_with_the_numbers_read():
    cfg = CASES[0]
    rows = shapes.for_config(cfg)
    by = {r.tensor: r for r in rows}
    assert by["Input x"].axes.startswith("50 slots") and "5 timestep(s)" in by["Input x"].axes
    assert [r.tensor for r in rows if r.tensor.startswith("State")] == ["State h (hidden state)",
                                                                        "State c (cell state)"]
    assert "(1, 40)" == by["LSTM kernel"].to_row()["Shape"] and "4 gates" in by["LSTM kernel"].axes
    s = shapes.units_sentence(rows, cfg)
    assert "10 numbers per slot" in s and "to 1 output(s)" in s and "50 slots" in s
    gru = shapes.for_config(cfg.replace(cell="GRU"))
    assert not any("cell state" in r.tensor for r in gru)  # no fake c


def test_the_data_layout_tab_shows_the_shapes_when_asked():
    from pathlib import Path
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60)
    at.query_params["preset"] = "gru-chunks-stateful"
    at.run()
    assert not at.exception and at.session_state["view"] == "Data layout"
    assert not at.table  # off by default: the first run builds no model
    at.toggle(key="show_shapes").set_value(True).run()
    assert not at.exception, at.exception
    [table] = at.table
    df = table.value
    assert list(df["Tensor"])[:2] == ["Input x", "State h (hidden state)"]
    assert list(df["Shape"])[:3] == ["(50, 5, 1)", "(50, 10)", "(50, 10)"]
    assert any("Of the GRU layer, yes" in m.value for m in at.markdown)
