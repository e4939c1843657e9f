"""Several students at once, over Streamlit's own websocket protocol (bench/ws_load.py, small).

The bench is how the class-of-40 figures are measured; this runs it with three sessions
against the test server, so the protocol client and what it checks (a result, its flow
figure, the settings in the share link) keep working.
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_three_sessions_on_one_preset_all_get_their_flow(streamlit_server):
    out = subprocess.run(
        [sys.executable, "bench/ws_load.py", "--url", streamlit_server, "--sessions", "3",
         "--scenario", "A", "--budget", "240", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    [a] = json.loads(out.stdout)["scenarios"]
    assert a["finished"] == 3 and a["lost"] == 0 and a["flow_figures"] == 3, a
    assert a["finished_without_flow"] == 0 and a["result_run_cut"] == 0
    assert a["problems"] == [], a["problems"]  # the trained settings are the link's
