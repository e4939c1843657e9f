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
- packed:       sequences of DIFFERENT lengths (1 to T/L chunks each, drawn from the seed: the
                rest of each sequence is dropped) packed one after another into B streams,
                each slot taking the next sequence as soon as its own ends. With reset
                "sequence" only the slot whose sequence ended is reset (`slot_resets`: that row
                of the state is assigned zeros), the others carry on untouched: the right way
                to feed variable-length sequences to a stateful layer.
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
    if cfg.layout == "packed":
        order, lens = packed_order(N, P, cfg, pad, notes)
        last = part == lens[seq_id] - 1  # each sequence ends at its own length
    elif cfg.layout in ("chunks", "steps"):
        # Rows of B sequences; within a row, batch p holds part p of each.
        seqs = _rows(N, B, pad, cfg, "sequences", notes)              # (G, B) sequence ids
        order = np.where(seqs[:, None, :] >= 0, seqs[:, None, :] * P + np.arange(P)[None, :, None], -1)
        order = order.reshape(-1, B)
    else:
        order = _rows(len(xs), B, pad, cfg, "samples", notes)
    if order.shape[0] == 0:
        raise ConfigError(f"Batch size {B} is larger than the {N} sequences available "
                          f"({len(xs)} samples): choose a batch size of at most "
                          f"{N if cfg.layout in ('chunks', 'steps', 'packed') else len(xs)}.")
    return Samples(xs, ys, seq_id, part, last, order.astype(np.int64), notes)


def packed_lengths(n: int, P: int, cfg: RunConfig) -> np.ndarray:
    """Chunks kept of each of n sequences: 1..P, drawn from the seed (and n, so training and
    validation sequences differ)."""
    return np.random.default_rng([cfg.seed, n, 7]).integers(1, P + 1, n)


def packed_order(n: int, P: int, cfg: RunConfig, pad: bool,
                 notes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """((n_batches, B) sample indices, chunks per sequence): sequence j goes to the slot whose
    stream ends first (ties: the lowest slot), right after that slot's previous sequence. The
    streams end at different batches: cut to the shortest (training; the chunks after it are
    dropped, with a note) or padded with -1 to the longest (validation, pad=True)."""
    import heapq
    B = cfg.batch_size
    lens = packed_lengths(n, P, cfg)
    streams: list[list[int]] = [[] for _ in range(B)]
    heap = [(0, i) for i in range(B)]
    for j in range(n):
        total, i = heapq.heappop(heap)
        streams[i].extend(range(j * P, j * P + int(lens[j])))
        heapq.heappush(heap, (total + int(lens[j]), i))
    sizes = [len(st) for st in streams]
    T = max(sizes) if pad else min(sizes)
    order = np.full((T, B), -1, np.int64)
    for i, st in enumerate(streams):
        order[:min(T, len(st)), i] = st[:T]
    dropped = sum(sizes) - int((order >= 0).sum())
    if dropped and notes is not None:
        notes.append(f"Packed {n:,} sequences of 1-{P} chunks into {B} streams; the streams "
                     f"end at different batches, so the last {dropped:,} chunks after the "
                     f"shortest stream ended were dropped.")
    return order, lens


def slot_resets(s: Samples, order: np.ndarray, cfg: RunConfig, first_epoch: bool) -> np.ndarray:
    """(n_batches, B): which slots start each batch from zeros. The batch's `resets` for every
    slot; with the packed layout and reset "sequence", also each slot where a new sequence
    starts (part 0), and ONLY that slot: the others carry their state on."""
    r = np.repeat(resets(s, order, cfg, first_epoch)[:, None], order.shape[1], axis=1)
    if cfg.layout == "packed" and cfg.stateful and cfg.reset == "sequence":
        r |= (order >= 0) & (s.part[np.maximum(order, 0)] == 0)
    return r


def _row_count(n: int, B: int, pad: bool, cfg: RunConfig, what: str, notes: list[str]) -> int:
    """Rows of B that 0..n-1 fill: a partial last row counts when padded, else is trimmed
    (with a note) or refused (ConfigError)."""
    rows, rest = divmod(n, B)
    if rest and pad:
        rows += 1
    elif rest:
        _remainder(cfg, rest, what, n, notes)
    return rows


def _rows(n: int, B: int, pad: bool, cfg: RunConfig, what: str, notes: list[str]) -> np.ndarray:
    """0..n-1 laid out in rows of B: a partial last row is padded with -1, or trimmed."""
    rows = _row_count(n, B, pad, cfg, what, notes)
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
    if cfg.reset == "sequence" and cfg.layout != "packed":  # packed: per slot (slot_resets)
        ends = np.where(order >= 0, s.last[np.maximum(order, 0)], False).any(axis=1)
        r[1:] |= ends[:-1]
    return r


def parts_per_sequence(cfg: RunConfig) -> int:
    """Samples cut from one sequence (P in cut())."""
    T, L = cfg.seq_len, cfg.sample_len
    if cfg.layout == "windows":
        return max(0, T - L + 1)
    return -(-T // L)  # len(range(0, T, L))


def count_batches(cfg: RunConfig, n_sequences: int, pad: bool = False,
                  notes: list[str] | None = None) -> int:
    """Batches per epoch that arrange() makes of `n_sequences` sequences, from the sizes alone
    (nothing is cut or allocated). Raises the same ConfigErrors as arrange()."""
    B, P, N = cfg.batch_size, parts_per_sequence(cfg), int(n_sequences)
    notes = [] if notes is None else notes
    if cfg.layout == "packed":
        n = packed_order(N, P, cfg, pad)[0].shape[0] if N >= B else 0
    elif cfg.layout in ("chunks", "steps"):
        n = _row_count(N, B, pad, cfg, "sequences", notes) * P
    else:
        n = _row_count(N * P, B, pad, cfg, "samples", notes)
    if n == 0:
        raise ConfigError(f"Batch size {B} is larger than the {N} sequences available "
                          f"({N * P} samples): choose a batch size of at most "
                          f"{N if cfg.layout in ('chunks', 'steps', 'packed') else N * P}.")
    return n


class Preview(tuple):
    """(seq_id, part, notes) of the first batches; `.n_batches`: the epoch's total."""
    n_batches: int

    def __new__(cls, seq_id, part, notes, n_batches):
        t = super().__new__(cls, (seq_id, part, notes))
        t.n_batches = int(n_batches)
        return t


def preview_indices(cfg: RunConfig, n_sequences: int, max_batches: int = 40) -> Preview:
    """(seq_id, part) per batch and slot of epoch 1's first `max_batches` batches, computed from
    indices alone (what arrange() + epoch_order() would place there), plus notes and the
    epoch's batch count. Memory: O(max_batches x batch size), whatever the data set's size."""
    B, P, N = cfg.batch_size, parts_per_sequence(cfg), int(n_sequences)
    notes: list[str] = []
    nb = count_batches(cfg, N, notes=notes)
    k = min(nb, max(0, int(max_batches)))
    if cfg.shuffle == "samples":
        # The permutation of every sample index is the one thing epoch_order() needs whole
        # (8 bytes a sample); the samples themselves are never cut.
        rng = np.random.default_rng([cfg.seed, 1])
        idx = rng.permutation(_order_rows(cfg, N, P, 0, nb).reshape(-1))[:k * B].reshape(k, B)
    else:
        idx = _order_rows(cfg, N, P, 0, k)
        if cfg.shuffle == "batch":
            # epoch_order permutes every row with one generator, row after row: the first k
            # rows come out the same whether or not the rest are there.
            rng = np.random.default_rng([cfg.seed, 1])
            idx = rng.permuted(idx, axis=1) if k else idx
    seq_id = np.where(idx >= 0, idx // max(P, 1), -1).astype(np.int32)
    part = np.where(idx >= 0, idx % max(P, 1), -1).astype(np.int32)
    return Preview(seq_id, part, notes, nb)


def _order_rows(cfg: RunConfig, N: int, P: int, first: int, stop: int) -> np.ndarray:
    """Rows first..stop-1 of arrange()'s (unshuffled, unpadded) order, as sample indices
    (sample = seq_id * P + part), without building the other rows."""
    B = cfg.batch_size
    k = np.arange(first, stop)
    if cfg.layout == "packed":  # O(sequences) to pack: the lengths decide every row
        return packed_order(N, P, cfg, False)[0][first:stop]
    if cfg.layout in ("chunks", "steps"):
        g, p = k // P, k % P                       # row of B sequences, part
        seqs = g[:, None] * B + np.arange(B)[None, :]
        return (seqs * P + p[:, None]).astype(np.int64)
    return (k[:, None] * B + np.arange(B)[None, :]).astype(np.int64)


def preview(x: np.ndarray, y: np.ndarray, cfg: RunConfig, max_batches: int = 40) -> Preview:
    """(seq_id, part, notes) of the first `max_batches` batches of epoch 1, before training
    (Data layout view); `.n_batches` is the epoch's batch count. Only x's shape is read:
    nothing is cut or arranged."""
    return preview_indices(cfg, x.shape[0], max_batches)


def check_budget(s: Samples, cfg: RunConfig) -> int:
    """Total batches of the run; a ConfigError if it exceeds the server's limit."""
    from models import limits
    total = s.n_batches * cfg.epochs
    if total > limits.MAX_TOTAL_BATCHES:
        raise ConfigError(f"This run would train {total:,} batches; this server allows "
                          f"{limits.MAX_TOTAL_BATCHES:,}. Use fewer epochs or a larger batch.")
    return total
