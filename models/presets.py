"""Named experiments: a config, a short classroom explanation and the expected outcome.

Each answers one of the questions in KERAS-FACTS.md (`question`: 1-5, 6 for its question 6
on gradients, 7 for "GRU vs LSTM state" in its question 10, 9 for stacked layers' states, 10 for
sequences of different lengths) by a run you can watch.
"""
from __future__ import annotations

from dataclasses import dataclass

from models.config import RunConfig


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    explanation: str
    expected: str
    config: RunConfig
    question: int = 0
    published: float | None = None  # the blog's validation accuracy, for `reproduce`


_seed004 = RunConfig(task="first_element", sequences=1200, seq_len=20, seed=4)

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("seed004-windows-stateless", "Windows of 10, stateless",
           "Each sequence is cut into 11 overlapping windows of 10 steps. Only the first window "
           "contains the first value; the others are all zeros, so they cannot know the answer.",
           "Validation accuracy ends between 0.5 and 0.6, near chance: only one window in eleven "
           "contains the first value.",
           _seed004.replace(layout="windows", length=10, stateful=False, shuffle="off",
                            reset="epoch", batch_size=100, epochs=15), 4, 0.55),
    Preset("seed004-windows-stateful", "Windows of 10, stateful",
           "The same windows with stateful=True, nothing else changed. Slot i of the next batch "
           "holds the window 100 samples later, from another sequence, so the carried state "
           "brings no useful memory.",
           "Every carried state lands on another sequence, and validation accuracy ends between "
           "0.5 and 0.6, within 0.05 of the stateless run: stateful does not help when samples "
           "are not continuations.",
           _seed004.replace(layout="windows", length=10, stateful=True, shuffle="off",
                            reset="epoch", batch_size=100, epochs=15), 4, 0.50),
    Preset("seed004-steps-stateful", "One step per batch, batch 1, stateful",
           "The blog's winning setup: each sequence is fed one timestep per batch, batch size 1, "
           "and the state is reset after each sequence. The first value is carried in the state "
           "through all 20 steps.",
           "Validation accuracy at least 0.99 after 2 epochs (the blog needed 29 s an epoch), at "
           "least 0.4 above the same stream without stateful.",
           _seed004.replace(layout="steps", stateful=True, shuffle="off", reset="sequence",
                            batch_size=1, epochs=2), 4, 1.0),
    Preset("seed004-steps-stateless", "One step per batch, batch 1, stateless",
           "The same stream without stateful: every one-step sample starts from zeros, so after "
           "the first step nothing remembers the first value.",
           "Validation accuracy between 0.5 and 0.6: only the first step of each sequence sees "
           "the first value.",
           _seed004.replace(layout="steps", stateful=False, shuffle="off", reset="sequence",
                            batch_size=1, epochs=2), 4, 0.52),
    Preset("seed004-streams-stateful", "100 streams in parallel, stateful",
           "Stateful does not need batch size 1: 100 sequences are streamed side by side, slot i "
           "always continuing sequence i, one step per batch, reset after each sequence.",
           "Validation accuracy at least 0.99, and every carried state is a continuation of the "
           "slot's own sequence.",
           _seed004.replace(layout="steps", stateful=True, shuffle="off", reset="sequence",
                            batch_size=100, epochs=10), 3),
    Preset("stateless-resets", "Stateless: 1000 resets or 5?",
           "1000 sequences of 20 steps, batch size 200, stateless. Does Keras reset after each "
           "sequence or after each batch? Watch the state at the start of every sample.",
           "1,000 fresh starts in every epoch, one per training sample, and 0 carried states. "
           "Per batch and per sequence are the same thing when nothing is carried. Each sample "
           "is a whole sequence, so it still learns: validation accuracy at least 0.99.",
           _seed004.replace(layout="full", length=20, stateful=False, shuffle="samples",
                            reset="never", batch_size=200, epochs=10, lr=0.05), 1),
    Preset("shuffle-breaks-state", "Shuffling inside batches breaks a stateful model",
           "chunks-stateful with one change: shuffle='batch' (Keras 3 permutes the samples "
           "inside each batch and keeps batch order). The resets still come after each "
           "sequence, but chunks move between slots, so the state carried into a chunk usually "
           "belongs to another sequence.",
           "At least 9 in 10 carried states are contaminated, and validation accuracy ends at "
           "least 0.25 below chunks-stateful, the same run unshuffled.",
           _seed004.replace(layout="chunks", length=5, stateful=True, shuffle="batch",
                            reset="sequence", batch_size=50, epochs=10), 2),
    Preset("shuffle-samples-resets", "Shuffling all samples: nothing is carried",
           "chunks-stateful with one change: shuffle='samples' (fit's shuffle=True: the whole "
           "set, every epoch). Some sequence now ends in every shuffled batch, so the reset "
           "after a sequence ends zeroes the states before every batch.",
           "0 states carried: the run is stateless in effect rather than contaminated, and "
           "validation accuracy ends at least 0.2 below chunks-stateful, the same run unshuffled.",
           _seed004.replace(layout="chunks", length=5, stateful=True, shuffle="samples",
                            reset="sequence", batch_size=50, epochs=10), 2),
    Preset("chunks-stateful", "Chunks of 5, stateful, in order",
           "The right way to train on sequences longer than one sample: cut them into chunks, "
           "keep chunk order, slot i continues sequence i, reset after the last chunk.",
           "Validation accuracy at least 0.99 and every carried state a continuation. The first "
           "value is only in chunk 1, so chunks 2-4 can be right only through the carried state.",
           _seed004.replace(layout="chunks", length=5, stateful=True, shuffle="off",
                            reset="sequence", batch_size=50, epochs=10), 2),
    Preset("gru-chunks-stateful", "The same chunks with a GRU: one state tensor",
           "chunks-stateful with one change: cell='GRU'. An LSTM carries two state tensors per "
           "slot (h and c), a GRU carries one (h). stateful=True carries it the same way: each "
           "slot's final h becomes that slot's h0 in the next batch, and the reset zeroes it.",
           "Validation accuracy at least 0.99, within 0.05 of chunks-stateful (the same run "
           "with an LSTM), and every carried state a continuation. The trace holds h alone (no "
           "c), carried exactly, and the replay with the GRU's equations from the recorded h0 "
           "matches.",
           _seed004.replace(layout="chunks", length=5, stateful=True, shuffle="off",
                            reset="sequence", batch_size=50, epochs=10, cell="GRU"), 7),
    Preset("simplernn-chunks-stateful", "The same chunks with a SimpleRNN",
           "chunks-stateful with one change: cell='SimpleRNN', the plainest recurrent layer: "
           "h' = tanh(x W + h U + b). Its state is h alone, carried from slot to slot like "
           "the LSTM's.",
           "Validation accuracy at least 0.99, within 0.05 of chunks-stateful (the same run "
           "with an LSTM), and every carried state a continuation. The trace holds h alone (no "
           "c), carried exactly, and the replay with the SimpleRNN's equation from the recorded h0 matches.",
           _seed004.replace(layout="chunks", length=5, stateful=True, shuffle="off",
                            reset="sequence", batch_size=50, epochs=10, cell="SimpleRNN"), 7),
    Preset("stacked-chunks-stateful", "The same chunks with two stacked LSTM layers",
           "chunks-stateful with one change: layers=2. Layer 1 reads the input and hands its "
           "whole output sequence to layer 2; the Dense layer reads layer 2's h. Each layer "
           "keeps its own state per slot (h and c of layer 1, h and c of layer 2): "
           "stateful=True carries both, and the reset must zero both. Pick the layer the flow "
           "shows.",
           "Validation accuracy at least 0.99, within 0.05 of chunks-stateful (one layer), and "
           "every carried state a continuation. Both layers' states are carried exactly, and "
           "the replay, layer by layer (layer 2 fed layer 1's recomputed outputs), matches.",
           _seed004.replace(layout="chunks", length=5, stateful=True, shuffle="off",
                            reset="sequence", batch_size=50, epochs=10, layers=2), 9),
    Preset("bidirectional-chunks-stateful", "The same chunks through a Bidirectional LSTM",
           "chunks-stateful with one change: bidirectional=True. A forward LSTM reads each chunk "
           "first step to last, a backward LSTM last step to first; each keeps its own state per "
           "slot and stateful=True carries both. The forward carry continues the sequence. The "
           "backward layer ends a chunk at its FIRST step, so it hands the state at the start of "
           "chunk k to the END of chunk k+1: the wrong end. Pick the direction the flow shows.",
           "Validation accuracy at least 0.99, within 0.05 of chunks-stateful (one direction). "
           "Both directions' states are carried exactly and replayed (the backward one over the "
           "inputs reversed in time); every forward carry is a continuation and every backward "
           "carry enters the next chunk at the wrong end.",
           _seed004.replace(layout="chunks", length=5, stateful=True, shuffle="off",
                            reset="sequence", batch_size=50, epochs=10, bidirectional=True), 11),
    Preset("packed-slot-resets", "Sequences of different lengths: reset only the slot that ended",
           "chunks-stateful with one change: layout='packed'. Each sequence keeps 1 to 4 chunks, "
           "and the sequences are packed one after another into 50 streams: a slot takes the "
           "next sequence as soon as its own ends, so sequences end at different batches. "
           "Only the slot whose sequence ended is reset (that row of the state is assigned "
           "zeros); the other 49 carry on. Keras has no per-slot reset: see the Keras code tab.",
           "Validation accuracy at least 0.99, every carried state a continuation (0 "
           "contaminated) while batches reset some slots and not others, and at least 0.05 "
           "above the same packed streams reset only once an epoch.",
           _seed004.replace(layout="packed", length=5, stateful=True, shuffle="off",
                            reset="sequence", batch_size=50, epochs=10), 10),
    Preset("packed-no-slot-resets", "Different lengths without per-slot resets",
           "packed-slot-resets with one change: reset='epoch'. Nothing resets a slot when its "
           "sequence ends, so the next sequence in that slot starts from the previous "
           "sequence's state.",
           "At least 1 in 3 carried states lands on another sequence (the claims of "
           "packed-slot-resets compare the two runs' accuracy).",
           _seed004.replace(layout="packed", length=5, stateful=True, shuffle="off",
                            reset="epoch", batch_size=50, epochs=10), 10),
    Preset("naive-chunks-mistake", "Naive chunks: the common mistake",
           "The same chunks, but batched in sequence order: the 4 chunks of one sequence sit side "
           "by side in a batch, so slot i carries chunk i of one sequence into chunk i of the "
           "next, unrelated sequence.",
           "Every carried state is contamination (0 continuations); validation accuracy ends "
           "between 0.55 and 0.7.",
           _seed004.replace(layout="naive_chunks", length=5, stateful=True, shuffle="off",
                            reset="epoch", batch_size=4, epochs=5), 2),
    Preset("partial-batch-trap", "The partial-batch trap",
           "1,000 whole sequences (one sample each) in batches of 111 leave exactly 1 sample "
           "over. Plain Keras fit feeds it as a final batch of 1 without a word, and that one "
           "sample advances every slot's state; 2 or more left over make fit fail with "
           "'Incompatible shapes'. The app never feeds a partial batch: it trims and says so.",
           "A note says 1 of 1,000 samples was trimmed, and validation accuracy is at least "
           "0.99. The plain-Keras demo (python -m models claims) measures the trap itself: with "
           "1 sample left over every slot's state is advanced with it; with 2, fit fails.",
           _seed004.replace(layout="full", length=20, stateful=True, shuffle="off",
                            reset="sequence", batch_size=111, epochs=5), 5),
    Preset("alphabet-batch1-positions", "Alphabet, batch 1: positions, not letters",
           "The tutorial: a stateful LSTM, batch size 1, learns A->B ... Y->Z one letter per "
           "batch, reset after each pass. It fits the stream, but what did it learn?",
           "It fits the stream (validation accuracy at least 0.99), but from a fresh state it "
           "answers B to every start letter A-Y: it counts positions since the reset instead of "
           "reading the letter. The Answers tab shows its answers per start letter.",
           RunConfig(task="alphabet", layout="steps", stateful=True, shuffle="off",
                     reset="sequence", batch_size=1, units=16, epochs=150, lr=0.01,
                     sequences=2, seq_len=25, seed=4), 3),
    Preset("long-memory-stateful", "A cue 100 steps back, chunks of 10, stateful",
           "Sequences of 100 noisy steps; the cue (+1 or -1) is at step 0 and must be recalled at "
           "the end of every chunk. Only the first chunk sees it: the others need the state "
           "carried from the previous chunk of the same sequence.",
           "Validation accuracy at least 0.99, at least 0.4 above the same chunks without "
           "stateful.",
           RunConfig(task="long_memory", layout="chunks", length=10, stateful=True, shuffle="off",
                     reset="sequence", batch_size=50, units=10, epochs=10, lr=0.01,
                     sequences=1200, seq_len=100, seed=4), 3),
    Preset("long-memory-stateless", "A cue 100 steps back, chunks of 10, stateless",
           "The same chunks without carrying state: 9 of every 10 chunks never see the cue.",
           "Validation accuracy between 0.45 and 0.55: 9 of every 10 chunks never see the cue.",
           RunConfig(task="long_memory", layout="chunks", length=10, stateful=False, shuffle="off",
                     reset="sequence", batch_size=50, units=10, epochs=10, lr=0.01,
                     sequences=1200, seq_len=100, seed=4), 3),
    Preset("gradient-stops-streams", "Gradients stop at every batch, yet it learns",
           "seed004-streams-stateful for 3 epochs, with the gradients recorded: every batch is "
           "one timestep of 100 streams, so backpropagation reaches exactly one step and stops "
           "at the batch boundary, where the state came in as a constant. The first value sits "
           "only in step 0; steps 1-19 are zeros, so their answer exists only in the carried "
           "state. Watch Gradients in the State-flow tab.",
           "The gradient reaches 1 step and |dL/dh0| is cut at every carried boundary, yet the "
           "batches that start from a carried state are right at least 99% of the time in the "
           "last epoch: the state carries the value forward, and each batch's own step teaches "
           "the model to keep it and to read it.",
           _seed004.replace(layout="steps", stateful=True, shuffle="off", reset="sequence",
                            batch_size=100, epochs=3), 6),
    Preset("sine-forecast", "Noisy sine: forecast the next value",
           "Each sequence is a noisy sine with its own frequency and phase, cut into chunks of 10 "
           "and streamed statefully: slot i continues sequence i, so the state can carry what "
           "the earlier chunks of that sine showed.",
           "Validation MAE ends at most 0.2, less than a third of the MAE of always guessing 0.",
           RunConfig(task="sine", layout="chunks", length=10, stateful=True, shuffle="off",
                     reset="sequence", batch_size=50, units=16, epochs=10, lr=0.01,
                     sequences=1200, seq_len=100, seed=4), 0),
)}

SEED004 = ("seed004-windows-stateless", "seed004-windows-stateful",
           "seed004-steps-stateful", "seed004-steps-stateless")


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"No preset {name!r}. Presets: {', '.join(PRESETS)}") from None


def matching(cfg: RunConfig) -> str | None:
    """The preset whose config this is, if any."""
    return next((p.name for p in PRESETS.values() if p.config == cfg), None)
