"""The datasets. Each task makes N sequences x (N, T, F) with a target at every timestep
y (N, T); a sample covering steps [a, b) of sequence n is labelled y[n, b-1]. Everything is
generated from the run's seed, so a run is reproducible from its config alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.config import ConfigError, RunConfig

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class TaskData:
    x_train: np.ndarray  # (N, T, F) float32
    y_train: np.ndarray  # (N, T) int32 labels or float32 values
    x_val: np.ndarray
    y_val: np.ndarray
    kind: str            # binary | classes | regression
    n_out: int           # Dense units: 1 (sigmoid / linear) or the number of classes
    metric: str          # accuracy | mae
    notes: list[str] = field(default_factory=list)


def make_task(cfg: RunConfig, series: np.ndarray | None = None) -> TaskData:
    rng = np.random.default_rng(cfg.seed)
    if cfg.task == "user":
        if series is None:
            raise ConfigError("The user-series task needs a series: upload a CSV first.")
        return _user(cfg, np.asarray(series, np.float64))
    return {"first_element": _first_element, "alphabet": _alphabet,
            "long_memory": _long_memory, "sine": _sine}[cfg.task](cfg, rng)


def _split(cfg: RunConfig, x, y, kind, n_out, metric, notes=()) -> TaskData:
    n_val = max(1, len(x) // 6)
    return TaskData(x[:-n_val].astype(np.float32), y[:-n_val], x[-n_val:].astype(np.float32),
                    y[-n_val:], kind, n_out, metric, list(notes))


def _balanced_bits(rng, n: int) -> np.ndarray:
    bits = np.arange(n) % 2  # exactly half each (one more 0 if n is odd)
    return rng.permutation(bits)


def _first_element(cfg: RunConfig, rng) -> TaskData:
    """Blog experiment: all zeros but the first value (0 or 1); the target is that value."""
    N, T = cfg.sequences, cfg.seq_len
    bits = np.concatenate([_balanced_bits(rng, N - max(1, N // 6)), _balanced_bits(rng, max(1, N // 6))])
    x = np.zeros((N, T, 1), np.float32)
    x[:, 0, 0] = bits
    y = np.repeat(bits[:, None], T, axis=1).astype(np.int32)
    return _split(cfg, x, y, "binary", 1, "accuracy")


def _long_memory(cfg: RunConfig, rng) -> TaskData:
    """A cue (+1 or -1) at step 0, then noise: recall the cue at every later step.

    With chunks shorter than the sequence, only the first chunk ever sees the cue: a stateless
    model guesses (about 50%) on every later chunk, while a stateful one carries the cue in h/c
    across chunk boundaries. The noise makes "copy the last input" useless.
    """
    N, T = cfg.sequences, cfg.seq_len
    bits = np.concatenate([_balanced_bits(rng, N - max(1, N // 6)), _balanced_bits(rng, max(1, N // 6))])
    x = rng.normal(0.0, 0.3, (N, T, 1)).astype(np.float32)
    x[:, 0, 0] = 2.0 * bits - 1.0
    y = np.repeat(bits[:, None], T, axis=1).astype(np.int32)
    return _split(cfg, x, y, "binary", 1, "accuracy")


def _alphabet(cfg: RunConfig, rng) -> TaskData:
    """Each letter -> the next (A->B ... Y->Z). Inputs are letters scaled to [0, 1].

    Every sequence is the alphabet from A, as in the classic tutorial: a stateful batch-1 model
    can get 100% by counting positions instead of reading letters (see probe()).
    """
    T = cfg.seq_len
    idx = np.arange(T)
    x = np.tile((idx / 25.0)[None, :, None], (cfg.sequences, 1, 1)).astype(np.float32)
    y = np.tile((idx + 1)[None, :], (cfg.sequences, 1)).astype(np.int32)
    return _split(cfg, x, y, "classes", 26, "accuracy")


def _sine(cfg: RunConfig, rng) -> TaskData:
    """Noisy sines, each with its own frequency and phase: forecast the next value (MAE)."""
    N, T = cfg.sequences, cfg.seq_len
    f = rng.uniform(0.02, 0.1, (N, 1))
    phase = rng.uniform(0, 2 * np.pi, (N, 1))
    t = np.arange(T + 1)[None, :]
    clean = np.sin(2 * np.pi * f * t + phase)
    noisy = clean + rng.normal(0, 0.1, clean.shape)
    return _split(cfg, noisy[:, :T, None], clean[:, 1:].astype(np.float32), "regression", 1, "mae")


def _user(cfg: RunConfig, series: np.ndarray) -> TaskData:
    """A user's univariate series, z-scored and cut into back-to-back sequences of seq_len."""
    if series.ndim != 1 or not np.isfinite(series).all():
        raise ConfigError("The series must be one column of finite numbers.")
    T = cfg.seq_len
    n = (len(series) - 1) // T
    if n < 2:
        raise ConfigError(f"A series of {len(series)} values makes {n} sequence(s) of {T} steps; "
                          f"need at least {2 * T + 1} values, or a shorter sequence length.")
    sd = series.std() or 1.0
    z = (series - series.mean()) / sd
    x = np.stack([z[i * T:(i + 1) * T] for i in range(n)])[:, :, None]
    y = np.stack([z[i * T + 1:(i + 1) * T + 1] for i in range(n)]).astype(np.float32)
    notes = [f"Your series: {len(series)} values, z-scored, cut into {n} sequences of {T} steps"
             f" ({max(1, n // 6)} held out for validation)."]
    return _split(cfg, x, y, "regression", 1, "mae", notes)


def letter_value(letter: str) -> float:
    return LETTERS.index(letter.upper()) / 25.0
