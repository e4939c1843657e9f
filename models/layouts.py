"""How sequences are cut into samples and arranged into batches.

Every sample is tagged with (seq_id, part). An arrangement is a list of batches, each a row of
B sample indices: slot i of batch k. The layouts:

- full:         one sample per sequence (L = T).
- windows:      every window of length L (T-L+1 per sequence), labelled like its last step.
- chunks:       T/L chunks per sequence; batch k holds the next chunk of the same B sequences,
                so slot i continues sequence i (what stateful=True is for).
- naive_chunks: the same chunks in sequence order, so chunks of one sequence sit side by side
                in a batch and slot i's state lands on an unrelated chunk (the common mistake).
- steps:        chunks of length 1: B sequences streamed in parallel, one step per batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.config import ConfigError, RunConfig


@dataclass
class Samples:
    x: np.ndarray        # (S, L, F)
    y: np.ndarray        # (S,) label of the sample's last step
    seq_id: np.ndarray   # (S,) int32
    part: np.ndarray     # (S,) int32
    last: np.ndarray     # (S,) bool: the final part of its sequence
    order: np.ndarray    # (n_batches, B) sample indices, unshuffled arrangement
    notes: list[str] = field(default_factory=list)

    @property
    def n_batches(self) -> int:
        return int(self.order.shape[0])


def cut(x: np.ndarray, y: np.ndarray, cfg: RunConfig):
    """Cut sequences into samples: returns x, y, seq_id, part, last (sequence-major order)."""
    N, T, F = x.shape
    L = cfg.sample_len
    if cfg.layout == "windows":
        starts = np.arange(T - L + 1)
    else:  # full, chunks, naive_chunks, steps
        starts = np.arange(0, T, L)
    P = len(starts)
    win = starts[:, None] + np.arange(L)[None, :]            # (P, L) timestep indices
    xs = x[:, win, :].reshape(N * P, L, F)
    ys = y[:, starts + L - 1].reshape(N * P)
    seq_id = np.repeat(np.arange(N, dtype=np.int32), P)
    part = np.tile(np.arange(P, dtype=np.int32), N)
    return xs, ys, seq_id, part, part == P - 1, P


def arrange(x: np.ndarray, y: np.ndarray, cfg: RunConfig, pad: bool = False) -> Samples:
    """Cut and arrange into batches of cfg.batch_size.

    A final partial batch is never fed silently (Keras would broadcast a single leftover row
    over every slot's state, or fail on 2+): it is trimmed, refused, or, for validation
    (pad=True), filled with padding slots (index -1) that count in no metric.
    """
    B = cfg.batch_size
    xs, ys, seq_id, part, last, P = cut(x, y, cfg)
    N = x.shape[0]
    notes: list[str] = []
    if cfg.layout in ("chunks", "steps"):
        # Rows of B sequences; within a row, batch p holds part p of each.
        seqs = _rows(N, B, pad, cfg, "sequences", notes)              # (G, B) sequence ids
        order = np.where(seqs[:, None, :] >= 0, seqs[:, None, :] * P + np.arange(P)[None, :, None], -1)
        order = order.reshape(-1, B)
    else:
        order = _rows(len(xs), B, pad, cfg, "samples", notes)
    if order.shape[0] == 0:
        raise ConfigError(f"Batch size {B} is larger than the {N} sequences available "
                          f"({len(xs)} samples): choose a batch size of at most "
                          f"{N if cfg.layout in ('chunks', 'steps') else len(xs)}.")
    return Samples(xs, ys, seq_id, part, last, order.astype(np.int64), notes)


def _rows(n: int, B: int, pad: bool, cfg: RunConfig, what: str, notes: list[str]) -> np.ndarray:
    """0..n-1 laid out in rows of B: a partial last row is padded with -1, or trimmed."""
    rows, rest = divmod(n, B)
    if rest and pad:
        rows += 1
    elif rest:
        _remainder(cfg, rest, what, n, notes)
    flat = np.full(rows * B, -1)
    flat[:min(n, rows * B)] = np.arange(min(n, rows * B))
    return flat.reshape(rows, B)


def _remainder(cfg: RunConfig, rest: int, what: str, total: int, notes: list[str]) -> None:
    B = cfg.batch_size
    fit = [b for b in range(max(1, B - 8), B + 9) if total % b == 0]
    hint = f" Batch sizes that divide {total}: {', '.join(map(str, fit))}." if fit else ""
    if cfg.remainder == "refuse":
        raise ConfigError(f"{total} {what} do not fill batches of {B}: {rest} would be left in a "
                          f"partial final batch, which Keras feeds silently (1 row) or fails on "
                          f"(2+ rows).{hint}")
    notes.append(f"Trimmed {rest} of {total} {what} so that every batch is full: Keras would "
                 f"{'silently broadcast the single leftover row over every slot' if rest == 1 else 'fail with Incompatible shapes'}"
                 f" on a final batch of {rest}.{hint}")


def epoch_order(s: Samples, cfg: RunConfig, epoch: int) -> np.ndarray:
    """The batches of one epoch after shuffling (Keras 3 semantics), (n_batches, B)."""
    order = s.order
    if cfg.shuffle == "off":
        return order
    rng = np.random.default_rng([cfg.seed, epoch])
    if cfg.shuffle == "samples":       # fit(shuffle=True): all samples, whole set, each epoch
        return rng.permutation(order.reshape(-1)).reshape(order.shape)
    return rng.permuted(order, axis=1)  # shuffle="batch": within each batch, batch order kept


def resets(s: Samples, order: np.ndarray, cfg: RunConfig, first_epoch: bool) -> np.ndarray:
    """reset_before for each batch of an epoch under the reset policy.

    never: only the run's very first batch starts from zeros (states start at zero).
    epoch: before the first batch of every epoch.
    sequence: also after any batch in which a sequence ends (its last part is in a slot).
    Stateless runs start every sample from zeros: marked as a reset before every batch.
    """
    nb = order.shape[0]
    if not cfg.stateful:
        return np.ones(nb, bool)
    r = np.zeros(nb, bool)
    r[0] = first_epoch or cfg.reset in ("epoch", "sequence")
    if cfg.reset == "sequence":
        ends = np.where(order >= 0, s.last[np.maximum(order, 0)], False).any(axis=1)
        r[1:] |= ends[:-1]
    return r


def preview(x: np.ndarray, y: np.ndarray, cfg: RunConfig) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(seq_id, part) per batch and slot for the first epoch, before training (Data layout view)."""
    s = arrange(x, y, cfg)
    order = epoch_order(s, cfg, 1)
    return s.seq_id[order], s.part[order], s.notes


def check_budget(s: Samples, cfg: RunConfig) -> int:
    """Total batches of the run; a ConfigError if it exceeds the server's limit."""
    from models import limits
    total = s.n_batches * cfg.epochs
    if total > limits.MAX_TOTAL_BATCHES:
        raise ConfigError(f"This run would train {total:,} batches; this server allows "
                          f"{limits.MAX_TOTAL_BATCHES:,}. Use fewer epochs or a larger batch.")
    return total
