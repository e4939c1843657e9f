"""A small class over Streamlit's own websocket protocol (bench/class_load.py with 5 students).

The teacher starts a class from the lesson page (the "Start a class" button), lands on the
?teacher=KEY page; 5 students open the class link and lock in known predictions for step 1
(choices 1, 1, 1, 2, 2: uneven, and one choice nobody picked); the teacher's page, rerun every
second by its fragment, must then show exactly those counts. No timing is asserted here
(`python bench/class_load.py` prints the figures).
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_teacher_page_counts_the_predictions_five_students_locked_in(streamlit_server):
    out = subprocess.run(
        [sys.executable, "bench/class_load.py", "--url", streamlit_server, "--students", "5",
         "--repeats", "1", "--budget", "45", "--no-quiet", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    [c] = json.loads(out.stdout)["classes"]
    assert c["problems"] == [], c
    assert len(c["class_code"]) == 6  # shown on the teacher's page
    assert c["teacher_polls_every_s"] == 1.0  # the counts fragment's run_every
    assert c["students_loaded"] == 5 and c["answered"] == 5 and c["confirmed"] == 5, c
    # Before any answer the teacher's page said "No predictions yet."
    assert c["shown_before"] == {"1": 0, "2": 0, "3": 0}, c
    # The answers given (the bench's pattern, repeat 0) and what the teacher's page showed.
    given = {"1": 3, "2": 2, "3": 0}
    assert c["expected"] == given and c["expected_shown"] == given
    assert c["shown"] == given and c["shown_n"] == 5, c
    assert c["correct"] and c["s_from_last_answer"] is not None


def test_bad_arguments_get_a_message_not_a_traceback():
    out = subprocess.run([sys.executable, "bench/class_load.py", "--lesson", "no-such-lesson"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "error:" in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
