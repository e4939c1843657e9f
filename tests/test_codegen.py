"""The Keras code view's script runs, standalone, for every preset (quick mode: 1 epoch, a few
batches), and reproduces the settings it was generated from."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from models.codegen import generate
from models.config import RunConfig
from models.presets import PRESETS


def _run(name: str, tmp_path) -> tuple[str, subprocess.CompletedProcess]:
    path = tmp_path / f"{name}.py"
    path.write_text(generate(PRESETS[name].config, quick=True))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
    return name, proc


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scripts")
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(pool.map(lambda n: _run(n, tmp), PRESETS))


@pytest.mark.parametrize("name", list(PRESETS))
def test_script_trains(outcomes, name):
    proc = outcomes[name]
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    metric = "val_mae" if PRESETS[name].config.task == "sine" else "val_accuracy"
    assert last.startswith(metric + " "), proc.stdout[-1000:]
    float(last.split()[1])


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
