"""The queue board (models/queue_board.py): one file, every waiting job's place, no job ids."""
import json
import threading
import time

from models import queue_board
from models.jobs import JobManager


def test_the_board_lists_each_queued_job_under_its_token_and_empties_when_the_queue_does(tmp_path):
    m = JobManager(max_workers=1)
    gate = threading.Event()

    def blocker(ctx):
        while not gate.is_set() and not ctx.cancelled.is_set():
            gate.wait(0.01)

    path = tmp_path / "static" / "queue-1.json"
    board = queue_board.QueueBoard(m.queue_starts, path, lambda eta: f"eta={eta}", every=0.02)
    try:
        assert json.loads(path.read_text())["jobs"] == {}  # written at once: no stale board
        m.submit(blocker, owner="a")
        queued = [m.submit(blocker, owner=o) for o in ("b", "c")]
        deadline = time.monotonic() + 5
        while len(json.loads(path.read_text())["jobs"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        t_seen = time.time()
        shown = json.loads(path.read_text())
        assert shown["jobs"] == {queue_board.token(j): {"pos": i, "when": "eta=None"}
                                 for i, j in enumerate(queued, 1)}
        assert not any(j in path.read_text() for j in queued)  # tokens, never ids
        m.cancel(queued[0])
        while time.monotonic() < deadline:
            shown = json.loads(path.read_text())
            if shown["t"] > t_seen and len(shown["jobs"]) == 1:
                break
            time.sleep(0.01)
        assert shown["jobs"] == {queue_board.token(queued[1]): {"pos": 1, "when": "eta=None"}}
        gate.set()
        while json.loads(path.read_text())["jobs"] and time.monotonic() < deadline + 5:
            time.sleep(0.01)
        assert json.loads(path.read_text())["jobs"] == {}  # and no job left behind
    finally:
        board.stop()
        gate.set()
