"""Shared fixtures. Tests never touch the network: sockets are refused for the whole session."""
import socket

import pytest


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a network connection fails loudly inside a test."""

    def refuse(*args, **kwargs):
        raise OSError("network access is not allowed in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def tmp_course_dirs(tmp_path, monkeypatch):
    """Point data, cache and results folders at a temporary place."""
    for name in ("DATA", "CACHE", "RESULTS"):
        monkeypatch.setenv(f"COURSE_{name}_DIR", str(tmp_path / name.lower()))
    return tmp_path
