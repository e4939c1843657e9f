"""A small trained run shared by the engine-level tests (cells, stacked layers, packed streams):
the LSTM shape of tests/test_replay.py (B=10, L=5, 6 units), so pooled nets are reused."""
from models.config import RunConfig
from models.engine import Engine

SMALL = RunConfig(sequences=60, seq_len=20, batch_size=10, layout="chunks", length=5,
                  stateful=True, shuffle="off", reset="never", epochs=2, units=6)


def trained(cfg: RunConfig):
    """(engine, result, initial weights, final state) of one run without validation."""
    eng = Engine(cfg)
    try:
        init = [w.copy() for w in eng.initial_weights]
        r = eng.run(validate=False)
        return eng, r, init, eng.final_state()
    finally:
        eng.close()
