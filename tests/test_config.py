import os
import subprocess
import sys

import numpy as np
import torch

from course_lib import config


def _fast_in_subprocess(value):
    env = dict(os.environ)
    if value is None:
        env.pop("COURSE_FAST", None)
    else:
        env["COURSE_FAST"] = value
    out = subprocess.run([sys.executable, "-c", "from course_lib import config; print(config.FAST)"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_fast_flag_reads_environment():
    assert _fast_in_subprocess("1") == "True"
    assert _fast_in_subprocess("0") == "False"
    assert _fast_in_subprocess(None) == "False"


def test_seed_everything_repeats_all_generators():
    def draw():
        import random
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    config.seed_everything(7)
    first = draw()
    config.seed_everything(7)
    assert draw() == first
    config.seed_everything(8)
    assert draw() != first


def test_get_device_default_and_override(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if expected == "cpu" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        expected = "mps"
    assert config.get_device().type == expected
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert config.get_device() == torch.device("cpu")


def test_folders_follow_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "c"))
    assert config.data_dir() == tmp_path / "d" and (tmp_path / "d").is_dir()
    assert config.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    monkeypatch.delenv("COURSE_DATA_DIR")
    assert config.data_dir() == config.REPO_ROOT / "data"


def test_config_hash_is_stable_and_order_free():
    import hashlib
    import json

    cfg = {"lr": 0.001, "hidden": [800, 800]}
    expected = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]
    assert config.config_hash(cfg) == expected
    assert config.config_hash({"hidden": [800, 800], "lr": 0.001}) == expected
    assert config.config_hash({"lr": 0.002, "hidden": [800, 800]}) != expected


def test_conftest_restores_leaked_state_and_fails_loudly(pytester):
    """The autouse fixture of tests/conftest.py: a test that leaks threads or FAST fails; env and RNG are restored."""
    from pathlib import Path

    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_inner='''
        import os
        import torch
        from course_lib import config

        def test_threads():
            torch.set_num_threads(max(1, torch.get_num_threads() - 1) if torch.get_num_threads() > 1 else 2)

        def test_fast():
            config.FAST = not config.FAST

        def test_env_and_rng():
            os.environ["COURSE_LEAK"] = "1"
            torch.manual_seed(99)

        def test_after():
            assert "COURSE_LEAK" not in os.environ
    ''')
    threads, state = torch.get_num_threads(), torch.get_rng_state()
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(["*leaked global state*torch threads*", "*leaked global state*config.FAST*"])
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), state)
