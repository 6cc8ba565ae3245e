"""The check machinery and the lesson-00 checks: friendly feedback, never a crash for a grader."""
import os
import signal
import sys
import threading
import time

import pytest
import torch

from course_lib import checks
from course_lib.checks import _core


def good_softmax(x):
    e = (x - x.max(dim=-1, keepdim=True).values).exp()
    return e / e.sum(dim=-1, keepdim=True)


def test_success_prints_tick_and_returns_true(capsys):
    assert checks.check_stable_softmax(good_softmax) is True
    assert "stable_softmax: all checks passed" in capsys.readouterr().out


def test_not_implemented_is_friendly(capsys):
    def stub(x):
        raise NotImplementedError("Exercise 0.1: write the body of `stable_softmax`")

    assert checks.check_stable_softmax(stub) is False
    assert "not implemented yet: Exercise 0.1" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint", [
    (lambda x: x.exp() / x.exp().sum(-1, keepdim=True), "subtract each row's maximum"),
    (lambda x: (x - x.max()).exp() / (x - x.max()).exp().sum(), "normalise along the last dimension"),
    (lambda x: [0.1, 0.2], "expected a torch.Tensor"),
])
def test_softmax_mistakes_get_hints(fn, hint):
    with pytest.raises(AssertionError, match=hint):
        checks.check_stable_softmax(fn)


def test_in_place_edit_is_caught():
    def in_place(x):
        x -= x.max(dim=-1, keepdim=True).values
        e = x.exp()
        return e / e.sum(dim=-1, keepdim=True)

    with pytest.raises(AssertionError, match="changed its input in place"):
        checks.check_stable_softmax(in_place)


@pytest.mark.parametrize("fn, hint", [
    (lambda logits, labels: int((logits.argmax(1) == labels).sum()), "RIGHT predictions"),
    (lambda logits, labels: int((logits.argmax(0)[:1] != labels).sum()), "dim=1"),
    (lambda logits, labels: logits.argmax(1) != labels, "sum the wrong predictions"),
])
def test_count_errors_mistakes_get_hints(fn, hint):
    assert checks.check_count_errors(lambda lg, lb: int((lg.argmax(1) != lb).sum())) is True
    with pytest.raises(AssertionError, match=hint):
        checks.check_count_errors(fn)


def test_run_check_survives_anything(monkeypatch):
    monkeypatch.setattr(_core, "TIME_LIMIT_S", 0.5)

    def loops(x):
        while True:
            pass

    def crashes(x):
        return 1 / 0

    def exits(x):
        sys.exit(3)

    results = {name: checks.run_check(checks.check_stable_softmax, fn)
               for name, fn in [("loops", loops), ("crashes", crashes), ("exits", exits), ("good", good_softmax),
                                ("not a function", 42)]}
    assert "stopped after" in results["loops"].message
    assert "ZeroDivisionError" in results["crashes"].message and "line" in results["crashes"].message
    assert results["exits"].status == "failed"
    assert results["good"].passed and results["good"].status == "passed"
    assert results["not a function"].status == "failed" and "expected a function" in results["not a function"].message

    def stub(x):
        raise NotImplementedError("Exercise 0.1")

    result = checks.run_check(checks.check_stable_softmax, stub)
    assert (result.passed, result.status) == (False, "not implemented")


def test_assert_close_reports_the_largest_difference():
    with pytest.raises(AssertionError, match=r"largest difference 0.5\b"):
        checks.assert_close(torch.tensor([1.0, 2.5]), torch.tensor([1.0, 2.0]), "x", "hint")
    with pytest.raises(AssertionError, match=r"shape \(3,\), expected \(2,\)"):
        checks.assert_close(torch.zeros(3), torch.zeros(2), "x", "hint")


# ----------------------------------------------------------------------------- run_check in a child process
# Each test below failed with the in-process runner: the process ended, results came twice, the check
# ran on past its limit, or the message held megabytes.
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="run_check isolates only where os.fork exists")


@needs_fork
def test_os_exit_in_the_learners_function_is_a_failed_result():
    def exits(x):
        os._exit(0)

    result = checks.run_check(checks.check_stable_softmax, exits, time_limit_s=20)
    assert result.status == "failed" and "exit code 0" in result.message and "os._exit" in result.message


@needs_fork
def test_a_crash_of_the_check_process_is_a_failed_result():
    def crashes_hard(x):
        os.kill(os.getpid(), signal.SIGSEGV)

    result = checks.run_check(checks.check_stable_softmax, crashes_hard, time_limit_s=20)
    assert result.status == "failed" and "SIGSEGV" in result.message


@needs_fork
def test_os_fork_in_the_learners_function_fails_once_and_leaves_no_process(tmp_path):
    pids = tmp_path / "pids"

    def forks(x):
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
        os.fork()
        return good_softmax(x)

    result = checks.run_check(checks.check_stable_softmax, forks, time_limit_s=20)
    assert result.status == "failed" and "os.fork" in result.message
    time.sleep(0.2)
    for line in pids.read_text().split():  # every process that ran the learner's code is gone
        assert not _running(int(line))


def _running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (killed, waiting for its new parent to reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@needs_fork
@pytest.mark.parametrize("stubborn", ["catches the timeout", "ignores SIGALRM"])
def test_a_function_that_defeats_the_call_limit_is_stopped_by_the_wall_clock(monkeypatch, stubborn):
    monkeypatch.setattr(_core, "TIME_LIMIT_S", 0.2)

    def catches(x):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                while True:
                    pass
            except _core.LearnerTimeout:
                pass

    def ignores(x):
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(60)

    start = time.monotonic()
    result = checks.run_check(checks.check_stable_softmax, catches if stubborn == "catches the timeout" else ignores,
                              time_limit_s=1.5)
    assert time.monotonic() - start < 10
    assert result.status == "failed" and "stopped after 1.5 s" in result.message


@needs_fork
def test_off_the_main_thread_the_limit_still_holds():
    def loops(x):
        while True:
            pass

    results = []
    thread = threading.Thread(target=lambda: results.append(checks.run_check(checks.check_stable_softmax, loops,
                                                                             time_limit_s=1.5)))
    thread.start()
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert results[0].status == "failed" and "stopped after" in results[0].message


def test_a_huge_print_is_cut_in_the_message():
    def floods(x):
        print("x" * 10_000_000)
        return good_softmax(x)

    result = checks.run_check(checks.check_stable_softmax, floods, time_limit_s=20)
    assert result.passed
    assert len(result.message) < checks.MESSAGE_LIMIT + 100 and "cut: " in result.message


def test_a_huge_failure_message_is_cut():
    def fails_loudly(x):
        raise ValueError("y" * 10_000_000)

    result = checks.run_check(checks.check_stable_softmax, fails_loudly, time_limit_s=20)
    assert result.status == "failed" and len(result.message) < checks.MESSAGE_LIMIT + 100


@needs_fork
def test_torch_works_in_the_check_process_after_the_parent_used_its_thread_pool():
    a = torch.randn(400, 400)
    (a @ a).sum()  # the parent's intra-op pool has run
    result = checks.run_check(checks.check_kd_loss, lambda s, t, temperature: _reference_kd(s, t, temperature),
                              time_limit_s=60)
    assert result.passed, result.message


def _reference_kd(student, teacher, temperature):
    log_s = torch.log_softmax(student / temperature, dim=-1)
    log_t = torch.log_softmax(teacher.detach() / temperature, dim=-1)
    return (log_t.exp() * (log_t - log_s)).sum(-1).mean() * temperature**2


def test_a_slow_call_is_told_the_reference_time_not_an_infinite_loop(monkeypatch):
    monkeypatch.setattr(_core, "TIME_LIMIT_S", 0.3)
    monkeypatch.setattr(_core, "TIME_LIMIT_FACTOR", 2.0)

    def slow(x):
        time.sleep(1.0)
        return good_softmax(x)

    with pytest.raises(AssertionError) as info:
        checks.check_stable_softmax(slow)
    message = str(info.value)
    assert "the course's solution took" in message and "on this machine" in message
    assert "infinite loop" not in message
