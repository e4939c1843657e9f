"""The command line, run as a user would (a real subprocess, real Keras)."""
import json
import subprocess
import sys

import numpy as np

from models.trace import Trace


def cli(*args):
    return subprocess.run([sys.executable, "-m", "models", *args], capture_output=True, text=True,
                          timeout=300)


def test_presets_lists_one_name_a_line():
    out = cli("presets")
    assert out.returncode == 0
    names = out.stdout.split()
    assert "seed004-streams-stateful" in names and "partial-batch-trap" in names


def test_run_json_reports_epochs_and_carry_check_and_saves_the_trace(tmp_path):
    path = tmp_path / "t.npz"
    out = cli("run", "chunks-stateful", "--epochs", "2", "--json", "--trace", str(path))
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)  # stdout holds the JSON object only; progress went to stderr
    assert r["preset"] == "chunks-stateful" and len(r["epochs"]) == 2
    assert set(r["epochs"][0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    assert r["carry_check"]["carried"] > 0 and r["carry_check"]["max_carry_error"] == 0.0
    # every key of the trace's carry check, not a copied subset
    assert set(r["carry_check"]) == set(Trace.load(path).carry_check())
    assert r["carry_check"]["continuation"] == r["carry_check"]["carried"]
    assert "epoch 2" in out.stderr
    t = Trace.load(path)
    assert t.n == 160 and t.h0.shape == (160, 50, 10) and t.seq_id.dtype == np.int32
    assert t.config_dict()["layout"] == "chunks"


def test_bad_input_gets_a_message_not_a_traceback():
    for args, words in ((("run", "no-such-preset"), "no preset"),
                        (("run", "chunks-stateful", "--epochs", "0"), "Epochs must be between"),
                        (("bench", "--cells-only", "--repeat", "0"), "--repeat must be at least 1")):
        out = cli(*args)
        assert out.returncode == 2 and words in out.stderr
        assert "Traceback" not in out.stderr


def test_claims_checks_the_chosen_claims_and_says_what_was_measured():
    out = cli("claims", "--only", "keras-two-leftover-fails", "shuffle-samples-carries-nothing", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    got = {c["id"]: c for c in r["claims"]}
    assert set(got) == {"keras-two-leftover-fails", "shuffle-samples-carries-nothing"}
    assert all(c["holds"] for c in got.values())
    assert "Incompatible shapes" in got["keras-two-leftover-fails"]["measured"]
    assert got["shuffle-samples-carries-nothing"]["values"]["value"] == 0
    assert set(r["run_seconds"]) == {"shuffle-samples-resets", "trap2"}  # only what they need
    bad = cli("claims", "--only", "no-such-claim")
    assert bad.returncode == 2 and "no claim 'no-such-claim'" in bad.stderr and "Traceback" not in bad.stderr
