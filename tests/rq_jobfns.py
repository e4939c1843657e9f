"""Job functions for tests/test_rq.py: module-level, so they pickle onto the RQ queue and
import in a real worker process."""
import time


def count_until_cancelled(ctx, limit: float = 60.0):
    """Publishes a growing list and progress until cancelled (or `limit` s)."""
    seen, t0 = [], time.monotonic()
    while not ctx.cancelled.is_set() and time.monotonic() - t0 < limit:
        seen.append(len(seen))
        ctx.progress(min(1.0, len(seen) / 1000), {"phase": "training", "done": len(seen)})
        ctx.publish("seen", list(seen))
        ctx.cancelled.wait(0.05)
    return {"seen": len(seen), "cancelled": ctx.cancelled.is_set()}


def fail(ctx):
    raise ValueError("bad input, said the job")


def wait_until_cancelled(ctx, limit: float = 120.0):
    """Runs without reporting progress (a wait estimate then uses its own estimate)."""
    ctx.cancelled.wait(limit)
    return {"cancelled": ctx.cancelled.is_set()}


def in_flight(ctx, run_id: str):
    """What models.training.train_job does around a run: the store's in-flight marker, then
    training (here: waiting) until cancelled."""
    from models import hosting
    store = hosting.get_store(local_copy=False)
    store.started(run_id, "{}")
    try:
        return wait_until_cancelled(ctx)
    finally:
        store.ended(run_id)
