"""Shared by the check tests (``test_checks_lessonNN.py``): a learner's unwritten function, and what a
failing check's message must say."""
from __future__ import annotations

import pytest


def stub(*args, **kwargs):
    """An exercise not written yet: the checks report it as 'not implemented yet'."""
    raise NotImplementedError("write your code here")


def failure_message(check, fn) -> str:
    """The message of the AssertionError ``check(fn)`` must raise."""
    with pytest.raises(AssertionError) as info:
        check(fn)
    return str(info.value)


def assert_hints(hints: dict, check, fn, *keys) -> None:
    """The check fails, and its message contains exactly the hints ``keys`` of ``hints``."""
    message = failure_message(check, fn)
    assert sorted(k for k, text in hints.items() if text in message) == sorted(keys), message


def assert_hint(hints: dict, check, fn, key) -> None:
    """The check fails, and its message contains the hint ``key`` (others may be there too)."""
    message = failure_message(check, fn)
    assert hints[key] in message, message
