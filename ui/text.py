"""Words for the page: view captions, the questions and what a run measured.

Pure (no streamlit, no keras): every function takes plain values or a Trace and returns text,
so it can be tested without a browser.
"""
from __future__ import annotations


from models.claims import epoch_counts, final_val
from models.presets import PRESETS
from models.trace import gradient_summary

CAPTIONS = {
    "flow": "Each column is one batch, each row one **slot** (a row of the batch). A cell is the "
            "sample in that slot: `s12·p3` means sequence 12, part 3. A solid dark arrow (→): "
            "the state this slot ended the batch with was handed to the same slot in the next "
            "batch and continues the same sequence (that is all `stateful=True` does). A dotted "
            "orange line with a ring (⋯): it lands on the same sequence but not its next part "
            "(skipped, repeated or overlapping). A dashed red line with ✕: it lands on another "
            "sequence, so the state is contaminated. A dotted bar (┆): the states were reset to "
            "zero. The carry check replays sampled batches from the recorded h0 with NumPy to "
            "show the layer really started from it.",
    "hidden": "The hidden state h of one slot, right before each batch (h0) and right "
              "after it (hT). With `stateful=True` and no reset, each batch's h0 column equals "
              "the previous hT column: that is the carried state.",
    "layout": "How the data is cut and placed into batches *before* training: read a row left "
              "to right to see what one slot will be fed. For a stateful model to make sense, "
              "a row should be one colour (one sequence) whose parts go 0, 1, 2, …",
    "curves": "Loss and metric per batch (noisy) and per epoch. Validation runs on held-out "
              "sequences from a zero state and never touches the training state.",
    "answers": "The questions people keep asking about stateful recurrent layers in Keras "
               "(LSTM, GRU, SimpleRNN), each with a "
               "short answer, the claims that check it (each measured by a run) and the "
               "presets you can run to see it for yourself.",
    "shapes": "The shapes of the input, the state, the recurrent layer's output and the Dense "
              "output for these settings, each read from the model the app builds (not "
              "computed), with what each axis is: batch = slots, time = sample length, units.",
    "code": "A standalone Keras 3 script that trains the same model on the same data with the "
            "same settings. Copy it with the button in the corner of the code box.",
}

QUESTIONS = (
    (1, "In a stateless LSTM, does Keras reset the state after each sequence or after each batch?",
     "After each **sample**: a stateless layer starts every sample from zeros. With 1000 "
     "sequences and batch size 200 there are 1000 fresh starts per epoch, not 5. \"Per "
     "sequence\" and \"per batch\" only differ when something is carried, and in stateless "
     "mode nothing is (timesteps *inside* one sample do carry)."),
    (2, "Why keep the state from the previous sequence, and doesn't shuffling contradict it?",
     "You keep the state only when the next sample *continues* the previous one (a long "
     "sequence cut into chunks): slot i of batch k+1 must hold the chunk after slot i of batch "
     "k. Reset when a sequence ends, so nothing leaks into the next one. Shuffling breaks "
     "this. `shuffle='batch'` moves chunks between slots, so the carried state lands on "
     "another sequence. `shuffle=True` (fit's default) moves them over the whole set; with a "
     "reset after each sequence, some sequence ends in every shuffled batch, so the states are "
     "zeroed before every batch and nothing is carried at all. Stateful training needs "
     "`shuffle=False`. The runs below each change one setting of the unshuffled chunks run."),
    (3, "Does passing state from sample to sample force batch_size=1?",
     "No. Each slot of a batch keeps its own state, so a batch of 100 streams 100 sequences "
     "side by side. Batch size 1 is only one stream, and slow. The classic alphabet tutorial "
     "with batch size 1 fits its stream, but what did it learn? Start it from a fresh state "
     "on other letters: the claim below and the probe say what the trained model answers, "
     "per start letter."),
    (4, "Why does the blog's 'first value' experiment stay near 50% with windows?",
     "Each window of 10 steps only sees the first value if it starts at step 0, and stateful "
     "does not help because consecutive windows in a slot are not continuations. Fed one step "
     "per batch with the state carried and reset after each sequence, the first value travels "
     "through all 20 steps; the runs below say how far each gets."),
    (5, "Why must a stateful model know its batch size?",
     "The state is a variable of shape (batch size, units): one row per slot, created when the "
     "layer is built. So the input needs `keras.Input(batch_shape=(B, L, F))` (`shape=` alone "
     "raises \"the batch size must be static\"). A final partial batch is a trap: with 1 "
     "sample left over, `fit` trains without a word and that one sample advances every slot's "
     "state; with 2 or more it fails with \"Incompatible shapes\". Trim to a multiple of B. "
     "The plain-Keras demo below measures both."),
    (6, "Gradients do not cross batches; why does stateful training still learn?",
     "The state crosses the boundary, the gradient does not. The carried state enters the next "
     "batch as a constant (a read of the state variables), so backpropagation stops at the "
     "batch's first step: training is truncated BPTT with a window of one batch's timesteps. "
     "It still learns long memory because every batch's own steps teach the model two things "
     "it can learn locally: to *read* what its starting state holds (the loss depends on h0: "
     "|dL/dh0| is measured at every boundary) and to *keep* it in the state it hands on. The "
     "memory travels forward in the state, one batch at a time. The State-flow tab shows both: "
     "colour by *readout from h0* to watch the first value ride along a row, and turn on "
     "*gradients* to see how far back inside each batch the gradient reaches and where it is cut."),
    (7, "Does GRU carry the same state as LSTM?",
     "Not the same tensors, the same way. An LSTM carries two state tensors per slot, the "
     "hidden state h and the cell state c (`layer.states` = [h, c]); a GRU and a SimpleRNN "
     "carry one, h (`layer.states` = [h]). `stateful=True` treats them alike: each slot's "
     "final state becomes that slot's initial state in the next batch, and `reset_state()` "
     "zeroes it. So everything about slots, shuffling and resets holds for all three; to set "
     "one slot by hand, assign a row of each tensor in `layer.states`. On the chunks run, the "
     "same settings with a GRU or a SimpleRNN: the claims below say what each reached against "
     "the LSTM, and that the carried h is exactly the state the cell's own equations "
     "continue from. Choose *Cell type* in the sidebar to try any run with another cell."),
    (8, "Why does my stateful model need its batch size at predict time?",
     "Because its state is a variable of shape (batch size, units), one row per slot, made when "
     "the model was built: the layer refuses any batch of another size, at predict time too. "
     "`predict` splits its input into batches of `batch_size`, 32 unless you say otherwise, so "
     "`model.predict(x)` can fail even when x holds exactly B samples; pass `batch_size=B`. "
     "And `predict`, `predict_on_batch` and `evaluate` run the layer, so they move the stored "
     "state: save it (`[v.numpy() for v in layer.states]`) and put it back, or reset, around "
     "them. To predict one sequence at a time, build the same model with "
     "`keras.Input(batch_shape=(1, 1, F))` and `stateful=True`, copy the weights "
     "(`copy.set_weights(model.get_weights())`: weights have no batch axis) and feed it one "
     "step per call, resetting when a sequence ends. A Bidirectional layer's backward direction "
     "reads a whole sample from its end, so its copy takes one sample of the trained length per "
     "call (`batch_shape=(1, L, F)`), not one step. The claims below measure all of this on "
     "the chunks run (batch 50); the panel does it with the run shown."),
    (9, "With stacked LSTM layers, which state does stateful=True carry?",
     "Every layer's. Each recurrent layer has its own state variables, one row per slot "
     "(`layer.states`: [h, c] for an LSTM), so two stacked LSTMs carry four tensors per slot: "
     "layer 1's h and c and layer 2's h and c. Layer 1 must use `return_sequences=True` so "
     "layer 2 sees every step; the Dense layer reads the last layer's h. `reset_state()` "
     "belongs to one layer: reset them all (`for layer in rnns: layer.reset_state()`, or "
     "`model.reset_states()` where your Keras has it), and to set one slot by hand assign "
     "that row in every layer. On the chunks run with two layers, the claims below say what "
     "it reached against one layer, and that both layers' carried states are exactly the "
     "states the next batch started from. Choose *Stacked layers* in the sidebar to stack "
     "any run, and pick the layer the State-flow tab shows. (Bidirectional layers: question "
     "11.)"),
    (10, "How do I feed sequences of different lengths to a stateful model?",
     "Pack them into B streams: each slot takes the next sequence as soon as its own ends, and "
     "when a sequence ends, reset only its slot. Keras has no per-slot reset (`reset_state()` "
     "zeroes every slot), so assign zeros to that row of every state variable, e.g. in a "
     "callback's `on_train_batch_begin`: `v.assign(np.where(ended[:, None], 0.0, v.numpy()))` "
     "for each `v` in `layer.states`; the other slots keep their state exactly. Layout "
     "*packed* does this (sequences of 1 to T/L chunks), the State-flow tab marks each slot's "
     "own reset, and the Keras code tab writes it out. The claims below compare it with the "
     "same streams reset only once an epoch, where each new sequence inherits the previous "
     "one's state."),
    (11, "Can a Bidirectional layer be stateful?",
     "Keras lets you write `Bidirectional(LSTM(U, stateful=True))`, and both directions then keep "
     "their state, one row per slot, in `layer.forward_layer.states` and "
     "`layer.backward_layer.states`. The forward direction carries the way you expect: the state "
     "at the end of a chunk starts the next one. The backward direction reads each chunk from "
     "its last step to its first, so the state it keeps is the state at the chunk's *first* "
     "step, and the next chunk's backward pass starts at *its* last step from it: the state "
     "is handed on from the wrong end, to a step it never neighboured. Read the whole sequence "
     "backwards and step 2L would start fresh. Keras 3 models have no `reset_states()`; the "
     "Bidirectional layer's `reset_state()` (or `reset_states()`) zeroes both directions, while "
     "resetting only `forward_layer` leaves the backward state. Advice: do not carry backward "
     "state across chunks. To stream, use a stateful forward layer; to look both ways, use a "
     "stateless Bidirectional layer over whole windows. The toggle below measures all of this "
     "in plain Keras. To watch it train, turn on *Bidirectional* in the sidebar or load the "
     "preset below (the chunks run with one change): the app trains the real "
     "`keras.layers.Bidirectional`, records both directions' states, replays the backward one "
     "over the inputs reversed in time, and the State-flow tab's *Direction shown* draws each "
     "backward carry for what it is: the state at a chunk's first step entering the next "
     "chunk at its last step. The claims below say what that run measured."),
)


def preset_for(question: int) -> str | None:
    """The first preset that demonstrates a question."""
    return next((p.name for p in PRESETS.values() if p.question == question), None)


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "unknown"
    s = max(0.0, float(s))
    if s < 90:
        return f"{s:.0f} s"
    return f"{s / 60:.0f} min"


def last_epoch_counts(trace) -> dict | None:
    """Carry check restricted to the last recorded epoch (what one epoch of training did)."""
    # The first batch of an epoch is a fresh start only if it was reset (or is the run's first).
    return epoch_counts(trace)


def measured(question: int, result: dict | None) -> str | None:
    """One sentence citing what the last run measured that bears on a question."""
    if not result or result.get("trace") is None or result["trace"].n == 0:
        return None
    tr, cfg = result["trace"], result["cfg"]
    mode = "stateful" if cfg.stateful else "stateless"
    c = last_epoch_counts(tr)
    val = _final_val(result)
    if question in (1, 2) and c:
        s = (f"Your last run ({mode}, batch size {cfg.batch_size}): {c['fresh_starts']:,} fresh "
             f"starts and {c['carried']:,} carried states in epoch {c['epoch']}")
        if question == 2:
            s += f"; {c['contaminated']:,} carried states landed on a different sequence"
        return s + "."
    if question == 3:
        tail = "" if val is None else f" and reached validation {result['metric']} {val:.3f}"
        return f"Your last run streamed {cfg.batch_size} slot(s) side by side{tail}."
    if question == 4 and val is not None:
        return (f"Your last run ({mode}, layout {cfg.layout}): validation {result['metric']} "
                f"{val:.3f} after {len(result['epochs'])} epoch(s).")
    if question == 6:
        g = gradient_summary(tr)
        if g is None or g["grad_h0_median"] is None:
            return None
        acc = g["carried_accuracy"]
        each = ""
        if g.get("per_state"):  # stacked layers and/or both directions: each state's own
            each = " (" + ", ".join(
                (f"layer {r['layer']} " if tr.layers > 1 else "")
                + (f"{r['direction']} " if tr.bidirectional else "")
                + ("-" if r["grad_h0_median"] is None else f"{r['grad_h0_median']:.2g}")
                for r in g["per_state"]) + ")"
        return (f"Your last run ({mode}, {g['steps']} timestep(s) per batch): median |dL/dh0| "
                f"{g['grad_h0_median']:.2g}{each} at the carried boundaries of epoch "
                f"{g['epoch']}, cut there" + ("" if acc is None else f"; batches starting from "
                f"a carried state right {acc:.3f} of the time in epoch {g['last_epoch']}") + ".")
    if question == 7:
        states = " and ".join(n for n in ("h", "c") if f"{n}0" in tr.state_keys())
        c = tr.carry_check()
        return (f"Your last run used a {cfg.cell}: it carried {states} "
                f"({c['carried']:,} carried states, largest carry error "
                f"{c['max_carry_error']:g}).")
    if question == 11 and cfg.bidirectional:
        rows = tr.carry_check().get("directions") or []
        if len(rows) > 2:  # stacked Bidirectional layers: each layer's two directions
            return (f"Your last run stacked {cfg.layers} Bidirectional layers ({mode}): " + "; ".join(
                f"layer {r['layer']} {r['direction']} "
                + (f"{r['wrong_end']:,} wrong-end carries" if r["direction"] == "backward"
                   else f"{r['continuation']:,} continuations")
                + f", largest carry error {r['max_carry_error']:g}" for r in rows) + ".")
        if len(rows) == 2:
            fw, bw = rows
            return (f"Your last run was Bidirectional ({mode}): the forward layer carried "
                    f"{fw['continuation']:,} continuations, the backward layer "
                    f"{bw['wrong_end']:,} wrong-end carries (and {bw['continuation']:,} "
                    f"continuations); largest carry error forward "
                    f"{fw['max_carry_error']:g}, backward {bw['max_carry_error']:g}.")
    if question == 5:
        trims = [n for n in result.get("notes", []) if n.startswith("Trimmed")]
        return (f"Your last run built `keras.Input(batch_shape=({cfg.batch_size}, "
                f"{cfg.sample_len}, F))`." + (f" {trims[0]}" if trims else " No samples were trimmed."))
    return None


def _final_val(result: dict) -> float | None:
    return final_val(result.get("epochs") or [])


def state_caption(cell: str) -> str:
    """What the recorded state of this run's cell is (models/cells.py): the heatmaps draw h."""
    if cell == "LSTM":
        return ("An LSTM carries two state tensors per slot, h and the cell state c; both are "
                "carried and checked by the carry check, h is drawn here.")
    return (f"A {cell} carries one state tensor per slot, h: it is the whole carried state "
            "(there is no c to record).")


def inference_words(m: dict) -> str:
    """What the inference measurement of the run shown found (models/inference.py)."""
    p, B = m["predict"], m["batch_size"]
    short = lambda e: "it worked" if e is None else "it failed: *" + e.split(" Arguments received")[0] + "*"  # noqa: E731
    moved = ", ".join(f"`{k}` by up to {v:.3g}" for k, v in p["moved"].items())
    acc = m.get("stream_accuracy")
    n = m.get("per_call", 1)
    fed = "one step per call" if n == 1 else f"one sample of {n} steps per call"
    bidi = (" (a Bidirectional layer: its backward direction reads each sample from its last "
            "step, so it cannot be fed one step at a time; both directions' states compared)"
            if m.get("bidirectional") else "")
    return (f"The run's final weights, copied into a batch-1 stateful {m['cell']} and fed "
            f"validation sequence 0 {fed}{bidi}, give the same answers and states as the "
            f"trained batch-{B} model fed that sequence in slot 0, {m['sample_len']} step(s) per "
            f"call: largest difference {m['max_difference']:.2g} (float32 rounding; the bound is "
            f"{m['tolerance']:g}). On the trained model, `model.predict(x)` with {B} samples: "
            f"{short(p['default'])}. With one sample: {short(p['one_sample'])}. With "
            f"`batch_size={B}`: " + (f"{p['rows']} rows." if p["with_batch_size"] is None
                                     else short(p["with_batch_size"]) + ".")
            + f" Each call moved the stored state: {moved}."
            + ("" if acc is None else f" Streamed {fed}, the copy answers "
               f"{m['streams']} validation sequences right {acc:.3f} of the time at the end of "
               f"each sample of {m['sample_len']} step(s)."))


def bidi_words(m: dict) -> str:
    """What the stateful Bidirectional measurement found (models/bidirectional.py)."""
    f, b, z = m["forward"], m["backward"], m["reset"]
    L, g = m["steps"], (lambda v: f"{v:.2g}")
    fo = z["forward_layer.reset_state"]
    return (f"Keras {m['keras']}, `Bidirectional(LSTM({m['units']}, stateful=True))` on batches of "
            f"{m['batch_size']}, fed steps 1-{L} and then {L + 1}-{2 * L} of the same sequences, "
            f"compared with a plain LSTM given each direction's weights. Forward: the stored "
            f"state is the state at step {L} (difference {g(f['stored_vs_step_L'])}) and the "
            f"second chunk starts from it, the same as one pass over steps 1-{2 * L} (difference "
            f"{g(f['chunk2_vs_whole'])}; from zeros it would be {g(f['chunk2_from_zeros'])} "
            f"away). Backward: the stored state is the state at step 1 (difference "
            f"{g(b['stored_vs_step_1'])}; h at step {L} is {g(b['stored_h_vs_step_L'])} away). "
            f"The second chunk's backward output is reproduced exactly by a plain LSTM read from "
            f"step {2 * L} down to {L + 1} starting from step 1's state (difference "
            f"{g(b['chunk2_from_step_1'])}), and is {g(b['chunk2_vs_whole'])} away from the "
            f"whole sequence read backwards, which starts fresh at step {2 * L} (the outputs "
            f"themselves are at most {g(b['state_size'])}). Resets: `model.reset_states` exists: "
            f"{z['methods']['model.reset_states']}; after the layer's `reset_state()` the largest "
            f"states are {g(z['layer.reset_state']['forward'])} forward and "
            f"{g(z['layer.reset_state']['backward'])} backward; after "
            f"`forward_layer.reset_state()` alone, {g(fo['forward'])} forward and "
            f"{g(fo['backward'])} backward (the backward state moved by {g(fo['backward_moved'])}).")
