"""Claims as data: every sentence a preset says about its outcome, checked by a run.

A claim names the preset run(s) it needs and how to judge them:
- Range: the final validation metric of one preset lies in [lo, hi].
- Contrast: a preset against its control, a preset that differs in EXACTLY one setting (the
  claim refuses to exist otherwise); the expected direction (above, below, within) and margin.
- Count: a count the preset teaches, read from the run's carry check (fresh starts, carried,
  contaminated, continuation) or its notes.
- Alphabet: the probe of the trained alphabet model from every start letter.
- Trap: the partial-batch demonstration in plain Keras (models/traps.py), no preset run.
- Bidi: the stateful Bidirectional demonstration in plain Keras (models/bidirectional.py), no
  preset run; it answers its own question (11) and is filed under the stateful chunks preset.

`python -m models claims` runs every preset once and evaluates every claim on those runs.
A claim fails when its words stop holding: fix the experiment or the words, not the bound.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from models.config import FIELDS, ConfigError, RunConfig
from models.presets import PRESETS
from models.tasks import LETTERS
from models.trace import REPLAY_TOLERANCE, gradient_summary


def differences(a: RunConfig, b: RunConfig) -> list[str]:
    """The settings in which two configs differ."""
    return [f.name for f in FIELDS if getattr(a, f.name) != getattr(b, f.name)]


@dataclass(frozen=True)
class Verdict:
    claim: "Claim"
    measured: str          # what the run(s) measured, in words with the numbers
    holds: bool
    values: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"id": self.claim.id, "preset": self.claim.preset, "kind": self.claim.kind,
                "statement": self.claim.statement, "runs": list(self.claim.runs),
                "measured": self.measured, "holds": self.holds, "values": self.values}


@dataclass(frozen=True)
class Claim:
    id: str
    preset: str

    kind = "claim"

    @property
    def runs(self) -> tuple[str, ...]:
        """The preset runs this claim needs."""
        return (self.preset,)

    @property
    def question(self) -> int:
        """The Answers question this claim checks (its preset's, unless it says otherwise)."""
        return PRESETS[self.preset].question

    @property
    def statement(self) -> str:
        raise NotImplementedError

    def evaluate(self, measures: dict[str, dict]) -> Verdict:
        raise NotImplementedError


def _fmt(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".") if x is not None else "none"


def _metric_words(m: dict) -> str:
    return "validation accuracy" if m["metric"] == "accuracy" else f"validation {m['metric'].upper()}"


@dataclass(frozen=True)
class Range(Claim):
    lo: float = 0.0
    hi: float = 1.0
    kind = "range"

    @property
    def statement(self) -> str:
        what = "validation MAE" if PRESETS[self.preset].config.task == "sine" else "validation accuracy"
        if self.hi >= 1.0 and what == "validation accuracy":
            bound = f"at least {_fmt(self.lo)}"
        elif self.lo <= 0.0:
            bound = f"at most {_fmt(self.hi)}"
        else:
            bound = f"between {_fmt(self.lo)} and {_fmt(self.hi)}"
        return f"{self.preset}: final {what} {bound}."

    def evaluate(self, measures):
        m = measures[self.preset]
        v = m["val"]
        ok = v is not None and self.lo <= v <= self.hi
        return Verdict(self, f"final {_metric_words(m)} {_fmt(v)} after {m['epochs']} epoch(s)",
                       ok, {"val": v})


@dataclass(frozen=True)
class Contrast(Claim):
    control: str = ""
    direction: str = "above"  # above | below | within
    margin: float = 0.1
    kind = "contrast"

    def __post_init__(self):
        if self.direction not in ("above", "below", "within"):
            raise ValueError(f"{self.id}: direction must be above, below or within")
        diff = differences(PRESETS[self.preset].config, PRESETS[self.control].config)
        if len(diff) != 1:
            raise ValueError(f"{self.id}: a contrast changes exactly one setting against its "
                             f"control; {self.preset} and {self.control} differ in "
                             f"{len(diff)}: {', '.join(diff) or 'none'}")

    @property
    def setting(self) -> str:
        return differences(PRESETS[self.preset].config, PRESETS[self.control].config)[0]

    @property
    def runs(self):
        return (self.preset, self.control)

    def _change(self) -> str:
        s = self.setting
        a, b = getattr(PRESETS[self.control].config, s), getattr(PRESETS[self.preset].config, s)
        fmt = lambda v: str(v).lower() if isinstance(v, bool) else f"'{v}'" if isinstance(v, str) else str(v)  # noqa: E731
        return f"{s}={fmt(b)} instead of {fmt(a)}"

    @property
    def statement(self) -> str:
        rel = {"above": f"at least {_fmt(self.margin)} above",
               "below": f"at least {_fmt(self.margin)} below",
               "within": f"within {_fmt(self.margin)} of"}[self.direction]
        return (f"{self.preset} ({self._change()}, nothing else changed): final validation "
                f"accuracy {rel} its control {self.control}.")

    def evaluate(self, measures):
        a, b = measures[self.preset]["val"], measures[self.control]["val"]
        if a is None or b is None:
            return Verdict(self, "no validation measured", False)
        d = a - b
        ok = {"above": d >= self.margin, "below": -d >= self.margin,
              "within": abs(d) <= self.margin}[self.direction]
        return Verdict(self, f"{self.preset} {_fmt(a)} vs {self.control} {_fmt(b)} "
                             f"(difference {d:+.3f})", bool(ok), {"val": a, "control_val": b})


@dataclass(frozen=True)
class Count(Claim):
    """A count the preset teaches: `fn(measure) -> (value, holds)`, in words."""
    words: str = ""
    fn: Callable[[dict], tuple[object, bool]] = None  # type: ignore[assignment]
    describe: Callable[[dict], str] = None  # type: ignore[assignment]
    kind = "count"

    @property
    def statement(self) -> str:
        return f"{self.preset}: {self.words}"

    def evaluate(self, measures):
        m = measures[self.preset]
        value, ok = self.fn(m)
        return Verdict(self, self.describe(m), bool(ok), {"value": value})


@dataclass(frozen=True)
class Inference(Count):
    """A count read from the inference measurement of a run (models/inference.py): predict
    with another batch size, the state predict/evaluate move, the batch-1 copy. It answers
    its own question (8), not its preset's."""
    q: int = 8
    kind = "inference"

    @property
    def question(self) -> int:
        return self.q

    def evaluate(self, measures):
        if not measures[self.preset].get("inference"):
            return Verdict(self, "no inference measured on this run", False)
        return super().evaluate(measures)


def alphabet_summary(answers: dict[str, list[str]]) -> str:
    """What the probe measured, per start letter, as one or two sentences.

    `answers`: start letter -> the model's answers, fed that letter from a fresh state and then
    its own answers back. Consecutive start letters with the same answers are grouped.
    """
    if not answers:
        return "The probe has not been run."
    starts = sorted(answers, key=LETTERS.index)
    firsts = [answers[s][0] for s in starts]
    common = max(set(firsts), key=firsts.count)
    n = len(starts)
    nxt = sum(answers[s][0] == LETTERS[LETTERS.index(s) + 1] for s in starts)
    if firsts.count(common) == n:
        first = f"From a fresh state the first answer is {common} from all {n} start letters"
    elif firsts.count(common) == 1:
        first = (f"From a fresh state the first answer differs with the start letter: it is the "
                 f"next letter from {nxt} of {n} start letters")
    else:
        others = ", ".join(f"{s}->{answers[s][0]}" for s in starts if answers[s][0] != common)
        first = (f"From a fresh state the first answer is {common} from {firsts.count(common)} of "
                 f"{n} start letters (otherwise {others})")
    groups: list[tuple[str, str, list[str]]] = []
    for s in starts:
        if groups and groups[-1][2] == answers[s] and LETTERS.index(s) == LETTERS.index(groups[-1][1]) + 1:
            groups[-1] = (groups[-1][0], s, answers[s])
        else:
            groups.append((s, s, answers[s]))
    span = lambda a, b: a if a == b else f"{a}-{b}"  # noqa: E731
    cont = "; ".join(f"from {span(a, b)}: {' '.join(ans)}" for a, b, ans in groups)
    k = len(next(iter(answers.values())))
    return f"{first}. Fed its own answers back, its first {k} answers are {cont}."


@dataclass(frozen=True)
class Alphabet(Claim):
    kind = "alphabet"

    @property
    def statement(self) -> str:
        return (f"{self.preset}: started from a fresh state, the trained model answers B to every "
                f"start letter A-Y: it counts positions since the reset, it does not read the letter.")

    def evaluate(self, measures):
        ans = measures[self.preset].get("alphabet") or {}
        firsts = {s: a[0] for s, a in ans.items()}
        ok = len(firsts) == 25 and all(f == "B" for f in firsts.values())
        return Verdict(self, alphabet_summary(ans), ok, {"answers": ans})


@dataclass(frozen=True)
class Trap(Claim):
    leftover: int = 1
    kind = "trap"

    @property
    def runs(self):
        return ()

    @property
    def statement(self) -> str:
        from models import traps
        head = (f"Plain Keras, a stateful LSTM with Input(batch_shape=({traps.B}, {traps.L}, "
                f"{traps.F})), fit(batch_size={traps.B}, shuffle=False) on "
                f"{2 * traps.B + self.leftover} samples ({self.leftover} left over)")
        if self.leftover == 1:
            return (f"{head}: fit trains without a word, and every one of the {traps.B} slots' "
                    f"states is advanced with that single leftover sample.")
        return f"{head}: fit fails with 'Incompatible shapes'."

    def evaluate(self, measures):
        r = measures.get(f"trap{self.leftover}")
        if r is None:
            from models import traps
            r = traps.partial_batch(self.leftover)
        if self.leftover == 1:
            ok = r["trained"] and r["slots_fed_leftover"] == r["batch_size"]
            words = (f"trained: {r['trained']}; {r['slots_fed_leftover']} of {r['batch_size']} "
                     f"slots hold exactly the state of 'own previous state + the leftover sample' "
                     f"(max difference {r['max_broadcast_error']}); the slots' states were "
                     f"{r['distinct_rows_before']} distinct rows before and "
                     f"{r['distinct_rows_after']} after" if r["trained"] else f"error: {r['error']}")
        else:
            ok = (not r["trained"]) and "Incompatible shapes" in (r["error"] or "")
            words = f"error: {r['error']}" if r["error"] else "fit trained without an error"
        return Verdict(self, words, bool(ok), {k: v for k, v in r.items()})


@dataclass(frozen=True)
class Bidi(Claim):
    """A sentence about a stateful Bidirectional LSTM, measured in plain Keras
    (models/bidirectional.py, measure key "bidirectional"). what: forward | backward | reset."""
    what: str = "forward"
    q: int = 11
    kind = "bidirectional"

    @property
    def runs(self):
        return ()

    @property
    def question(self) -> int:
        return self.q

    @property
    def statement(self) -> str:
        from models import bidirectional as bd
        head = (f"Plain Keras, Bidirectional(LSTM({bd.UNITS}, stateful=True)) on "
                f"Input(batch_shape=({bd.B}, {bd.L}, {bd.F})), fed steps 1-{bd.L} then "
                f"{bd.L + 1}-{2 * bd.L} of the same sequences")
        if self.what == "forward":
            return (f"{head}: the forward layer stores its state at step {bd.L} and starts the "
                    f"second chunk from it, exactly as one pass over steps 1-{2 * bd.L}.")
        if self.what == "backward":
            return (f"{head}: the backward layer reads the first chunk from step {bd.L} down to "
                    f"1, so it stores the state at step 1 (the start of the chunk), and starts "
                    f"the second chunk at step {2 * bd.L} from it; a backward pass over the "
                    f"whole sequence would start fresh at step {2 * bd.L}, and the second "
                    f"chunk's backward output is measurably different from it.")
        return (f"{head}: the model has no reset_states(); the Bidirectional layer's "
                f"reset_states() and reset_state() zero both directions' states, while "
                f"forward_layer.reset_state() leaves the backward state as it was.")

    def evaluate(self, measures):
        from models import bidirectional as bd
        r = measures.get("bidirectional")
        if r is None:
            r = bd.measure()
        eq = lambda v: v is not None and v <= bd.EQUAL  # noqa: E731
        apart = lambda v: v is not None and v > bd.APART  # noqa: E731
        g = lambda v: "no state stored" if v is None else f"{v:.2g}"  # noqa: E731
        if self.what == "forward":
            f = r["forward"]
            ok = (r["stateful"] and eq(f["stored_vs_step_L"]) and eq(f["chunk2_from_stored"])
                  and eq(f["chunk2_vs_whole"]) and apart(f["chunk2_from_zeros"]))
            words = (f"stored forward state vs the state at step {bd.L}: {g(f['stored_vs_step_L'])}; "
                     f"second chunk's forward output vs a plain LSTM started from the stored "
                     f"state: {g(f['chunk2_from_stored'])}, from zeros: {g(f['chunk2_from_zeros'])}, "
                     f"vs one pass over 1-{2 * bd.L}: {g(f['chunk2_vs_whole'])}")
            return Verdict(self, words, bool(ok), dict(f))
        if self.what == "backward":
            b = r["backward"]
            ok = (r["stateful"] and eq(b["stored_vs_step_1"]) and apart(b["stored_h_vs_step_L"])
                  and eq(b["chunk2_from_stored"]) and eq(b["chunk2_from_step_1"])
                  and apart(b["chunk2_from_zeros"]) and apart(b["chunk2_vs_whole"]))
            words = (f"stored backward state vs the state at step 1: {g(b['stored_vs_step_1'])}, "
                     f"vs h at step {bd.L}: {g(b['stored_h_vs_step_L'])}; second chunk's "
                     f"backward output vs a plain LSTM over steps {2 * bd.L}..{bd.L + 1} started "
                     f"from step 1's state: {g(b['chunk2_from_step_1'])}, from zeros: "
                     f"{g(b['chunk2_from_zeros'])}; vs the whole sequence read backwards (at step "
                     f"{bd.L + 1}): {g(b['chunk2_vs_whole'])}, the output itself being at most "
                     f"{b['state_size']:.2g}")
            return Verdict(self, words, bool(ok), dict(b))
        z = r["reset"]
        m = z["methods"]
        both = lambda k: k in z and z[k]["forward"] == 0.0 and z[k]["backward"] == 0.0  # noqa: E731
        fo = z.get("forward_layer.reset_state") or {}
        ok = (not m["model.reset_states"] and both("layer.reset_states") and both("layer.reset_state")
              and fo.get("forward") == 0.0 and (fo.get("backward") or 0.0) > bd.APART
              and fo.get("backward_moved") == 0.0)
        if "layer.reset_states" not in z:
            words = "no state stored: nothing to reset"
        else:
            words = (f"Keras {r['keras']}: model.reset_states exists: {m['model.reset_states']}; "
                     + "; ".join(f"after {k}(): largest forward state {z[k]['forward']:.2g}, "
                                 f"backward {z[k]['backward']:.2g}"
                                 for k in ("layer.reset_states", "layer.reset_state",
                                           "forward_layer.reset_state"))
                     + f" (the backward state moved by {z['forward_layer.reset_state']['backward_moved']:.2g})")
        return Verdict(self, words, bool(ok), {k: v for k, v in z.items()})


# ---- measuring a run ----------------------------------------------------------------------
def epoch_counts(trace, epoch: int | None = None) -> dict | None:
    """The carry check of one recorded epoch (the last recorded one by default)."""
    if trace is None or trace.n == 0:
        return None
    from models.trace import Trace
    e = int(trace.epoch[-1]) if epoch is None else int(epoch)
    sel = np.nonzero(trace.epoch == e)[0]
    if len(sel) == 0:
        return None
    sl = slice(int(sel[0]), int(sel[-1]) + 1)
    keys = trace.state_keys() + ("seq_id", "part", "epoch", "batch", "reset_before", "loss",
                                 "accuracy")
    sub = Trace(**{"c0": None, "cT": None, **{k: getattr(trace, k)[sl] for k in keys}},
                config=trace.config, upper={k: v[sl] for k, v in trace.upper.items()},
                reset_slots=None if trace.reset_slots is None else trace.reset_slots[sl],
                recorded=trace.index[sl].astype(np.int32))
    return {**sub.carry_check(), "epoch": e, "batches": len(sel)}


def _slot_reset_batches(tr) -> int:
    """Recorded batches that reset some slots and not others (per-slot resets, packed)."""
    r = tr.reset_slots
    return 0 if r is None else int((r.any(axis=1) & ~r.all(axis=1)).sum())


def _direction_rows(m: dict) -> list[dict]:
    """The carry check's per-direction rows (a bidirectional run's only)."""
    return list(m["carry"].get("directions") or [])


def _both_directions_hold(m: dict) -> bool:
    rows, carried = _direction_rows(m), m["carry"]["carried"]
    if [r["direction"] for r in rows] != ["forward", "backward"] or carried == 0:
        return False
    fw, bw = rows
    return (all(r["max_carry_error"] == 0.0 and r["max_replay_error"] is not None
                and r["max_replay_error"] <= REPLAY_TOLERANCE for r in rows)
            and fw["continuation"] == carried and bw["wrong_end"] == carried)


def _layer_rows(m: dict) -> list[dict]:
    """The carry check's per-layer rows (a stacked run's only)."""
    return list(m["carry"].get("layers") or [])


def final_val(epochs: list[dict]) -> float | None:
    for e in reversed(epochs or []):
        if e.get("val_accuracy") is not None:
            return float(e["val_accuracy"])
    return None


def measure(result: dict, probe: bool = True) -> dict:
    """What claims read from one finished run: a result dict (trace, epochs, weights, cfg,
    metric, notes), as the engine, the CLI and the page's result store all give."""
    cfg, tr = result["cfg"], result["trace"]
    m = {"preset": result.get("preset"), "config": cfg.to_dict(), "metric": result["metric"],
         "epochs": len(result["epochs"]), "val": final_val(result["epochs"]),
         "carry": tr.carry_check(), "last_epoch": epoch_counts(tr),
         "n_train": cfg.n_train, "notes": list(result.get("notes") or []),
         "per_epoch": [c for c in (epoch_counts(tr, e) for e in sorted(set(tr.epoch.tolist())))
                       if c is not None],
         "zero_guess": _zero_guess(cfg) if cfg.task == "sine" else None,
         "gradients": gradient_summary(tr), "cell": cfg.cell,
         "slot_resets": _slot_reset_batches(tr),
         "state_keys": list(tr.state_keys())}
    if probe and result.get("weights") is not None and any(
            isinstance(c, Inference) and c.preset == result.get("preset") for c in CLAIMS):
        from models import inference
        m["inference"] = inference.for_run(cfg, result["weights"])
    if probe and cfg.task == "alphabet" and result.get("weights") is not None:
        from models.engine import probe_alphabet
        m["alphabet"] = {s: probe_alphabet(result["weights"], cfg, s, 5) for s in LETTERS[:-1]}
    return m


def _zero_guess(cfg: RunConfig) -> float:
    """MAE of always answering 0 on the validation samples the engine scores."""
    from models import layouts
    from models.tasks import make_task
    d = make_task(cfg)
    v = layouts.arrange(d.x_val, d.y_val, cfg.replace(shuffle="off"), pad=True)
    idx = v.order[v.order >= 0]
    return float(np.abs(v.y[idx]).mean())


def run_preset(name: str, on_event=None) -> dict:
    """Train a preset with its own settings (pooled nets: one compile per shape)."""
    from models.engine import Engine
    cfg = PRESETS[name].config
    eng = Engine(cfg)
    try:
        r = eng.run(on_event=on_event)
    finally:
        eng.close()
    return measure({"preset": name, "cfg": cfg, "trace": r.trace, "epochs": r.epochs,
                    "weights": r.weights, "metric": r.metric, "notes": r.notes})


# ---- the claims -----------------------------------------------------------------------------
def _last(m):
    return m["last_epoch"] or {}


def _grad(m):
    return m.get("gradients")


def _grad_words(g: dict | None) -> str:
    if g is None:
        return "no gradients recorded"
    acc = g["carried_accuracy"]
    return (f"{g['steps']} timestep(s) per batch; median |dL/dh0| {g['grad_h0_median']:.2g} "
            + (f"and |dL/dc0| {g['grad_c0_median']:.2g} " if g["grad_c0_median"] is not None else "")
            + f"at the carried boundaries of epoch {g['epoch']} "
            f"(cut there); carried batches right {acc:.3f} of the time in epoch {g['last_epoch']}"
            if g["grad_h0_median"] is not None and acc is not None else
            f"{g['steps']} timestep(s) per batch; no carried batches recorded")


def _inf(m):
    return m["inference"]


def slot_continues(claim_id: str, preset: str,
                   words: str = "every carried state is a continuation of the same sequence "
                                "(0 contaminated).") -> Count:
    """The stateful layouts' promise: each slot goes on with its own sequence (it fails on a
    run with any broken or contaminated carry, or with nothing carried)."""
    return Count(claim_id, preset, words=words,
                 fn=lambda m: (m["carry"]["continuation"], m["carry"]["carried"] > 0
                               and m["carry"]["continuation"] == m["carry"]["carried"]),
                 describe=lambda m: f"{m['carry']['carried']:,} carried, "
                                    f"{m['carry']['continuation']:,} continuations, "
                                    f"{m['carry']['contaminated']:,} contaminated")


def _inference_claims(name: str) -> tuple[Claim, ...]:
    from models.inference import STREAM_TOLERANCE
    cfg = PRESETS[name].config
    B, L = cfg.batch_size, cfg.sample_len

    def refuses(m):
        p = _inf(m)["predict"]
        ok = (f"Expected batch size: {B}" in (p["default"] or "")
              and "Received batch size: 32" in (p["default"] or "")
              and "Received batch size: 1" in (p["one_sample"] or "")
              and p["with_batch_size"] is None and p["rows"] == B)
        return p, ok

    def refusal_words(m):
        p = _inf(m)["predict"]
        short = lambda e: "no error" if e is None else e.split(" Arguments received")[0]  # noqa: E731
        return (f"predict(x) with {p['batch_size']} samples: {short(p['default'])}; one sample: "
                f"{short(p['one_sample'])}; predict(x, batch_size={p['batch_size']}): "
                + (f"{p['rows']} rows" if p["with_batch_size"] is None else p["with_batch_size"]))
    return (
        Inference("predict-needs-batch-size", name,
                  words=f"on the trained model (a stateful layer built for batches of {B}), "
                        f"model.predict(x) fails even with exactly {B} samples, because "
                        f"predict's default batch_size is 32 and the layer takes only batches "
                        f"of {B}; one sample fails the same way; predict(x, batch_size={B}) "
                        f"works and returns {B} rows.",
                  fn=refuses, describe=refusal_words),
        Inference("predict-evaluate-move-state", name,
                  words="predict, predict_on_batch and evaluate each move the stored state: "
                        "after one call of each, the slots' state differs from before it.",
                  fn=lambda m: (_inf(m)["predict"]["moved"],
                                all(v > 0 for v in _inf(m)["predict"]["moved"].values())),
                  describe=lambda m: "largest change of the stored state: " + ", ".join(
                      f"{k} {v:.3g}" for k, v in _inf(m)["predict"]["moved"].items())),
        Inference("batch1-copy-matches-slot0", name,
                  words=f"a batch-1 stateful copy given the trained weights, fed a validation "
                        f"sequence one step per call, gives the same answers and states as the "
                        f"trained batch-{B} model fed that sequence in slot 0, {L} steps per "
                        f"call (largest difference at most {STREAM_TOLERANCE:g}: float32 "
                        f"rounding).",
                  fn=lambda m: (_inf(m)["max_difference"],
                                _inf(m)["max_difference"] <= STREAM_TOLERANCE),
                  describe=lambda m: f"{_inf(m)['cell']}, {_inf(m)['steps']} steps: largest "
                                     f"difference {_inf(m)['max_difference']:.2g} (answers, "
                                     f"h{', c' if _inf(m)['cell'] == 'LSTM' else ''}) at "
                                     f"{len(_inf(m)['slot0']['steps'])} chunk ends"),
        Inference("batch1-copy-answers", name,
                  words=f"streamed one step per call from a reset, the batch-1 copy answers "
                        f"20 validation sequences right at the end of every chunk of {L} "
                        f"steps at least 99% of the time.",
                  fn=lambda m: (_inf(m).get("stream_accuracy"),
                                (_inf(m).get("stream_accuracy") or 0) >= 0.99
                                and _inf(m).get("streams") == 20),
                  describe=lambda m: f"right {_fmt(_inf(m).get('stream_accuracy'))} of the "
                                     f"time at chunk ends over {_inf(m).get('streams')} "
                                     f"streamed validation sequences"),
    )


CLAIMS: tuple[Claim, ...] = (
    # Question 4: the blog's first-value experiment.
    Range("windows-stateless-near-chance", "seed004-windows-stateless", 0.5, 0.6),
    Range("windows-stateful-near-chance", "seed004-windows-stateful", 0.5, 0.6),
    Count("windows-stateful-contaminated", "seed004-windows-stateful",
          words="every carried state lands on another sequence.",
          fn=lambda m: (m["carry"]["contaminated"],
                        m["carry"]["carried"] > 0 and m["carry"]["contaminated"] == m["carry"]["carried"]),
          describe=lambda m: f"{m['carry']['contaminated']:,} of {m['carry']['carried']:,} carried "
                             f"states contaminated"),
    Contrast("windows-stateful-no-help", "seed004-windows-stateful",
             control="seed004-windows-stateless", direction="within", margin=0.05),
    Range("steps-stateful-learns", "seed004-steps-stateful", 0.99, 1.0),
    Range("steps-stateless-near-chance", "seed004-steps-stateless", 0.5, 0.6),
    Contrast("steps-state-is-the-memory", "seed004-steps-stateful",
             control="seed004-steps-stateless", direction="above", margin=0.4),
    # Question 3: many streams side by side.
    Range("streams-learn", "seed004-streams-stateful", 0.99, 1.0),
    slot_continues("streams-slot-continues", "seed004-streams-stateful",
                   words="every carried state is a continuation: slot i goes on with the next "
                         "step of its own sequence (0 contaminated)."),
    # Question 1: stateless resets.
    Count("stateless-fresh-per-sample", "stateless-resets",
          words=f"in every epoch, fresh starts equal the number of training samples "
                f"({PRESETS['stateless-resets'].config.n_train:,}) and 0 states are carried.",
          fn=lambda m: (m["per_epoch"],
                        len(m["per_epoch"]) == m["epochs"]
                        and all(e["fresh_starts"] == m["n_train"] and e["carried"] == 0
                                for e in m["per_epoch"])),
          describe=lambda m: f"fresh starts per epoch {sorted({e['fresh_starts'] for e in m['per_epoch']})}, "
                             f"carried {sorted({e['carried'] for e in m['per_epoch']})}, over "
                             f"{len(m['per_epoch'])} recorded epochs; {m['n_train']:,} training samples"),
    Range("stateless-learns-full-sequences", "stateless-resets", 0.99, 1.0),
    # Question 2: chunks, shuffling, naive chunks.
    Range("chunks-learn", "chunks-stateful", 0.99, 1.0),
    slot_continues("chunks-slot-continues", "chunks-stateful"),
    Contrast("shuffle-batch-breaks", "shuffle-breaks-state", control="chunks-stateful",
             direction="below", margin=0.25),
    Count("shuffle-batch-contaminates", "shuffle-breaks-state",
          words="at least 9 in 10 carried states land on a different sequence.",
          fn=lambda m: (m["carry"]["contaminated"],
                        m["carry"]["carried"] > 0 and m["carry"]["contaminated"] >= 0.9 * m["carry"]["carried"]),
          describe=lambda m: f"{m['carry']['contaminated']:,} of {m['carry']['carried']:,} carried "
                             f"states contaminated"),
    Contrast("shuffle-samples-worse", "shuffle-samples-resets", control="chunks-stateful",
             direction="below", margin=0.2),
    Count("shuffle-samples-carries-nothing", "shuffle-samples-resets",
          words="the reset after each sequence fires before every batch: 0 states carried.",
          fn=lambda m: (m["carry"]["carried"], m["carry"]["carried"] == 0 and m["carry"]["fresh_starts"] > 0),
          describe=lambda m: f"{m['carry']['carried']:,} carried, {m['carry']['fresh_starts']:,} "
                             f"fresh starts"),
    Range("naive-chunks-near-chance", "naive-chunks-mistake", 0.55, 0.7),
    Count("naive-chunks-all-contaminated", "naive-chunks-mistake",
          words="every carried state is contamination (0 continuations).",
          fn=lambda m: (m["carry"]["contaminated"],
                        m["carry"]["carried"] > 0 and m["carry"]["contaminated"] == m["carry"]["carried"]),
          describe=lambda m: f"{m['carry']['contaminated']:,} of {m['carry']['carried']:,} carried "
                             f"states contaminated, {m['carry']['continuation']:,} continuations"),
    # Question 5: the partial batch.
    Count("partial-batch-leaves-one", "partial-batch-trap",
          words="the config leaves exactly 1 sample for a final partial batch; the app trims it "
                "and says so.",
          fn=lambda m: (m["notes"], any(n.startswith("Trimmed 1 of ") for n in m["notes"])),
          describe=lambda m: "; ".join(n for n in m["notes"] if n.startswith("Trimmed")) or "nothing trimmed"),
    Range("partial-batch-trimmed-learns", "partial-batch-trap", 0.99, 1.0),
    Trap("keras-one-leftover-broadcast", "partial-batch-trap", leftover=1),
    Trap("keras-two-leftover-fails", "partial-batch-trap", leftover=2),
    # Question 3: the alphabet.
    Range("alphabet-fits", "alphabet-batch1-positions", 0.99, 1.0),
    Alphabet("alphabet-positions", "alphabet-batch1-positions"),
    # Question 6: gradients stop at the batch boundary; the state still carries the memory.
    Count("gradient-cut-still-learns", "gradient-stops-streams",
          words="each batch is 1 timestep, so the loss gradient reaches 1 step back and is cut "
                "at every batch boundary (|dL/dh0| > 0 is measured there and passed to no earlier "
                "batch); still, in the last epoch the batches that start "
                "from a carried state, whose inputs are all zeros, are right at least 99% of "
                "the time: the first value travels in the state, not in the gradient.",
          fn=lambda m: (_grad(m), _grad(m) is not None and _grad(m)["steps"] == 1
                        and _grad(m)["carried"] > 0 and (_grad(m)["grad_h0_median"] or 0) > 0
                        and (_grad(m)["carried_accuracy"] or 0) >= 0.99),
          describe=lambda m: _grad_words(_grad(m))),
    # Question 7: GRU and SimpleRNN carry h alone, the same way the LSTM carries h and c.
    *(claim for name in ("gru-chunks-stateful", "simplernn-chunks-stateful") for claim in (
        Range(f"{name[:-16]}-chunks-learn", name, 0.99, 1.0),
        Contrast(f"{name[:-16]}-like-lstm", name, control="chunks-stateful", direction="within",
                 margin=0.05),
        slot_continues(f"{name[:-16]}-slot-continues", name),
        Count(f"{name[:-16]}-h-only-carried", name,
              words="the trace holds h alone (no c), carried exactly (0 difference between a "
                    "slot's hT and its next h0), and the replay with the cell's own equations "
                    "from the recorded h0 matches.",
              fn=lambda m: (m["carry"]["max_replay_error"],
                            m["state_keys"] == ["h0", "hT"] and m["carry"]["carried"] > 0
                            and m["carry"]["max_carry_error"] == 0.0
                            and m["carry"]["max_replay_error"] is not None
                            and m["carry"]["max_replay_error"] <= REPLAY_TOLERANCE),
              describe=lambda m: f"{m['cell']} trace holds {', '.join(m['state_keys'])}; "
                                 f"{m['carry']['carried']:,} carried, largest carry error "
                                 f"{m['carry']['max_carry_error']:g}; replay of "
                                 f"{m['carry']['replayed']} batches off by at most "
                                 f"{m['carry']['max_replay_error']:.1e}"))),
    # Question 9: stacked layers, each with its own per-slot state, carried and replayed.
    Range("stacked-chunks-learn", "stacked-chunks-stateful", 0.99, 1.0),
    Contrast("stacked-like-one-layer", "stacked-chunks-stateful", control="chunks-stateful",
             direction="within", margin=0.05),
    slot_continues("stacked-slot-continues", "stacked-chunks-stateful"),
    Count("stacked-every-layer-carried", "stacked-chunks-stateful",
          words="the trace holds each of the 2 layers' own states, each carried exactly (0 "
                "difference between a slot's hT and its next h0, per layer), and the replay "
                "layer by layer (layer 2 fed layer 1's recomputed output sequence) matches "
                "every layer.",
          fn=lambda m: (_layer_rows(m), len(_layer_rows(m)) == 2 and m["carry"]["carried"] > 0
                        and all(r["max_carry_error"] == 0.0 and r["max_replay_error"] is not None
                                and r["max_replay_error"] <= REPLAY_TOLERANCE
                                for r in _layer_rows(m))),
          describe=lambda m: "; ".join(
              f"layer {r['layer']}: carry error {r['max_carry_error']:g}, replay off by "
              + ("nothing replayed" if r["max_replay_error"] is None
                 else f"{r['max_replay_error']:.1e}") for r in _layer_rows(m))
          or f"{m['config'].get('layers', 1)} layer: no per-layer states"),
    # Question 11: a Bidirectional layer trained by the engine, each direction carried on its own.
    Range("bidirectional-chunks-learn", "bidirectional-chunks-stateful", 0.99, 1.0),
    Contrast("bidirectional-like-one-direction", "bidirectional-chunks-stateful",
             control="chunks-stateful", direction="within", margin=0.05),
    Count("bidirectional-backward-wrong-end", "bidirectional-chunks-stateful",
          words="both directions' states are carried exactly (0 difference between a slot's hT "
                "and its next h0, per direction) and replayed from the recorded h0 (the backward "
                "one over the inputs reversed in time); every forward carry is a continuation "
                "and every backward carry enters the next chunk at the wrong end (the state at "
                "chunk k's first step starts chunk k+1 at its last step).",
          fn=lambda m: (_direction_rows(m), _both_directions_hold(m)),
          describe=lambda m: "; ".join(
              f"{r['direction']}: carry error {r['max_carry_error']:g}, replay off by "
              + ("nothing replayed" if r["max_replay_error"] is None
                 else f"{r['max_replay_error']:.1e}")
              + f", {r['continuation']:,} continuations, {r['wrong_end']:,} wrong-end carries"
              for r in _direction_rows(m))
          or f"{m['carry']['carried']:,} carried, one direction only: no backward states"),
    # Question 10: sequences of different lengths, packed; only the slot that ended is reset.
    Range("packed-learns", "packed-slot-resets", 0.99, 1.0),
    Count("packed-resets-only-the-slot", "packed-slot-resets",
          words="every carried state is a continuation of the same sequence (0 contaminated), "
                "while batches reset some slots and not others (the slot whose sequence ended).",
          fn=lambda m: (m["slot_resets"], m["slot_resets"] > 0 and m["carry"]["carried"] > 0
                        and m["carry"]["continuation"] == m["carry"]["carried"]),
          describe=lambda m: f"{m['slot_resets']:,} batches reset some slots and not others; "
                             f"{m['carry']['carried']:,} carried, "
                             f"{m['carry']['continuation']:,} continuations, "
                             f"{m['carry']['contaminated']:,} contaminated"),
    Contrast("packed-needs-slot-resets", "packed-slot-resets", control="packed-no-slot-resets",
             direction="above", margin=0.05),
    Count("packed-without-resets-contaminates", "packed-no-slot-resets",
          words="at least 1 in 3 carried states lands on another sequence (a new sequence "
                "starts from the state the slot's previous sequence ended with).",
          fn=lambda m: (m["carry"]["contaminated"], m["carry"]["carried"] > 0
                        and 3 * m["carry"]["contaminated"] >= m["carry"]["carried"]),
          describe=lambda m: f"{m['carry']['contaminated']:,} of {m['carry']['carried']:,} "
                             f"carried states contaminated"),
    # Question 8: inference with another batch size, on the chunks run (batch 50).
    *_inference_claims("chunks-stateful"),
    # Question 11: a stateful Bidirectional layer, in plain Keras (filed under the chunks run).
    Bidi("keras-bidi-forward-carries", "chunks-stateful", what="forward"),
    Bidi("keras-bidi-backward-wrong-end", "chunks-stateful", what="backward"),
    Bidi("keras-bidi-reset-both", "chunks-stateful", what="reset"),
    # The long-memory pair and the sine forecast.
    Range("long-memory-stateful-learns", "long-memory-stateful", 0.99, 1.0),
    Range("long-memory-stateless-chance", "long-memory-stateless", 0.45, 0.55),
    Contrast("long-memory-needs-state", "long-memory-stateful", control="long-memory-stateless",
             direction="above", margin=0.4),
    Range("sine-beats-zero", "sine-forecast", 0.0, 0.2),
    slot_continues("sine-slot-continues", "sine-forecast"),
    Count("sine-third-of-zero-guess", "sine-forecast",
          words="validation MAE is less than a third of the MAE of always guessing 0 on the same "
                "validation samples.",
          fn=lambda m: (m["zero_guess"], m["val"] is not None and m["zero_guess"] is not None
                        and m["val"] < m["zero_guess"] / 3),
          describe=lambda m: f"validation MAE {_fmt(m['val'])}, always 0: {_fmt(m['zero_guess'])}"),
)
BY_ID = {c.id: c for c in CLAIMS}


def for_preset(name: str) -> list[Claim]:
    return [c for c in CLAIMS if c.preset == name]


def needed_runs(claims=CLAIMS) -> list[str]:
    out: list[str] = []
    for c in claims:
        out += [r for r in c.runs if r not in out]
    return out


def run_all(claims=CLAIMS, progress: Callable[[str], None] = lambda s: None,
            measured: dict[str, dict] | None = None) -> tuple[list[Verdict], dict]:
    """Run every preset the claims need once, then evaluate every claim on those runs.
    `measured`: preset -> `measure()` of a finished run of exactly that preset (the page's,
    say): those presets are not trained again."""
    from models import traps
    import time
    measures: dict[str, dict] = dict(measured or {})
    seconds: dict[str, float] = {}
    for name in needed_runs(claims):
        if name in measures:
            continue
        progress(name)
        t = time.perf_counter()
        try:
            measures[name] = run_preset(name)
        except ConfigError as e:  # the preset cannot run on this server: its claims fail
            measures[name] = {"error": str(e)}
        seconds[name] = time.perf_counter() - t
    for c in claims:
        if isinstance(c, Trap) and f"trap{c.leftover}" not in measures:
            progress(f"partial-batch demo, {c.leftover} left over")
            t = time.perf_counter()
            measures[f"trap{c.leftover}"] = traps.partial_batch(c.leftover)
            seconds[f"trap{c.leftover}"] = time.perf_counter() - t
        if isinstance(c, Bidi) and "bidirectional" not in measures:
            from models import bidirectional
            progress("stateful Bidirectional demo")
            t = time.perf_counter()
            measures["bidirectional"] = bidirectional.measure()
            seconds["bidirectional"] = time.perf_counter() - t
    return [evaluate(c, measures) for c in claims], {"measures": measures, "seconds": seconds}


def evaluate(claim: Claim, measures: dict[str, dict]) -> Verdict:
    """Judge a claim on measured runs; a run that is missing or could not run fails it."""
    missing = [r for r in claim.runs if r not in measures]
    if missing:
        return Verdict(claim, f"not measured: {', '.join(missing)}", False)
    errors = [f"{r}: {measures[r]['error']}" for r in claim.runs if "error" in measures[r]]
    if errors:
        return Verdict(claim, "could not run: " + "; ".join(errors), False)
    return claim.evaluate(measures)


__all__ = ["CLAIMS", "BY_ID", "Claim", "Range", "Contrast", "Count", "Alphabet", "Trap", "Bidi", "Verdict",
           "Inference",
           "alphabet_summary", "differences", "measure", "run_all", "for_preset", "epoch_counts",
           "final_val"]
