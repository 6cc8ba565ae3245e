"""Shared fixtures. Tests never touch the network, and no test leaks global state into the next one."""
import os
import random
import socket

import numpy as np
import pytest
import torch

from course_lib import config, timing

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a network connection fails loudly inside a test."""

    def refuse(*args, **kwargs):
        raise OSError("network access is not allowed in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(autouse=True)
def no_leaked_state():
    """Restore what a test may change behind the next test's back, and fail loudly where it should not have.

    Thread count and ``config.FAST`` are restored and the test fails (use the ``pinned_one_thread``
    fixture or ``monkeypatch``); the environment and the global RNGs (torch, NumPy, Python) are
    restored silently, since seeding inside a test is normal and some library code sets
    environment variables on purpose.
    """
    threads, fast, environ = torch.get_num_threads(), config.FAST, dict(os.environ)
    rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    yield
    leaked = []
    if torch.get_num_threads() != threads:
        leaked.append(f"torch threads {threads} -> {torch.get_num_threads()}")
        torch.set_num_threads(threads)
    if config.FAST != fast:
        leaked.append(f"config.FAST {fast} -> {config.FAST}")
        config.FAST = fast
    if dict(os.environ) != environ:
        os.environ.clear()
        os.environ.update(environ)
    torch.set_rng_state(rng[0])
    np.random.set_state(rng[1])
    random.setstate(rng[2])
    if cuda_rng is not None:
        torch.cuda.set_rng_state_all(cuda_rng)
    if leaked:
        pytest.fail("test leaked global state (restored now): " + "; ".join(leaked), pytrace=False)


@pytest.fixture
def pinned_one_thread():
    """Run the test on one CPU thread (bitwise-repeatable training), then restore the thread count."""
    with timing.pinned_threads(1):
        yield


@pytest.fixture
def models_never_move(monkeypatch):
    """Any helper that moves a model (``.to``, ``.cuda``, ``.cpu``) fails the test: helpers move inputs."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("a helper moved a model")

    for name in ("to", "cuda", "cpu"):
        monkeypatch.setattr(torch.nn.Module, name, refuse)


@pytest.fixture
def tmp_course_dirs(tmp_path, monkeypatch):
    """Point data, cache and results folders at a temporary place."""
    for name in ("DATA", "CACHE", "RESULTS"):
        monkeypatch.setenv(f"COURSE_{name}_DIR", str(tmp_path / name.lower()))
    return tmp_path
