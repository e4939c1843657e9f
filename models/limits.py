"""Hard limits for shared servers, enforced on every input path (widgets, URL, upload, CLI).

One place: each can be lowered or raised with an environment variable of the same name
(e.g. `LSTM_MAX_UNITS=32`). Streamlit's own limits (upload size in MB, XSRF) live in
`.streamlit/config.toml`.
"""
import os


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


MAX_UNITS = _env_int("LSTM_MAX_UNITS", 64)
MAX_SEQUENCES = _env_int("LSTM_MAX_SEQUENCES", 5000)
MAX_SEQ_LEN = _env_int("LSTM_MAX_SEQ_LEN", 200)
MAX_EPOCHS = _env_int("LSTM_MAX_EPOCHS", 500)
MAX_BATCH_SIZE = _env_int("LSTM_MAX_BATCH_SIZE", 1000)
# Batches whose states are kept in a trace; longer runs are thinned (see trace.py).
MAX_RECORDED_BATCHES = _env_int("LSTM_MAX_RECORDED_BATCHES", 2000)
# ...and at most this many (batch, slot) cells: B=100 keeps 200 batches, ~3 MB of states
# (a class of 40 keeps one trace per student in memory).
MAX_RECORDED_SLOTS = _env_int("LSTM_MAX_RECORDED_SLOTS", 20_000)
# Batches (epochs x batches per epoch) one run may train: bounds CPU per job.
MAX_TOTAL_BATCHES = _env_int("LSTM_MAX_TOTAL_BATCHES", 200_000)
# What one run may cost, estimated before anything is built (models/cost.py): peak memory
# while it trains (data, recorded states and the engine's buffers, figures) and seconds of
# training (a cautious estimate). Sized so that a class of 40 fits a 2 GB server: ~1.2 GB for
# the process with the presets' nets compiled, + 2 runs training at once x 48 MB, + what 40
# sessions keep afterwards (the trace and figures: at most ~1/3 of the peak, ~16 MB) ~= 1.95 GB.
MAX_RUN_MB = _env_int("LSTM_MAX_RUN_MB", 48)
# 120 s: on 2 cores a class of 40 is served within 40 min even if everyone asks for the most.
MAX_RUN_SECONDS = _env_int("LSTM_MAX_RUN_SECONDS", 120)
MAX_UPLOAD_ROWS = _env_int("LSTM_MAX_UPLOAD_ROWS", 100_000)
MAX_UPLOAD_BYTES = _env_int("LSTM_MAX_UPLOAD_BYTES", 5 * 1024 * 1024)
# Jobs training at once (the rest queue); default: one per core.
MAX_CONCURRENT_JOBS = _env_int("LSTM_MAX_CONCURRENT_JOBS", os.cpu_count() or 1)
MAX_QUEUED_JOBS = _env_int("LSTM_MAX_QUEUED_JOBS", 200)
# Compiled models kept for reuse (each ~25-30 MB resident): a rerun of a kept shape starts in
# milliseconds, any other shape first compiles for ~3 s. 17: the presets' distinct shapes
# (13 LSTM shapes, one each for the GRU and SimpleRNN presets, the stacked preset and the
# bidirectional preset).
MAX_POOLED_NETS = _env_int("LSTM_MAX_POOLED_NETS", 17)
# Places beyond those for nets of shapes no preset uses (a student's own batch size or units),
# most recently used kept: Train again with another seed or rate, or Train a shape the page
# compiled ahead while the settings were chosen (warm_ahead), starts without a compile.
MAX_EXTRA_NETS = _env_int("LSTM_MAX_EXTRA_NETS", 3)
# Queued + running jobs one session (a browser tab) / one client (an address or browser id)
# may hold; more are refused with a message. 2 per session: the compare mode trains two runs.
MAX_JOBS_PER_SESSION = _env_int("LSTM_MAX_JOBS_PER_SESSION", 2)
MAX_JOBS_PER_CLIENT = _env_int("LSTM_MAX_JOBS_PER_CLIENT", 4)
# Resident MB of the trainer process (models/trainer.py) above which it is replaced by a fresh
# one between jobs: every new net shape leaves ~35 MB inside TensorFlow that nothing gives back.
# Measured: prewarmed (16 preset nets) ~1.0 GB; at 1200, 80 sessions training presets (no new
# shape) pushed it over between runs and it was replaced again and again, recompiling the
# presets each time; 1600 leaves room for that working set and ~10 new shapes.
TRAINER_MAX_RSS_MB = _env_int("LSTM_TRAINER_MAX_RSS_MB", 1600)
