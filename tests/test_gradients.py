"""What the state says and where the gradient stops, recomputed independently from the trace.

The engine records, inside the train step, the readout from h0 (the model's Dense layer applied to
the state the batch starts from) and, from the step's own GradientTape, |dL/dh0|, |dL/dc0| per
slot and |dL/dx_t| per timestep. Here NumPy recomputes them from the trace alone (recorded h0, c0,
the replayed batch's inputs, LSTM and Dense weights, the targets): the readout by the formula,
the gradients by central finite differences of a float64 NumPy forward pass. Corrupting the input
of the recomputation (the zero state's readout, weights of another step) makes it stop matching.
"""
import numpy as np
import pytest

from models.config import RunConfig
from models.engine import Engine
from models.trace import Trace, _lstm_numpy, gradient_summary

# The shape of tests/test_replay.py's SMALL (one pooled net for both files): B=10, L=5, 6 units.
SMALL = RunConfig(sequences=60, seq_len=20, batch_size=10, layout="chunks", length=5,
                  stateful=True, shuffle="off", reset="never", epochs=2, units=6)


def run(cfg, **kw):
    eng = Engine(cfg, **kw)
    try:
        return eng.run().trace
    finally:
        eng.close()


@pytest.fixture(scope="module")
def stateful():
    return run(SMALL)


@pytest.fixture(scope="module")
def stateless():
    return run(SMALL.replace(stateful=False))


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _readout(h, Wd, bd):
    """The Dense layer with sigmoid (first-element task: binary), float64."""
    return _sig(np.asarray(h, np.float64) @ Wd + bd)


def _losses(t: Trace, j: int, h0, c0, x, w=None):
    """Per-slot binary cross-entropy of replayed batch j after the batch, float64, from any h0,
    c0, x with a leading perturbation axis m: h0, c0 (m, S, U), x (m, S, L, F) -> (m, S)."""
    r = t.replay
    m = h0.shape[0]
    w = j if w is None else w  # whose weights (another replayed batch's: a corrupted check)
    rep = lambda a: np.repeat(a[w][None], m, axis=0)  # noqa: E731
    h, _ = _lstm_numpy(x, h0, c0, rep(r["replay_kernel"]), rep(r["replay_recurrent"]),
                       rep(r["replay_bias"]))
    p = _readout(h, r["replay_dense_kernel"][w], r["replay_dense_bias"][w])[..., 0]
    y = t.target[r["replay_batch"][j], :h0.shape[1]][None]
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def _fd_grads(t: Trace, j: int, w=None, eps=1e-5):
    """|dL/dh0|, |dL/dc0| per slot and |dL/dx_t| per step by central differences, where L is
    the mean loss over the batch's B slots (what the optimizer minimised)."""
    r = t.replay
    k = int(r["replay_batch"][j])
    x = r["replay_x"][j].astype(np.float64)
    S, Lx, F = x.shape
    h0 = t.h0[k, :S].astype(np.float64)
    c0 = t.c0[k, :S].astype(np.float64)
    B, U = t.batch_size, t.units
    out = []
    for which in ("h", "c"):
        d = np.zeros((2 * U, S, U))
        for u in range(U):
            d[2 * u, :, u], d[2 * u + 1, :, u] = eps, -eps
        hh = h0[None] + (d if which == "h" else 0)
        cc = c0[None] + (d if which == "c" else 0)
        loss = _losses(t, j, hh, cc, np.repeat(x[None], 2 * U, axis=0), w)
        g = (loss[0::2] - loss[1::2]) / (2 * eps) / B  # (U, S): dL/d state[u] per slot
        out.append(np.linalg.norm(g, axis=0))
    d = np.zeros((2 * Lx * F, S, Lx, F))
    for i, (s, f) in enumerate(np.ndindex(Lx, F)):
        d[2 * i, :, s, f], d[2 * i + 1, :, s, f] = eps, -eps
    loss = _losses(t, j, np.repeat(h0[None], len(d), 0), np.repeat(c0[None], len(d), 0), x[None] + d,
                   w)
    g = ((loss[0::2] - loss[1::2]) / (2 * eps) / B).reshape(Lx, F, S)
    out.append(np.sqrt((g ** 2).sum(axis=(1, 2))))
    return out


def test_readout_from_h0_is_the_dense_layer_applied_to_h0(stateful):
    t = stateful
    r = t.replay
    assert t.readout_h0.shape == (t.n, t.batch_size, 1) and t.target.shape == (t.n, t.batch_size)
    errs = []
    for j, k in enumerate(r["replay_batch"].tolist()):
        mine = _readout(t.h0[k], r["replay_dense_kernel"][j], r["replay_dense_bias"][j])
        errs.append(np.abs(mine - t.readout_h0[k]).max())
    print(f"readout recomputed on {len(errs)} batches: max error {max(errs):.1e}")
    assert max(errs) < 1e-6
    # epoch 2 starts from a carried state (reset: never): its readout is not the zero state's
    k = int(r["replay_batch"][1])
    zero = _readout(np.zeros_like(t.h0[k]), r["replay_dense_kernel"][1], r["replay_dense_bias"][1])
    assert np.abs(zero - t.readout_h0[k]).max() > 1e-3
    # the targets are the task's: the first value of the slot's sequence, 0 or 1
    assert set(np.unique(t.target).tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("which", ["stateful", "stateless"])
def test_gradients_match_finite_differences_of_an_independent_forward_pass(which, request):
    t = request.getfixturevalue(which)
    assert t.grad_h0.shape == (t.n, t.batch_size) and t.grad_x.shape == (t.n, SMALL.length)
    for j, k in enumerate(t.replay["replay_batch"].tolist()):
        gh, gc, gx = _fd_grads(t, j)
        for name, mine, rec in (("h0", gh, t.grad_h0[k]), ("c0", gc, t.grad_c0[k]),
                                ("x_t", gx, t.grad_x[k])):
            rel = np.abs(mine - rec).max() / np.abs(mine).max()
            print(f"{which} batch {k}: |dL/d{name}| max {np.abs(mine).max():.2e}, relative "
                  f"difference {rel:.1e}")
            assert np.abs(mine).max() > 0 and rel < 1e-4, (name, mine, rec)
        # the check can fail: with the weights of the other replayed batch (an epoch apart)
        gh, _, gx = _fd_grads(t, j, w=1 - j)
        assert np.abs(gh - t.grad_h0[k]).max() / np.abs(gh).max() > 2e-2
        assert np.abs(gx - t.grad_x[k]).max() / np.abs(gx).max() > 2e-2
    # tighter than the bound above: measured ~1e-7 relative; the bound leaves float32 room


def test_gradient_reach_inside_a_batch_fades_toward_its_first_step(stateful):
    """Within a batch the gradient of the loss (read at the last step) reaches the last step
    most and fades toward the first; it does not continue into the previous batch."""
    g = gradient_summary(stateful)
    reach = np.array(g["reach"])
    print("mean |dL/dx_t| per step, first to last:", " ".join(f"{v:.2e}" for v in reach))
    assert g["steps"] == 5 and reach[-1] > reach[0]
    assert g["carried"] > 0 and g["grad_h0_median"] > 0


def test_gradients_are_optional_and_cost_nothing_in_the_trace_format(stateful):
    t = run(SMALL.replace(epochs=1), gradients=False)
    assert t.grad_h0 is None and t.readout_h0 is not None
    assert gradient_summary(t) is None
    back = Trace.from_bytes(t.to_bytes())
    assert back.grad_x is None and np.array_equal(back.readout_h0, t.readout_h0)
    # an old trace (no new keys) still loads
    arrays = stateful.to_arrays()
    for k in ("readout_h0", "target", "grad_h0", "grad_c0", "grad_x", "replay_dense_kernel",
              "replay_dense_bias"):
        arrays.pop(k)
    old = Trace.from_arrays(arrays)
    assert old.readout_h0 is None and old.carry_check()["max_replay_error"] < 1e-5
