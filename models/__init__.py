"""Everything that computes: data, layouts, the Keras engine, traces, jobs, presets, CLI.

Never imports streamlit. Keras is imported lazily (engine.py) so that config, layouts and
traces stay cheap to import; the backend is pinned here before any Keras import can happen.
"""
import os

# Keras 3 on JAX ignores stateful=True in fit/predict: the whole app depends on TensorFlow.
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from models import memory  # noqa: E402

memory.fix_mmap_threshold()  # before TensorFlow and the jobs allocate
