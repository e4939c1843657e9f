"""The record of a run: every slot's state before and after every recorded batch.

Format (DESIGN.md, read by other tools): h0, c0, hT, cT (n, B, units) float32; seq_id, part
(n, B) int32; epoch, batch (n,) int32; reset_before (n,) bool; loss, accuracy (n,) float32;
config (0-d str). A thinned trace adds `recorded` (n,) int32: the global index of each recorded
batch. Also stored, for the views: `val_epochs` (E, 6) float32 epoch metrics.

Memory is bounded by `limits.MAX_RECORDED_BATCHES`: when a run has more batches, whole epochs
are kept (first ones, then evenly spaced, always the last), so recorded neighbours inside an
epoch stay neighbours and the carry identity can still be checked on them.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np

STATE_KEYS = ("h0", "c0", "hT", "cT")
ROW_KEYS = ("seq_id", "part")
STEP_KEYS = ("epoch", "batch", "reset_before", "loss", "accuracy")
EPOCH_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")


@dataclass
class Trace:
    h0: np.ndarray
    c0: np.ndarray
    hT: np.ndarray
    cT: np.ndarray
    seq_id: np.ndarray
    part: np.ndarray
    epoch: np.ndarray
    batch: np.ndarray
    reset_before: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    config: str
    recorded: np.ndarray | None = None  # None: every batch was recorded
    epochs: list[dict] = field(default_factory=list)  # per-epoch train/val metrics

    @property
    def n(self) -> int:
        return int(self.epoch.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.seq_id.shape[1]) if self.seq_id.ndim == 2 else 0

    @property
    def units(self) -> int:
        return int(self.h0.shape[2]) if self.h0.ndim == 3 else 0

    @property
    def thinned(self) -> bool:
        return self.recorded is not None

    @property
    def index(self) -> np.ndarray:
        """Global batch index of each recorded batch."""
        return self.recorded if self.recorded is not None else np.arange(self.n, dtype=np.int32)

    def config_dict(self) -> dict:
        return json.loads(self.config)

    def stateful(self) -> bool:
        return bool(self.config_dict().get("stateful", False))

    # ---- save / load ------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {k: getattr(self, k) for k in STATE_KEYS + ROW_KEYS + STEP_KEYS}
        out["config"] = np.array(self.config)
        if self.recorded is not None:
            out["recorded"] = self.recorded
        out["val_epochs"] = np.array([[e.get(c, np.nan) if e.get(c) is not None else np.nan
                                       for c in EPOCH_COLUMNS] for e in self.epochs],
                                     dtype=np.float32).reshape(-1, len(EPOCH_COLUMNS))
        return out

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, **self.to_arrays())
        return buf.getvalue()

    def save(self, path) -> None:
        with open(path, "wb") as fh:
            fh.write(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> "Trace":
        # allow_pickle=False: a trace file is never code.
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls.from_arrays(arrays)

    @classmethod
    def load(cls, path) -> "Trace":
        with open(path, "rb") as fh:
            return cls.from_bytes(fh.read())

    @classmethod
    def from_arrays(cls, a: dict) -> "Trace":
        missing = [k for k in STATE_KEYS + ROW_KEYS + STEP_KEYS + ("config",) if k not in a]
        if missing:
            raise ValueError(f"not a trace: missing {', '.join(missing)}")
        epochs = []
        for row in a.get("val_epochs", np.zeros((0, len(EPOCH_COLUMNS)))):
            e = {c: (None if np.isnan(v) else float(v)) for c, v in zip(EPOCH_COLUMNS, row)}
            e["epoch"] = int(e["epoch"])
            epochs.append(e)
        t = cls(
            **{k: np.asarray(a[k], np.float32) for k in STATE_KEYS},
            **{k: np.asarray(a[k], np.int32) for k in ROW_KEYS},
            epoch=np.asarray(a["epoch"], np.int32), batch=np.asarray(a["batch"], np.int32),
            reset_before=np.asarray(a["reset_before"], bool),
            loss=np.asarray(a["loss"], np.float32), accuracy=np.asarray(a["accuracy"], np.float32),
            config=str(a["config"]),
            recorded=np.asarray(a["recorded"], np.int32) if "recorded" in a else None,
            epochs=epochs,
        )
        n = t.n
        if any(getattr(t, k).shape[0] != n for k in STATE_KEYS + ROW_KEYS + STEP_KEYS):
            raise ValueError("not a trace: arrays disagree on the number of batches")
        return t

    # ---- the carry identity ------------------------------------------------------------------
    def carry_check(self) -> dict:
        return carry_check(self)


def carry_check(t: Trace) -> dict:
    """Measure the carry identity on the recorded batches.

    stateful and no reset before k+1: h0[k+1] == hT[k] (and c); that pair is *carried*.
    stateless, or a reset: h0 == 0; that batch is a *fresh start* (each slot counts).
    Returns counts per slot transition and the largest deviations (0.0 means exact).
    """
    stateful = t.stateful()
    idx = t.index
    fresh = ~np.full(t.n, stateful) | t.reset_before
    # The first recorded batch of a run starts from zeros too (nothing came before it).
    if t.n and idx[0] == 0:
        fresh[0] = True
    neighbours = np.zeros(t.n, bool)
    neighbours[1:] = idx[1:] == idx[:-1] + 1
    carried = neighbours & ~fresh
    err = 0.0
    if carried.any():
        k = np.nonzero(carried)[0]
        err = float(max(np.abs(t.h0[k] - t.hT[k - 1]).max(), np.abs(t.c0[k] - t.cT[k - 1]).max()))
    fresh_abs = 0.0
    if fresh.any():
        fresh_abs = float(max(np.abs(t.h0[fresh]).max(), np.abs(t.c0[fresh]).max()))
    B = t.batch_size
    contaminated = 0
    if carried.any():
        k = np.nonzero(carried)[0]
        prev, cur = t.seq_id[k - 1], t.seq_id[k]
        contaminated = int(((prev != cur) & (prev >= 0) & (cur >= 0)).sum())
    return {
        "carried": int(carried.sum()) * B,
        "max_carry_error": err,
        "fresh_starts": int(fresh.sum()) * B,
        "max_fresh_abs": fresh_abs,
        "contaminated": contaminated,
    }


def empty_trace(config_json: str, batch_size: int, units: int) -> Trace:
    z3 = np.zeros((0, batch_size, units), np.float32)
    z2 = np.zeros((0, batch_size), np.int32)
    z1 = np.zeros((0,), np.int32)
    return Trace(z3, z3, z3, z3, z2, z2, z1, z1, np.zeros(0, bool),
                 np.zeros(0, np.float32), np.zeros(0, np.float32), config_json)


def concat(config_json: str, parts: list[dict], total_batches: int, epochs: list[dict],
           batch_size: int, units: int) -> Trace:
    """Build a Trace from recorded chunks (dicts of arrays with a global `index`)."""
    if not parts:
        t = empty_trace(config_json, batch_size, units)
        t.epochs = list(epochs)
        return t
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    idx = cat.pop("index").astype(np.int32)
    full = len(idx) == total_batches and (idx == np.arange(total_batches)).all()
    return Trace(**cat, config=config_json, recorded=None if full else idx, epochs=list(epochs))


def recorded_epochs(n_epochs: int, batches_per_epoch: int, cap: int) -> tuple[set[int], int]:
    """Which epochs (from 1) to keep, and how many batches of each, within `cap` batches."""
    per = min(batches_per_epoch, cap)
    k = max(1, cap // max(per, 1))
    if k >= n_epochs:
        return set(range(1, n_epochs + 1)), per
    keep = {int(round(x)) for x in np.linspace(1, n_epochs, k)}
    return keep, per
