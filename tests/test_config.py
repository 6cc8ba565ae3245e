import os
import subprocess
import sys

import numpy as np
import pytest
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


def test_config_hash_sees_every_element_of_a_tensor():
    """Two 5,000-element tensors that differ in one middle element get different keys (a repr would truncate)."""
    a = torch.zeros(5000)
    keys = {config.config_hash({"x": a})}
    for where in (1, 2500, 4998):
        b = a.clone()
        b[where] = 1e-7
        keys.add(config.config_hash({"x": b}))
    keys.add(config.config_hash({"x": a.double()}))  # same values, another dtype
    keys.add(config.config_hash({"x": a.reshape(50, 100)}))  # same bytes, another shape
    assert len(keys) == 6
    assert config.config_hash({"x": a}) == config.config_hash({"x": torch.zeros(5000)})
    assert config.config_hash({"x": a.numpy()}) != config.config_hash({"x": np.ones(5000, dtype=np.float32)})


def test_config_hash_of_a_set_is_stable_and_order_free():
    members = ["relu", "gelu", "tanh", "silu"]
    here = config.config_hash({"acts": set(members), "n": frozenset({3, 1, 2})})
    assert here == config.config_hash({"acts": set(reversed(members)), "n": frozenset({2, 3, 1})})
    assert here != config.config_hash({"acts": set(members[:3]), "n": frozenset({3, 1, 2})})
    # string hashing is randomised per process, so set order differs between processes: the key must not
    script = "from course_lib import config; print(config.config_hash({'acts': set(%r), 'n': frozenset({3, 1, 2})}))"
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", script % members], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        assert out == here


@pytest.mark.parametrize("bad", [lambda x: x, print, object()])
def test_config_hash_refuses_what_it_cannot_hash(bad):
    with pytest.raises(TypeError, match=r"config\['fn'\].*no stable value"):
        config.config_hash({"fn": bad})


def test_config_hash_keeps_plain_json_keys_unchanged():
    """Plain JSON configs hash exactly as before (json.dumps, sorted keys): existing caches stay valid."""
    import hashlib
    import json

    cfg = {"arch": "CNN", "channels": [16, 32, 64], "lr": 2e-3, "seed": 0, "flag": True, "none": None}
    assert config.config_hash(cfg) == hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


def test_fast_warning_only_in_fast_mode(monkeypatch):
    """FAST mode says in words that its numbers are smoke tests; full mode says nothing."""
    monkeypatch.setattr(config, "FAST", True)
    text = config.fast_warning("tiny data")
    assert text.startswith("FAST mode (tiny data): ") and "smoke test" in text and "may contradict the text" in text
    monkeypatch.setattr(config, "FAST", False)
    assert config.fast_warning("tiny data") == ""
