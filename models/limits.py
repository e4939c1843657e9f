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
MAX_UPLOAD_ROWS = _env_int("LSTM_MAX_UPLOAD_ROWS", 100_000)
MAX_UPLOAD_BYTES = _env_int("LSTM_MAX_UPLOAD_BYTES", 5 * 1024 * 1024)
# Jobs training at once (the rest queue); default: one per core.
MAX_CONCURRENT_JOBS = _env_int("LSTM_MAX_CONCURRENT_JOBS", os.cpu_count() or 1)
MAX_QUEUED_JOBS = _env_int("LSTM_MAX_QUEUED_JOBS", 200)
# Compiled models kept for reuse (each ~25-30 MB resident): a rerun of a kept shape starts in
# milliseconds, any other shape first compiles for ~3 s. 13: the presets' distinct shapes.
MAX_POOLED_NETS = _env_int("LSTM_MAX_POOLED_NETS", 13)
