"""The Keras code view's script runs for every preset (quick mode: 1 epoch, a few batches; one
of them alone in a fresh interpreter, as a user runs it, the rest two interpreters between them),
and reproduces the settings it was generated from. A stateful script ends by streaming a held-out
sequence through a batch-1 copy of the trained model, one step at a time; what it prints must
match slot 0 of the trained model fed the same sequence (issue 14)."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from models.codegen import generate
from models.config import RunConfig
from models.presets import PRESETS

RUNNER = Path(__file__).with_name("script_runner.py")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
ALONE = "chunks-stateful"  # this one runs in an interpreter of its own, exactly as a user runs it


def _write(name: str, tmp_path) -> Path:
    path = tmp_path / f"{name.replace('-', '_')}.py"
    path.write_text(generate(PRESETS[name].config, quick=True))
    return path


def _alone(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=300, cwd=path.parent, env=ENV)


def _together(paths: list[Path]) -> dict[Path, subprocess.CompletedProcess]:
    """The scripts one after another in one interpreter (tests/script_runner.py)."""
    proc = subprocess.run([sys.executable, str(RUNNER), *map(str, paths)], capture_output=True,
                          text=True, timeout=600, cwd=paths[0].parent, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {p: subprocess.CompletedProcess(p, int(p.with_suffix(".rc").read_text()),
                                           p.with_suffix(".out").read_text(),
                                           p.with_suffix(".err").read_text()) for p in paths}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """name -> the finished script (return code, stdout, stderr). Two interpreters share the
    presets' scripts (one per core), a third runs ALONE's by itself."""
    tmp = tmp_path_factory.mktemp("scripts")
    paths = {name: _write(name, tmp) for name in PRESETS}
    rest = [paths[n] for n in PRESETS if n != ALONE]
    with ThreadPoolExecutor(max_workers=3) as pool:
        alone = pool.submit(_alone, paths[ALONE])
        halves = [pool.submit(_together, rest[i::2]) for i in range(2)]
        done = {p: r for h in halves for p, r in h.result().items()}
        done[paths[ALONE]] = alone.result()
    return {name: done[path] for name, path in paths.items()}


@pytest.mark.parametrize("name", list(PRESETS))
def test_script_trains(outcomes, name):
    proc = outcomes[name]
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    metric = "val_mae" if PRESETS[name].config.task == "sine" else "val_accuracy"
    assert last.startswith(metric + " "), proc.stdout[-1000:]
    float(last.split()[1])


def _steps(stdout: str, who: str) -> dict[int, list[np.ndarray]]:
    """step -> [output, state tensor, ...] from the script's '<who> step t: output .. | h ..' lines."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith(f"{who} step "):
            head, *parts = line.split("|")
            t, out = head[len(who) + 6:].split(": output ")
            rows[int(t)] = [np.array(out.split(), float)] + [
                np.array(p.split()[1:], float) for p in parts]
    return rows


def check_stream(stdout: str, cfg) -> None:
    """The batch-1 copy's printed answers and states, at the steps slot 0 was read, are slot 0's
    (to the printed digits: 6 for answers, 4 for states); the copy's state moved along the
    stream (it carried), and the printed states are every layer's (and direction's) h (and c)."""
    from models.inference import per_call, state_keys
    copy, slot0 = _steps(stdout, "copy"), _steps(stdout, "slot0")
    n = per_call(cfg)  # one step per call; one whole sample for a Bidirectional layer
    assert sorted(copy) == list(range(n - 1, cfg.seq_len, n)), stdout[-2000:]
    assert sorted(slot0) == list(range(cfg.sample_len - 1, cfg.seq_len, cfg.sample_len))
    n_states = len(state_keys(cfg))  # every layer's (and direction's)
    for t, (out, *states) in slot0.items():
        assert len(states) == n_states and all(len(s) == cfg.units for s in states)
        assert np.abs(copy[t][0] - out).max() <= 2e-6, (t, copy[t][0], out)
        for a, b in zip(copy[t][1:], states):
            assert np.abs(a - b).max() <= 1.5e-4, (t, a, b)
    # the first and last calls (one step each, or one whole sample for a Bidirectional layer)
    first, last = copy[min(copy)][1:], copy[max(copy)][1:]
    assert max(np.abs(a - b).max() for a, b in zip(first, last)) > 1e-3  # the state moved
    worst = stdout.split("batch-1 copy vs slot 0: max |difference| ")[1].split()[0]
    assert float(worst) <= 1e-5


@pytest.mark.parametrize("name", [n for n, p in PRESETS.items() if p.config.stateful])
def test_script_streams_a_batch1_copy_like_slot0(outcomes, name):
    proc = outcomes[name]
    assert proc.returncode == 0, proc.stderr[-2000:]
    check_stream(proc.stdout, PRESETS[name].config)


def test_stateless_script_has_no_batch1_copy():
    src = generate(PRESETS["chunks-stateful"].config.replace(stateful=False))
    assert "clone_model" not in src and "batch-1" not in src


def test_bidirectional_script_streams_whole_samples_through_a_copy_built_anew():
    src = generate(PRESETS["bidirectional-chunks-stateful"].config)
    assert "PER_CALL = SAMPLE_LEN" in src and "keras.models.clone_model(" not in src
    assert "STATE_NAMES = ['h', 'c', 'h_bw', 'c_bw']" in src


@pytest.mark.parametrize("name", list(PRESETS))
def test_script_states_the_settings(name):
    cfg = PRESETS[name].config
    src = generate(cfg)
    compile(src, f"{name}.py", "exec")
    assert f"SEED = {cfg.seed}" in src
    assert f"EPOCHS, LR = {cfg.batch_size}, {cfg.units}, {cfg.epochs}, {cfg.lr!r}" in src
    assert "shuffle=False" in src and "reset_state()" in src
    if cfg.stateful:
        assert "keras.Input(batch_shape=(BATCH_SIZE, SAMPLE_LEN, N_FEATURES))" in src
    else:
        assert "batch_shape" not in src.split("inputs =")[1].splitlines()[0]
    assert "MAX_BATCHES = None" in src


def test_quick_mode_is_one_epoch():
    src = generate(RunConfig(epochs=50), quick=True)
    assert "EPOCHS, LR = 100, 10, 1, 0.01" in src and "MAX_BATCHES = 8" in src


def test_refuses_a_bad_config():
    from models.config import ConfigError
    with pytest.raises(ConfigError):
        generate(RunConfig(layout="chunks", length=7))


def test_one_step_scripts_build_the_engines_layer(tmp_path):
    """GRU and SimpleRNN on one-step samples: the engine builds the layer with unroll=True
    (models/cells.unroll), and so does the script; it trains, and its batch-1 copy still
    streams like slot 0. Each script prints its layer's config, compared with the engine's."""
    import json
    from models.cells import unroll
    from models.engine import build_model, rnn_layers
    keys = ("units", "stateful", "unroll", "activation", "recurrent_activation", "use_bias",
            "go_backwards", "reset_after")
    cfgs = {cell: PRESETS["seed004-steps-stateful"].config.replace(cell=cell, batch_size=10,
                                                                   sequences=60)
            for cell in ("GRU", "SimpleRNN")}
    paths = {}
    for cell, cfg in cfgs.items():
        assert unroll(cell, cfg.sample_len) and "unroll=True" in generate(cfg)
        assert "unroll" not in generate(cfg.replace(layout="chunks", length=5))
        paths[cell] = tmp_path / f"one_step_{cell.lower()}.py"
        paths[cell].write_text(generate(cfg, quick=True) + "\nimport json as _j\nprint('LAYER', _j.dumps("
                               f"{{k: v for k, v in rnn.get_config().items() if k in {keys!r}}}))\n")
    done = _together(list(paths.values()))
    for cell, cfg in cfgs.items():
        proc = done[paths[cell]]
        assert proc.returncode == 0, proc.stderr[-2000:]
        line = next(x for x in proc.stdout.splitlines() if x.startswith("LAYER "))
        script = json.loads(line[6:])
        model = build_model(cfg, 1, 1, "binary")[0]
        (layer,) = rnn_layers(model)
        engine = {k: v for k, v in layer.get_config().items() if k in keys}
        assert script == json.loads(json.dumps(engine)) and script["unroll"] is True, (script, engine)
        check_stream(proc.stdout.split("LAYER ")[0], cfg)
