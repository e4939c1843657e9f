"""The units question ("is units the output dimension?"): every tensor's shape, read from the
built Keras model for the chosen settings, with what each axis is.

Nothing here is computed from the settings: the shapes are read from the model the engine
builds (`engine.build_model`), its state variables and its weights. The sentences name the
axes (batch = slots, time = sample length, units) with the numbers read.

The app's top recurrent layer uses return_sequences=False (only the last step's h reaches the
Dense layer). In a stack, every lower layer returns its whole sequence (the next layer's input),
read from the model; with one layer, a twin built with return_sequences=True shows what that
setting would change.
"""
from __future__ import annotations

from dataclasses import dataclass

from models import cells
from models.config import RunConfig


@dataclass(frozen=True)
class TensorShape:
    tensor: str          # what it is, in the app's words
    shape: tuple         # as Keras reports it (None for an unknown axis)
    axes: str            # one sentence: what each axis is

    def to_row(self) -> dict:
        return {"Tensor": self.tensor, "Shape": "(" + ", ".join(map(str, self.shape)) + ")",
                "What each axis is": self.axes}


def _t(shape) -> tuple:
    return tuple(None if d is None else int(d) for d in shape)


def _first(output):
    """A layer's output sequence or last h (return_state=True makes it a list)."""
    return output[0] if isinstance(output, (list, tuple)) else output


def read(model, layer, cfg: RunConfig) -> list[TensorShape]:
    """The shapes of a built model (engine.build_model's model and its recurrent layer)."""
    import keras
    x = _t(model.inputs[0].shape)
    B, L, F = x
    rows = [TensorShape("Input x", x, f"{B} slots (the batch: one row per slot) × {L} "
                        f"timestep(s) (the sample length) × {F} feature(s) per timestep.")]
    from models.engine import rnn_layers, stack_layers
    names = cells.state_names(cfg.cell)
    rnns = rnn_layers(model)  # stacked: each layer has its own state (models/stacked.py)
    outs = model.outputs[1:]
    for i, rnn in enumerate(rnns):
        if cfg.stateful:  # the carried state: the layer's own variables, one row per slot
            states = [(n, _t(v.shape)) for n, v in zip(names, rnn.states)]
            where = "the layer's state variable, carried to the next batch"
        else:
            states = [(n, _t(o.shape)) for n, o in
                      zip(names, outs[i * len(names):(i + 1) * len(names)])]
            where = "returned by the layer (return_state=True), dropped after the batch"
        tag = f", layer {i + 1} of {len(rnns)}" if len(rnns) > 1 else ""
        if cfg.bidirectional:  # two directions per layer (models/bidir.py)
            tag = ", backward layer" if rnn.go_backwards else ", forward layer"
            if cfg.layers > 1:
                tag += f" of layer {i // 2 + 1} of {cfg.layers}"
        for n, s in states:
            what = "hidden state" if n == "h" else "cell state"
            rows.append(TensorShape(f"State {n} ({what}{tag})", s, f"{s[0]} slots × {s[1]} "
                                    f"units: {where}; one vector of {s[1]} numbers per slot."))
    top = stack_layers(model)[-1]  # the layer the Dense layer reads
    o = _t(_first(top.output).shape)
    if cfg.bidirectional:
        rows.append(TensorShape("Bidirectional output (return_sequences=False, as the app uses it)",
                                o, f"{o[0]} slots × {o[1]} = 2 × units: the forward layer's h "
                                f"at the sample's last timestep and the backward layer's h at "
                                f"its first, side by side; this is what the Dense layer reads."))
    else:
        rows.append(TensorShape(f"{cfg.cell} output (return_sequences=False, as the app uses it)",
                                o, f"{o[0]} slots × {o[1]} units: the h of the sample's last "
                                f"timestep only; this is what the Dense layer reads."))
    stack = stack_layers(model)
    if len(stack) == 1:  # what return_sequences=True would change: a twin layer shows it
        from models.engine import _BUILD_LOCK  # Keras layer naming is not thread-safe
        with _BUILD_LOCK:
            twin = cells.layer(cfg.cell, cfg.units, cfg.seed, return_sequences=True)
            seq = _t(twin(keras.Input(batch_shape=x)).shape)
        rows.append(TensorShape(f"{cfg.cell} output with return_sequences=True (not used here)",
                                seq, f"{seq[0]} slots × {seq[1]} timestep(s) × {seq[2]} units: "
                                f"h at every timestep of the sample."))
    for i, la in enumerate(stack[:-1]):  # stacked: each lower layer returns its sequence
        seq = _t(_first(la.output).shape)
        width = f"2 × units (forward and backward h side by side)" if cfg.bidirectional \
            else "units"
        rows.append(TensorShape(f"Layer {i + 1} output (return_sequences=True, read by layer "
                                f"{i + 2})", seq, f"{seq[0]} slots × {seq[1]} timestep(s) × "
                                f"{seq[2]} = {width}: h at every timestep, layer {i + 2}'s input."))
    p = _t(model.outputs[0].shape)
    rows.append(TensorShape("Dense output (the model's answer)", p,
                            f"{p[0]} slots × {p[1]} output(s): the task's answer per slot. Its "
                            f"size is the Dense layer's, not units."))
    g = cells.GATES[cfg.cell]
    gates = "" if g == 1 else f" ({g} gates side by side, {{}} units each)"
    step = 2 if cfg.bidirectional else 1  # each direction has its own kernels, of equal shapes
    for n, layer in enumerate(rnns[::step], start=1):
        tag = f" (layer {n})" if len(stack) > 1 else ""
        k, r = _t(layer.cell.kernel.shape), _t(layer.cell.recurrent_kernel.shape)
        fed = (f"{k[0]} feature(s) in" if n == 1 else
               f"{k[0]} in (layer {n - 1}'s output at a timestep)")
        rows.append(TensorShape(f"{cfg.cell} kernel{tag}", k, f"{fed} × {k[1]} = {g} × units"
                                f"{gates.format(k[1] // g)}. No batch axis: weights are shared "
                                f"by all slots."))
        rows.append(TensorShape(f"{cfg.cell} recurrent kernel{tag}", r, f"{r[0]} units in (the "
                                f"previous h) × {r[1]} = {g} × units."))
    return rows


def tensor_shapes(cfg: RunConfig, n_features: int, n_out: int, kind: str) -> list[TensorShape]:
    """Build the model the engine would build for cfg and read its shapes."""
    from models.engine import build_model
    model, layer, _, _ = build_model(cfg, n_features, n_out, kind)
    return read(model, layer, cfg)


def for_config(cfg: RunConfig, series=None) -> list[TensorShape]:
    """The shapes for a config, with the task's features and outputs from its data."""
    from models.tasks import make_task
    # Features and outputs do not depend on how many sequences are generated: make a few.
    small = cfg if cfg.task == "user" else cfg.replace(sequences=min(cfg.sequences, 12))
    d = make_task(small, series)
    return tensor_shapes(cfg, d.x_train.shape[2], d.n_out, d.kind)


def units_sentence(rows: list[TensorShape], cfg: RunConfig) -> str:
    """The answer to the seed question, with the sizes read from the model."""
    out = next(r for r in rows if r.tensor.endswith("as the app uses it)"))
    dense = next(r for r in rows if r.tensor.startswith("Dense output"))
    if cfg.bidirectional:
        return (f"Of each direction of the Bidirectional {cfg.cell} layer, yes: each outputs its "
                f"h, {cfg.units} numbers per slot; the layer puts both side by side, "
                f"{out.shape[-1]} numbers per slot. Of the model, no: the Dense layer maps those "
                f"to {dense.shape[-1]} output(s). The batch axis is the {out.shape[0]} slots, and "
                f"each direction's state has one row per slot.")
    return (f"Of the {cfg.cell} layer, yes: its output is h, "
            f"{out.shape[-1]} numbers per slot (units = {cfg.units}). Of the model, no: the "
            f"Dense layer maps those to {dense.shape[-1]} output(s). The batch axis is the "
            f"{out.shape[0]} slots, and the state has one row per slot.")
