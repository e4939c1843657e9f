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
