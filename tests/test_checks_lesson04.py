"""The lesson 04 checks accept correct answers and reject each typical mistake with its hint."""
import functools
import statistics
import time
import timeit
from time import perf_counter

import numpy as np
import pytest
import torch

from course_lib.checks import run_check
from course_lib.checks.lesson04 import HINTS, check_choose_temperature, check_median_latency
import hint_checks
from hint_checks import stub


assert_hints = functools.partial(hint_checks.assert_hints, HINTS)
_REAL_TIME = time.time


# ---- choosing the temperature on validation ------------------------------------------------------
def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def search(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_student, targets_fn=None,
           score=None, pick=None):
    """The right answer, with one piece replaceable to write each mistake."""
    targets_fn = targets_fn or (lambda logits, t: softmax(logits / t))
    score = score or (lambda student: float(np.mean(student.predict(val_texts) == val_labels)))
    accuracies = {}
    for t in temperatures:
        accuracies[t] = score(train_student(traffic_texts, targets_fn(teacher_logits, t)))
    best = pick(accuracies) if pick else max(accuracies, key=accuracies.get)
    return best, accuracies


def ct_torch(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_student):
    """Correct, with torch targets and numpy accuracies."""
    accuracies = {}
    for t in temperatures:
        targets = torch.softmax(torch.from_numpy(teacher_logits) / t, dim=-1)
        student = train_student(traffic_texts, targets)
        accuracies[t] = np.mean(student.predict(val_texts) == val_labels)
    return max(accuracies, key=accuracies.get), accuracies


def ct_in_place(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_student):
    accuracies = {}
    for t in temperatures:
        teacher_logits /= t
        accuracies[t] = float(np.mean(train_student(traffic_texts, softmax(teacher_logits)).predict(val_texts)
                                      == val_labels))
    return max(accuracies, key=accuracies.get), accuracies


def ct_only_best(*args):
    return search(*args)[0]


def ct_hard(*args):
    return search(*args, targets_fn=lambda logits, t: logits.argmax(axis=1))


def ct_hard_one_hot(*args):
    return search(*args, targets_fn=lambda logits, t: np.eye(logits.shape[1])[logits.argmax(axis=1)])


def ct_ignores_temperature(*args):
    return search(*args, targets_fn=lambda logits, t: softmax(logits))


def ct_fixed_temperature(*args):
    return search(*args, targets_fn=lambda logits, t: softmax(logits / 2.0))


def ct_multiplies(*args):
    return search(*args, targets_fn=lambda logits, t: softmax(logits * t))


def ct_wrong_axis(*args):
    return search(*args, targets_fn=lambda logits, t: np.exp(logits / t) / np.exp(logits / t).sum(axis=0))


def ct_on_traffic(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_student):
    """Chooses by agreement with the teacher on the traffic the students were trained on."""
    agree = lambda s: float(np.mean(s.predict(traffic_texts) == teacher_logits.argmax(axis=1)))  # noqa: E731
    return search(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_student, score=agree)


def ct_trains_on_validation(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_student):
    return search(teacher_logits, val_texts, val_texts, val_labels, temperatures, train_student)


def ct_counts(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_student):
    return search(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_student,
                  score=lambda s: int(np.sum(s.predict(val_texts) == val_labels)))


def ct_index(*args):
    best, accuracies = search(*args)
    return list(accuracies).index(best), accuracies


def ct_largest_tie(*args):
    return search(*args, pick=lambda acc: [t for t, a in acc.items() if a == max(acc.values())][-1])


def ct_worst(*args):
    return search(*args, pick=lambda acc: min(acc, key=acc.get))


def ct_rounded_choice(*args):
    return search(*args, pick=lambda acc: max(acc, key=lambda t: round(acc[t], 2)))


def ct_rounded_accuracies(*args):
    return search(*args, score=lambda s: round(float(np.mean(s.predict(args[2]) == args[3])), 2))


def ct_percent(*args):
    return search(*args, score=lambda s: round(100 * float(np.mean(s.predict(args[2]) == args[3]))))


def ct_sorted_pick(*args):  # right: ties are broken towards the first temperature, as max does
    return search(*args, pick=lambda acc: sorted(acc.items(), key=lambda kv: -kv[1])[0][0])


@pytest.mark.parametrize("fn", [search, ct_torch, ct_sorted_pick])
def test_choose_temperature_accepts_correct_answers(fn):
    assert check_choose_temperature(fn) is True


@pytest.mark.parametrize("fn,key", [
    (ct_in_place, "ct_in_place"), (ct_only_best, "ct_return"), (ct_hard, "ct_hard"), (ct_hard_one_hot, "ct_hard"),
    (ct_ignores_temperature, "ct_temperature_ignored"), (ct_fixed_temperature, "ct_temperature_ignored"),
    (ct_multiplies, "ct_multiply"), (ct_wrong_axis, "ct_targets_other"), (ct_on_traffic, "ct_not_validation"),
    (ct_trains_on_validation, "ct_texts"), (ct_counts, "ct_accuracy"), (ct_index, "ct_index"),
    (ct_largest_tie, "ct_largest_tie"), (ct_worst, "ct_worst"),
    (ct_rounded_choice, "ct_rounded"), (ct_rounded_accuracies, "ct_rounded"), (ct_percent, "ct_rounded"),
])
def test_choose_temperature_names_each_mistake(fn, key):
    assert_hints(check_choose_temperature, fn, key)


def test_choose_temperature_hints_are_distinct():
    assert len(set(HINTS.values())) == len(HINTS)


# ---- latency ---------------------------------------------------------------------------------------
def good_latency(predict_fn, batch, warmup=3, repeats=20):
    return statistics.median(_timed(predict_fn, batch, warmup, repeats))


def latency_with_alias(predict_fn, batch, warmup=3, repeats=20):
    """Correct, with `from time import perf_counter` and numpy's median."""
    for _ in range(warmup):
        predict_fn(batch)
    times = []
    for _ in range(repeats):
        start = perf_counter()
        predict_fn(batch)
        times.append(perf_counter() - start)
    return float(np.median(times))


def _timed(predict_fn, batch, warmup, repeats, include_warmup=False):
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        predict_fn(batch)
        if i >= warmup or include_warmup:
            times.append(time.perf_counter() - start)
    return times


def latency_min(predict_fn, batch, warmup=3, repeats=20):
    return min(_timed(predict_fn, batch, warmup, repeats))


def latency_max(predict_fn, batch, warmup=3, repeats=20):
    return max(_timed(predict_fn, batch, warmup, repeats))


def latency_mean(predict_fn, batch, warmup=3, repeats=20):
    return statistics.mean(_timed(predict_fn, batch, warmup, repeats))


def latency_total(predict_fn, batch, warmup=3, repeats=20):
    for _ in range(warmup):
        predict_fn(batch)
    start = time.perf_counter()
    for _ in range(repeats):
        predict_fn(batch)
    return time.perf_counter() - start


def latency_warmup_timed(predict_fn, batch, warmup=3, repeats=20):
    return statistics.median(_timed(predict_fn, batch, warmup, repeats, include_warmup=True))


def latency_no_warmup(predict_fn, batch, warmup=3, repeats=20):
    return statistics.median(_timed(predict_fn, batch, 0, repeats))


def latency_default_warmup(predict_fn, batch, warmup=3, repeats=20):
    return statistics.median(_timed(predict_fn, batch, 3, repeats))


def latency_ms(predict_fn, batch, warmup=3, repeats=20):
    return 1000 * statistics.median(_timed(predict_fn, batch, warmup, repeats))


def latency_per_email(predict_fn, batch, warmup=3, repeats=20):
    return statistics.median(_timed(predict_fn, batch, warmup, repeats)) / len(batch)


def latency_wall_clock(predict_fn, batch, warmup=3, repeats=20):
    for _ in range(warmup):
        predict_fn(batch)
    times = []
    for _ in range(repeats):
        start = time.time()
        predict_fn(batch)
        times.append(time.time() - start)
    return statistics.median(times)


def latency_timeit(predict_fn, batch, warmup=3, repeats=20):
    for _ in range(warmup):
        predict_fn(batch)
    return statistics.median(timeit.repeat(lambda: predict_fn(batch), number=1, repeat=repeats))


def latency_timer(predict_fn, batch, warmup=3, repeats=20):
    for _ in range(warmup):
        predict_fn(batch)
    return float(np.median(timeit.Timer(lambda: predict_fn(batch)).repeat(repeat=repeats, number=1)))


def latency_clock(clock, aggregate=statistics.median):
    """The right loop on another clock (seconds), or with another aggregate."""
    def latency(predict_fn, batch, warmup=3, repeats=20):
        for _ in range(warmup):
            predict_fn(batch)
        times = []
        for _ in range(repeats):
            start = clock()
            predict_fn(batch)
            times.append(clock() - start)
        return aggregate(times)
    return latency


def test_latency_accepts_correct():
    assert check_median_latency(good_latency) is True
    assert check_median_latency(latency_with_alias) is True
    assert time.perf_counter is perf_counter  # the fake clock is gone afterwards
    assert check_median_latency(stub) is False


@pytest.mark.parametrize("fn", [
    latency_wall_clock, latency_timeit, latency_timer,
    latency_clock(lambda: time.perf_counter_ns() / 1e9), latency_clock(time.monotonic),
    latency_clock(time.perf_counter, lambda t: np.float32(np.median(t))),
    latency_clock(time.perf_counter, lambda t: torch.tensor(t, dtype=torch.float64).quantile(0.5)),
])
def test_latency_accepts_every_wall_clock_and_numeric_type(fn):
    assert check_median_latency(fn) is True
    assert timeit.default_timer is perf_counter and time.time is _REAL_TIME


@pytest.mark.parametrize("fn, words", [
    (latency_min, "the minimum"),
    (latency_max, "the maximum"),
    (latency_mean, "the mean"),
    (latency_total, "the total"),
    (latency_warmup_timed, "warm-up calls included"),
    (latency_no_warmup, "no warm-up calls"),
    (latency_default_warmup, "expected 11"),
    (latency_ms, "milliseconds"),
    (latency_per_email, "seconds per email"),
    (latency_clock(time.process_time), "CPU time"),
    (latency_clock(time.thread_time), "CPU time"),
    (latency_clock(time.perf_counter, lambda t: sorted(t)[len(t) // 2]), "two middle times"),
    (latency_clock(time.perf_counter, statistics.median_high), "two middle times"),
    (latency_clock(time.perf_counter, statistics.median_low), "two middle times"),
    (latency_clock(time.perf_counter, lambda t: torch.tensor(t).median().item()), "two middle times"),
])
def test_latency_rejects_mistakes(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_median_latency(fn)


def test_a_grader_gets_a_result():
    assert run_check(check_median_latency, latency_min, time_limit_s=30).status == "failed"
    assert run_check(check_choose_temperature, search, time_limit_s=30).passed


def test_latency_sees_the_learners_clock_alias_through_a_wrapper():
    """A grader's recorder may wrap the learner's function (functools.wraps): its `from time import perf_counter`
    still reads the fake clock."""
    @functools.wraps(latency_with_alias)
    def recorder(*args, **kwargs):
        return latency_with_alias(*args, **kwargs)

    assert check_median_latency(recorder) is True
    assert perf_counter is time.perf_counter
