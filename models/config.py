"""RunConfig: one typed, validated table of every setting of a run. It is also the URL.

Each field is declared once in FIELDS (type, default, allowed values or range, help); the
dataclass, validation, the query-string round trip and the UI widgets all read that table.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from models import limits

TASKS = ("first_element", "alphabet", "long_memory", "sine", "user")
LAYOUTS = ("full", "windows", "chunks", "naive_chunks", "steps", "packed")
SHUFFLES = ("off", "samples", "batch")
RESETS = ("never", "epoch", "sequence")
REMAINDERS = ("trim", "refuse")
MAX_LAYERS = 3  # stacked recurrent layers (models/stacked.py)
CELLS = ("LSTM", "GRU", "SimpleRNN")  # models/cells.py: the state each carries, its equations


class ConfigError(ValueError):
    """A setting (or combination) that cannot run. The message is written for the user."""


@dataclass(frozen=True)
class Field:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple = ()
    lo: float | None = None
    hi: float | None = None
    label: str = ""


def _f(name, type_, default, help, choices=(), lo=None, hi=None, label=""):
    return Field(name, type_, default, help, choices, lo, hi, label or name.replace("_", " ").capitalize())


# Defaults reproduce the blog's fast experiment (seed004-streams-stateful).
FIELDS: tuple[Field, ...] = (
    _f("task", str, "first_element", "What the network must learn.", TASKS),
    _f("layout", str, "steps", "How sequences are cut into samples and placed into batches. "
       "packed: sequences of different lengths one after another in each slot, resetting only "
       "the slot whose sequence ended.", LAYOUTS),
    _f("stateful", bool, True, "Keep each slot's final state as the next batch's initial state."),
    _f("shuffle", str, "off", "off keeps batch order; samples shuffles all samples each epoch "
       "(fit's shuffle=True); batch permutes samples inside each batch (Keras 3's shuffle='batch').",
       SHUFFLES),
    _f("reset", str, "sequence", "When stored states are zeroed (stateful runs only).", RESETS,
       label="Reset policy"),
    _f("batch_size", int, 100, "Slots per batch: the number of states kept side by side.",
       lo=1, hi=limits.MAX_BATCH_SIZE),
    _f("length", int, 1, "Chunk or window length in timesteps (steps: 1; full: the sequence length).",
       lo=1, hi=limits.MAX_SEQ_LEN),
    _f("cell", str, "LSTM", "The recurrent layer: LSTM carries two state tensors (h and c), GRU "
       "and SimpleRNN carry one (h).", CELLS, label="Cell type"),
    _f("layers", int, 1, "Recurrent layers stacked (1-3): each layer has its own per-slot state, "
       "and each feeds its whole output sequence to the next.", lo=1, hi=MAX_LAYERS,
       label="Stacked layers"),
    _f("bidirectional", bool, False, "Wrap the recurrent layer (each stacked layer) in "
       "keras.layers.Bidirectional: a forward and a backward layer, each with its own per-slot "
       "state; a layer above the first reads both directions' outputs side by side. A stateful "
       "backward layer hands the state at a chunk's first step to the next chunk's last step.",
       label="Bidirectional"),
    _f("units", int, 10, "Recurrent units (size of h, and of c for an LSTM).", lo=1,
       hi=limits.MAX_UNITS),
    _f("epochs", int, 10, "Passes over the training data.", lo=1, hi=limits.MAX_EPOCHS),
    _f("lr", float, 0.01, "Adam learning rate.", lo=1e-5, hi=1.0, label="Learning rate"),
    _f("seed", int, 4, "Seeds data, initial weights and shuffling: same seed, same run.",
       lo=0, hi=2**31 - 1),
    _f("sequences", int, 1200, "Sequences generated (the last sixth are held out for validation).",
       lo=2, hi=limits.MAX_SEQUENCES),
    _f("seq_len", int, 20, "Timesteps per sequence.", lo=2, hi=limits.MAX_SEQ_LEN,
       label="Sequence length"),
    _f("remainder", str, "trim", "A final partial batch is never fed silently: trim it or refuse.",
       REMAINDERS),
)
FIELD = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class RunConfig:
    task: str = FIELD["task"].default
    layout: str = FIELD["layout"].default
    stateful: bool = FIELD["stateful"].default
    shuffle: str = FIELD["shuffle"].default
    reset: str = FIELD["reset"].default
    batch_size: int = FIELD["batch_size"].default
    length: int = FIELD["length"].default
    cell: str = FIELD["cell"].default
    layers: int = FIELD["layers"].default
    bidirectional: bool = FIELD["bidirectional"].default
    units: int = FIELD["units"].default
    epochs: int = FIELD["epochs"].default
    lr: float = FIELD["lr"].default
    seed: int = FIELD["seed"].default
    sequences: int = FIELD["sequences"].default
    seq_len: int = FIELD["seq_len"].default
    remainder: str = FIELD["remainder"].default

    # ---- derived facts (no extra state) -------------------------------------------------
    @property
    def sample_len(self) -> int:
        """Timesteps in one sample fed to the LSTM."""
        return {"full": self.seq_len, "steps": 1}.get(self.layout, self.length)

    @property
    def n_val(self) -> int:
        return max(1, self.sequences // 6)

    @property
    def n_train(self) -> int:
        return self.sequences - self.n_val

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    # ---- validation -----------------------------------------------------------------------
    def problems(self, budget: bool = True) -> list[str]:
        """Every reason this config cannot run, as sentences for the user (empty: fine).

        With `budget` (the default), also the server's memory and time budgets for a run
        (models/cost.py: estimated from the settings, nothing is built). The "user" task's
        budget depends on the upload: see `cost.upload_problems`."""
        out = []
        for f in FIELDS:
            out += _field_problems(f, getattr(self, f.name))
        if out:
            return out
        if self.layout in ("chunks", "naive_chunks", "windows", "packed") and self.length > self.seq_len:
            out.append(f"{self.layout} of length {self.length} do not fit in sequences of "
                       f"{self.seq_len} steps: choose a length of at most {self.seq_len}.")
        if self.layout in ("chunks", "naive_chunks", "packed") and self.seq_len % self.length:
            out.append(f"Chunks of length {self.length} do not tile sequences of {self.seq_len} "
                       f"steps: choose a length that divides {self.seq_len}.")
        if self.task == "alphabet" and self.seq_len > 25:
            out.append("The alphabet has 25 letter pairs (A->B ... Y->Z): sequence length at most 25.")
        if self.n_train < 1:
            out.append("Need at least one training sequence.")
        from models import bidir
        out += bidir.problems(self)
        if budget and not out:
            from models import cost
            out += cost.problems(self)
        return out

    def check(self) -> "RunConfig":
        errs = self.problems()
        if errs:
            raise ConfigError(" ".join(errs))
        return self

    def notes(self) -> list[str]:
        """Settings that run but do not do what a user may expect: explained, not ignored."""
        n = []
        if not self.stateful and self.reset != "never":
            n.append("Stateless: every sample starts from zeros anyway, so the reset policy changes nothing.")
        if self.layout == "full" and self.stateful:
            n.append("Full sequences: each sample is a whole sequence, so carrying state only links "
                     "unrelated sequences.")
        if self.layout in ("chunks", "steps", "packed") and self.shuffle != "off" and self.stateful:
            n.append("Shuffling moves chunks between slots: slot i no longer continues sequence i.")
        if self.layout == "packed" and self.stateful and self.reset != "sequence":
            n.append("Packed streams: only reset 'sequence' resets the slot whose sequence ended; "
                     f"with '{self.reset}' each new sequence starts from the previous one's state.")
        if self.layout == "full" and self.length != self.seq_len:
            n.append("Full sequences ignore the chunk length.")
        return n

    # ---- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        cfg, errs = cls.from_mapping(json.loads(text))
        if errs:
            raise ConfigError(" ".join(errs))
        return cfg

    def to_query(self) -> dict[str, str]:
        """Only the settings that differ from the defaults, as strings: short, stable URLs."""
        base = RunConfig()
        return {f.name: _fmt(getattr(self, f.name)) for f in FIELDS
                if getattr(self, f.name) != getattr(base, f.name)}

    @classmethod
    def from_mapping(cls, params, base: "RunConfig | None" = None) -> tuple["RunConfig", list[str]]:
        """Read settings from a mapping of strings (URL) or values (JSON).

        Unknown keys and bad or out-of-range values are reported and replaced by the value in
        `base` (the defaults if None), never raised: a shared link always opens something.
        """
        base = base or cls()
        values, errs = base.to_dict(), []
        for key, raw in dict(params).items():
            if key not in FIELD:
                continue  # other query params (preset, run, ...) belong to the app
            f = FIELD[key]
            try:
                v = _parse(f, raw)
            except (TypeError, ValueError):
                errs.append(f"{f.label}: {str(raw)[:40]!r} is not a valid {f.type.__name__}; "
                            f"using {_fmt(values[key])}.")
                continue
            bad = _field_problems(f, v)
            if bad:
                errs.append(f"{bad[0]} Using {_fmt(values[key])}.")
                continue
            values[key] = v
        cfg = cls(**values)
        combo = cfg.problems()
        if combo:
            errs += [f"{e} Using the defaults instead." for e in combo]
            cfg = base if not base.problems() else cls()
        return cfg, errs


def _field_problems(f: Field, v) -> list[str]:
    if f.type is bool:
        return [] if isinstance(v, bool) else [f"{f.label} must be true or false."]
    if f.type is str:
        return [] if v in f.choices else [f"{f.label} must be one of {', '.join(f.choices)}."]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (f.type is int and not float(v).is_integer()):
        return [f"{f.label} must be a {'whole ' if f.type is int else ''}number."]
    if not math.isfinite(v) or v < f.lo or v > f.hi:
        return [f"{f.label} must be between {_fmt(f.lo)} and {_fmt(f.hi)} (got {_fmt(v)})."]
    return []


def _parse(f: Field, raw):
    if f.type is bool:
        if isinstance(raw, bool):
            return raw
        s = str(raw).strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if f.type is str:
        return str(raw).strip()
    if isinstance(raw, bool):
        raise TypeError(raw)
    x = float(raw) if isinstance(raw, str) else raw
    if f.type is int:
        if not float(x).is_integer():
            raise ValueError(raw)
        return int(x)
    return float(x)


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)  # shortest exact form: a shared link reopens the same run
    return str(v)
