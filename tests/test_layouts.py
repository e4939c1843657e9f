"""Layouts and config: how samples are tagged and placed (no Keras needed)."""
import numpy as np
import pytest

from models import layouts
from models.config import ConfigError, RunConfig
from models.tasks import make_task


def arranged(**kw):
    cfg = RunConfig(sequences=14, seq_len=20, batch_size=4, **kw)  # 12 train, 2 val sequences
    d = make_task(cfg)
    s = layouts.arrange(d.x_train, d.y_train, cfg)
    return cfg, d, s, s.seq_id[s.order], s.part[s.order]


def test_full_sequences_one_part_each():
    _, d, s, seq, part = arranged(layout="full", length=20)
    assert s.x.shape == (12, 20, 1)
    assert (part == 0).all() and seq.ravel().tolist() == list(range(12))


def test_windows_cover_every_offset_and_take_the_last_steps_label():
    cfg, d, s, seq, part = arranged(layout="windows", length=10)
    assert len(s.x) == 12 * 11 and s.x.shape[1] == 10
    assert seq.ravel().tolist() == np.repeat(np.arange(12), 11).tolist()
    i = 11 * 3 + 4  # sequence 3, window 4 = steps 4..13
    np.testing.assert_array_equal(s.x[i], d.x_train[3, 4:14])
    assert s.y[i] == d.y_train[3, 13]


def test_stateful_chunks_keep_slot_i_on_sequence_i():
    _, d, s, seq, part = arranged(layout="chunks", length=5)
    assert seq.shape == (12, 4)  # 3 groups of 4 sequences x 4 chunks
    for k in range(12):
        assert seq[k].tolist() == list(range(4 * (k // 4), 4 * (k // 4) + 4))
        assert (part[k] == k % 4).all()
    np.testing.assert_array_equal(s.x[s.order[1, 2]], d.x_train[2, 5:10])


def test_naive_chunks_put_one_sequence_side_by_side():
    _, _, _, seq, part = arranged(layout="naive_chunks", length=5)
    assert (seq == np.arange(12)[:, None]).all()
    assert (part == np.arange(4)[None, :]).all()


def test_steps_stream_one_timestep_per_batch():
    _, d, s, seq, part = arranged(layout="steps")
    assert s.x.shape[1] == 1 and seq.shape == (60, 4)
    assert (part[:20] == np.arange(20)[:, None]).all()
    assert (seq[:20] == np.arange(4)).all()


def test_shuffle_samples_moves_samples_between_slots_and_batch_keeps_batches():
    cfg, _, s, _, _ = arranged(layout="chunks", length=5, shuffle="samples")
    o = layouts.epoch_order(s, cfg, 1)
    assert sorted(o.ravel()) == sorted(s.order.ravel())
    assert (s.seq_id[o] != s.seq_id[s.order]).any()
    cfg_b = cfg.replace(shuffle="batch")
    ob = layouts.epoch_order(s, cfg_b, 1)
    assert [sorted(r) for r in ob.tolist()] == [sorted(r) for r in s.order.tolist()]
    assert (ob != s.order).any()
    assert (layouts.epoch_order(s, cfg.replace(shuffle="off"), 3) == s.order).all()


@pytest.mark.parametrize("policy,expected", [
    ("never", [1, 0, 0, 0, 0, 0, 0, 0]),
    ("epoch", [1, 0, 0, 0, 0, 0, 0, 0]),
    ("sequence", [1, 0, 0, 0, 1, 0, 0, 0]),
])
def test_reset_policies_mark_the_right_batches(policy, expected):
    cfg, _, s, _, _ = arranged(layout="chunks", length=5, reset=policy)
    assert layouts.resets(s, s.order, cfg, first_epoch=True)[:8].astype(int).tolist() == expected
    later = layouts.resets(s, s.order, cfg, first_epoch=False)[0]
    assert later == (policy != "never")
    assert layouts.resets(s, s.order, cfg.replace(stateful=False), True).all()


def test_partial_batch_is_trimmed_with_a_note_or_refused():
    cfg = RunConfig(layout="chunks", length=5, batch_size=5, sequences=14, seq_len=20)
    d = make_task(cfg)
    s = layouts.arrange(d.x_train, d.y_train, cfg)
    assert s.order.shape == (8, 5) and "Trimmed 2 of 12 sequences" in s.notes[0]
    one = cfg.replace(batch_size=11)
    assert "silently broadcast" in layouts.arrange(d.x_train, d.y_train, one).notes[0]
    with pytest.raises(ConfigError, match="partial final batch"):
        layouts.arrange(d.x_train, d.y_train, cfg.replace(remainder="refuse"))
    padded = layouts.arrange(d.x_train, d.y_train, cfg, pad=True)
    assert padded.order.shape == (12, 5) and (padded.order[-4:, 2:] == -1).all()


def test_config_problems_and_url_round_trip():
    cfg = RunConfig(layout="chunks", length=5, units=32, lr=0.003, stateful=False)
    back, errs = RunConfig.from_mapping(cfg.to_query())
    assert back == cfg and errs == []
    assert RunConfig(layout="chunks", length=3).problems()
    bad, errs = RunConfig.from_mapping({"units": "9999", "shuffle": "sometimes", "lr": "nan"})
    assert bad == RunConfig() and len(errs) == 3


def test_first_element_task_is_balanced_and_sized_like_the_blog():
    d = make_task(RunConfig(seed=4))
    assert d.x_train.shape == (1000, 20, 1) and d.x_val.shape == (200, 20, 1)
    assert d.y_train[:, 0].sum() == 500 and d.y_val[:, 0].sum() == 100
    assert (d.x_train[:, 1:] == 0).all()


def test_runs_over_the_servers_batch_budget_are_refused_with_a_message(monkeypatch):
    from models import limits
    cfg, _, s, _, _ = arranged(layout="steps", epochs=10)
    assert layouts.check_budget(s, cfg) == 600
    monkeypatch.setattr(limits, "MAX_TOTAL_BATCHES", 599)
    with pytest.raises(ConfigError, match="would train 600 batches; this server allows 599"):
        layouts.check_budget(s, cfg)


def _full_preview(cfg):
    """What preview() must equal: arrange the whole set, shuffle epoch 1, look up the tags."""
    d = make_task(cfg)
    s = layouts.arrange(d.x_train, d.y_train, cfg)
    order = layouts.epoch_order(s, cfg, 1)
    return d, s, s.seq_id[order], s.part[order]


@pytest.mark.parametrize("layout,length", [("full", 20), ("windows", 7), ("chunks", 5),
                                           ("naive_chunks", 4), ("steps", 1)])
@pytest.mark.parametrize("shuffle", ["off", "samples", "batch"])
@pytest.mark.parametrize("batch_size", [4, 5])  # 12 train sequences: 5 leaves a remainder
def test_preview_and_count_agree_exactly_with_arrange(layout, length, shuffle, batch_size):
    cfg = RunConfig(sequences=14, seq_len=20, layout=layout, length=length, shuffle=shuffle,
                    batch_size=batch_size, seed=7)
    d, s, seq, part = _full_preview(cfg)
    assert layouts.count_batches(cfg, d.x_train.shape[0]) == s.n_batches
    val = layouts.arrange(d.x_val, d.y_val, cfg, pad=True)
    assert layouts.count_batches(cfg, d.x_val.shape[0], pad=True) == val.n_batches
    for k in (3, 40):
        p = layouts.preview(d.x_train, d.y_train, cfg, max_batches=k)
        got_seq, got_part, notes = p
        np.testing.assert_array_equal(got_seq, seq[:k])
        np.testing.assert_array_equal(got_part, part[:k])
        assert notes == s.notes and p.n_batches == s.n_batches
        assert got_seq.shape == (min(k, s.n_batches), batch_size)


def test_preview_builds_only_what_it_draws():
    """The issue's largest config: arrange() would materialise ~170 MB of windows; the preview
    of its first 40 batches allocates a few hundred KB (tracemalloc)."""
    import tracemalloc
    cfg = RunConfig(layout="windows", length=100, units=64, sequences=5000, seq_len=200,
                    batch_size=1000)
    x = np.zeros((4167, 200, 1), np.float32)  # make_task's array: the view has it already
    tracemalloc.start()
    try:
        p = layouts.preview(x, None, cfg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert p.n_batches == 4167 * 101 // 1000 and p[0].shape == (40, 1000)
    assert peak < 2_000_000


def test_count_batches_refuses_like_arrange():
    cfg = RunConfig(layout="chunks", length=5, batch_size=5, sequences=14, seq_len=20,
                    remainder="refuse")
    with pytest.raises(ConfigError, match="partial final batch"):
        layouts.count_batches(cfg, 12)
    with pytest.raises(ConfigError, match="larger than the 3 sequences"):
        layouts.count_batches(cfg.replace(batch_size=4, remainder="trim"), 3)
