"""`python -m models bench` says, beside each targeted cell's ratio, whether it meets issue 14's
target (at least the LSTM's ratio of the same run). The verdict is computed from the rounds given
(nothing is timed here)."""
from models import bench


def _runs(ratios: dict) -> dict:
    return {name: {"engine": [r * 100 for r in rs], "train_on_batch": [100.0] * len(rs),
                   "ratio": list(rs)} for name, rs in ratios.items()}


def test_targets_compare_each_median_with_the_lstms_of_the_same_run():
    runs = _runs({"LSTM": [90, 100, 95], "GRU": [120, 60, 96], "SimpleRNN": [94, 99, 50],
                  "GRU before": [70, 64, 66], "LSTMx2": [50, 52, 49], "BiLSTM": [95, 95, 95]})
    t = bench.cell_targets(runs)
    assert set(t) == {"GRU", "SimpleRNN", "GRU before", "BiLSTM"}  # stacks have no target
    assert t["GRU"] == {"ratio": 96, "lstm_ratio": 95, "meets": True}
    assert t["SimpleRNN"]["meets"] is False and t["GRU before"]["meets"] is False
    assert t["BiLSTM"]["meets"] is True  # equal is as far ahead
    rows = {a: c for a, _, c in bench.cell_rows(runs)}
    assert rows["GRU: speed-up vs train_on_batch (median; each round)"] == ">= LSTM's 95.0x: meets"
    assert rows["SimpleRNN: speed-up vs train_on_batch (median; each round)"].endswith("MISSES")
    assert rows["GRU before (no unroll): speed-up vs train_on_batch (median; each round)"].endswith(
        "MISSES")
    assert rows["LSTM x2 layers: speed-up vs train_on_batch (median; each round)"] == ""


def test_no_lstm_row_no_verdict():
    assert bench.cell_targets(_runs({"GRU": [5]})) == {}
