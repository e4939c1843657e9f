"""Named experiments: a config, a short classroom explanation and the expected outcome.

Each answers one of the questions in KERAS-FACTS.md (`question`, 1-5) by a run you can watch.
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
           "Validation accuracy stays near 0.55: the model can only be right on the one window in "
           "eleven that sees the first value, and guesses on the rest.",
           _seed004.replace(layout="windows", length=10, stateful=False, shuffle="samples",
                            reset="never", batch_size=100, epochs=15), 4, 0.55),
    Preset("seed004-windows-stateful", "Windows of 10, stateful",
           "The same windows with stateful=True. Consecutive windows in a slot are not "
           "continuations of each other (window w+100 follows window w), so the carried state "
           "brings no useful memory.",
           "About 0.50: turning stateful on does not help when samples are not continuations.",
           _seed004.replace(layout="windows", length=10, stateful=True, shuffle="off",
                            reset="epoch", batch_size=100, epochs=15), 4, 0.50),
    Preset("seed004-steps-stateful", "One step per batch, batch 1, stateful",
           "The blog's winning setup: each sequence is fed one timestep per batch, batch size 1, "
           "and the state is reset after each sequence. The first value is carried in the state "
           "through all 20 steps.",
           "Close to 1.0 after one or two epochs (the blog needed 29 s an epoch).",
           _seed004.replace(layout="steps", stateful=True, shuffle="off", reset="sequence",
                            batch_size=1, epochs=2), 4, 1.0),
    Preset("seed004-steps-stateless", "One step per batch, batch 1, stateless",
           "The same stream without stateful: every one-step sample starts from zeros, so after "
           "the first step nothing remembers the first value.",
           "About 0.52: only the first step of each sequence can be right.",
           _seed004.replace(layout="steps", stateful=False, shuffle="off", reset="sequence",
                            batch_size=1, epochs=2), 4, 0.52),
    Preset("seed004-streams-stateful", "100 streams in parallel, stateful",
           "Stateful does not need batch size 1: 100 sequences are streamed side by side, slot i "
           "always continuing sequence i, one step per batch, reset after each sequence.",
           "Near 1.0 within the first epoch, a fraction of a second of training.",
           _seed004.replace(layout="steps", stateful=True, shuffle="off", reset="sequence",
                            batch_size=100, epochs=10), 3),
    Preset("stateless-resets", "Stateless: 1000 resets or 5?",
           "1000 sequences of 20 steps, batch size 200, stateless. Does Keras reset after each "
           "sequence or after each batch? Watch the state at the start of every sample.",
           "Every one of the 1000 samples starts from zeros each epoch: 1000 fresh starts, 0 "
           "carries. Per batch and per sequence are the same thing when nothing is carried.",
           _seed004.replace(layout="full", length=20, stateful=False, shuffle="samples",
                            reset="never", batch_size=200, epochs=10, lr=0.05), 1),
    Preset("shuffle-breaks-state", "Shuffling breaks a stateful model",
           "Chunks of 5 steps, stateful, but shuffle='samples' (fit's default). Chunks land in "
           "random slots, so the state carried into a chunk belongs to another sequence.",
           "Contaminated carries everywhere in the flow view; validation stays far below the "
           "unshuffled run, whose chunks 2-4 can only be right through the carried state.",
           _seed004.replace(layout="chunks", length=5, stateful=True, shuffle="samples",
                            reset="epoch", batch_size=50, epochs=10), 2),
    Preset("chunks-stateful", "Chunks of 5, stateful, in order",
           "The right way to train on sequences longer than one sample: cut them into chunks, "
           "keep chunk order, slot i continues sequence i, reset after the last chunk.",
           "Near 1.0: the first value reaches chunks 2-4 only through the carried state.",
           _seed004.replace(layout="chunks", length=5, stateful=True, shuffle="off",
                            reset="sequence", batch_size=50, epochs=10), 2),
    Preset("naive-chunks-mistake", "Naive chunks: the common mistake",
           "The same chunks, but batched in sequence order: the 4 chunks of one sequence sit side "
           "by side in a batch, so slot i carries chunk i of one sequence into chunk i of the "
           "next, unrelated sequence.",
           "Every carried arrow is contamination; validation stays near 0.6.",
           _seed004.replace(layout="naive_chunks", length=5, stateful=True, shuffle="off",
                            reset="epoch", batch_size=4, epochs=5), 2),
    Preset("partial-batch-trap", "The partial-batch trap",
           "1000 sequences in batches of 111 leave one sequence over. Keras would feed that last "
           "row as a batch of 1 and silently broadcast it over all 111 slots' states.",
           "The app trims the leftover sequence and says so; the run itself trains normally.",
           _seed004.replace(layout="chunks", length=5, stateful=True, shuffle="off",
                            reset="sequence", batch_size=111, epochs=5), 5),
    Preset("alphabet-batch1-positions", "Alphabet, batch 1: positions, not letters",
           "The tutorial: a stateful LSTM, batch size 1, learns A->B ... Y->Z one letter per "
           "batch, reset after each pass. It reaches 100%, but what did it learn?",
           "Started from any letter with a fresh state it answers B, then C, D...: it counts "
           "positions in the stream instead of reading the letter.",
           RunConfig(task="alphabet", layout="steps", stateful=True, shuffle="off",
                     reset="sequence", batch_size=1, units=16, epochs=150, lr=0.01,
                     sequences=2, seq_len=25, seed=4), 3),
    Preset("long-memory-stateful", "A cue 100 steps back, chunks of 10, stateful",
           "Sequences of 100 noisy steps; the cue (+1 or -1) is at step 0 and must be recalled at "
           "the end of every chunk. Only the first chunk sees it: the others need the state "
           "carried from the previous chunk of the same sequence.",
           "Near 1.0 validation accuracy; the stateless run of the same chunks stays near 0.5.",
           RunConfig(task="long_memory", layout="chunks", length=10, stateful=True, shuffle="off",
                     reset="sequence", batch_size=50, units=10, epochs=10, lr=0.01,
                     sequences=1200, seq_len=100, seed=4), 3),
    Preset("long-memory-stateless", "A cue 100 steps back, chunks of 10, stateless",
           "The same chunks without carrying state: 9 of every 10 chunks never see the cue.",
           "About 0.5-0.55: at best right on the first chunk, a coin flip on the other nine.",
           RunConfig(task="long_memory", layout="chunks", length=10, stateful=False, shuffle="off",
                     reset="sequence", batch_size=50, units=10, epochs=10, lr=0.01,
                     sequences=1200, seq_len=100, seed=4), 3),
    Preset("sine-forecast", "Noisy sine: forecast the next value",
           "Each sequence is a noisy sine with its own frequency and phase, cut into chunks of 10 "
           "and streamed statefully, so the model can keep estimating frequency across chunks.",
           "Validation MAE drops well below the noise-free guess of 0 (about 0.64).",
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
