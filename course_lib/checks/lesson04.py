"""Checks for lesson 04 (the email router): choosing the target temperature on validation, latency.

Lesson 04's data are numpy arrays (texts in lists, labels and logits in arrays), and so are the
inputs these checks pass; answers may be numpy arrays, torch tensors or plain numbers.
"""
from __future__ import annotations

import math
import statistics
from typing import Callable

import numpy as np

from ..answers import lesson04 as answers
from ._clock import FakeClock, FakeModel, fake_time
from ._core import call_learner, inputs_compared_by_check, learner_check, name_mistakes

#: One hint per typical mistake; a failing check's message contains the matching one(s).
HINTS: dict[str, str] = {
    "ct_return": "Return two things: (best_temperature, accuracies), where accuracies maps each temperature to "
                 "the validation accuracy of the student trained at it.",
    "ct_in_place": "You changed the caller's teacher_logits: compute teacher_logits / temperature as a new array "
                   "(not /=), otherwise each temperature divides the logits again.",
    "ct_calls": "Train one student per temperature: call train_student(traffic_texts, targets) once for each "
                "temperature, in the order given.",
    "ct_texts": "Train on the unlabelled traffic (traffic_texts): that is what the teacher pseudo-labels.",
    "ct_hard": "You trained on hard labels (the argmax, one-hot): pass the soft labels "
               "softmax(teacher_logits / temperature), rows of probabilities; that is what carries the teacher's "
               "second opinions, and what the temperature changes.",
    "ct_temperature_ignored": "Every student got the same targets: make each temperature's targets "
                              "softmax(teacher_logits / temperature) with that temperature.",
    "ct_multiply": "Divide the logits by the temperature (teacher_logits / temperature), do not multiply.",
    "ct_targets_other": "The targets should be probability rows softmax(teacher_logits / temperature) over the "
                        "classes (axis=-1), one row per traffic email (router.soft_targets computes them).",
    "ct_not_validation": "Measure each student on the validation emails (val_texts against val_labels): the "
                         "traffic has no labels, and agreeing with the teacher on the emails a student was "
                         "trained on says little about how it routes new ones.",
    "ct_accuracy": "accuracies should hold each student's accuracy on the validation emails, a fraction in [0, 1]: "
                   "np.mean(student.predict(val_texts) == val_labels).",
    "ct_rounded": "Keep the accuracies exact: rounded ones (here 0.751 and 0.754 both become 0.75) tie, and the "
                  "choice falls on the wrong temperature. Round only when you print.",
    "ct_index": "Return the temperature itself, not its position in temperatures.",
    "ct_largest_tie": "Several temperatures tie for the best validation accuracy: keep the smallest (the first in "
                      "the order given; update only on a strictly higher accuracy).",
    "ct_worst": "You returned the temperature with the lowest validation accuracy: keep the highest.",
    "ct_other": "Return the temperature whose student has the highest validation accuracy (ties: the first).",
}


def _fail(what: str, *keys: str) -> None:
    raise AssertionError(f"{what}. " + " ".join(HINTS[k] for k in keys))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _as_array(x) -> np.ndarray | None:
    try:
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return None


class _FakeStudent:
    """What ``train_student`` returns: its predictions are set by the check, per temperature and per text set."""

    def __init__(self, case: "_TemperatureCase", kind):
        self.case, self.kind = case, kind

    def predict(self, texts):
        return self.case.predictions(self.kind, list(texts))


class _TemperatureCase:
    """One case of the temperature search: teacher logits, texts, and a student per temperature whose
    validation accuracy (and agreement with the teacher on the traffic) the check decides."""

    def __init__(self, seed: int, temperatures: list, val_correct: dict, traffic_agree: dict, n_val: int,
                 n_traffic: int = 12, num_classes: int = 5):
        rng = np.random.default_rng(seed)
        self.temperatures = temperatures
        self.logits = rng.normal(0.0, 3.0, size=(n_traffic, num_classes))
        self.traffic = [f"traffic email {seed}-{i}" for i in range(n_traffic)]
        self.val_texts = [f"validation email {seed}-{i}" for i in range(n_val)]
        self.val_labels = rng.integers(0, num_classes, size=n_val)
        self.num_classes = num_classes
        self.val_correct, self.traffic_agree = val_correct, traffic_agree
        self.calls: list = []  # (texts, kind of targets) per train_student call
        self.predicted_on: list = []  # which text sets the students predicted

    def kind_of(self, targets) -> object:
        """The temperature that made ``targets`` (a float), or what went wrong (a string)."""
        t = _as_array(targets)
        if t is not None and t.ndim == 1 and np.array_equal(t, self.logits.argmax(axis=1)):
            return "hard"
        if t is None or t.shape != self.logits.shape:
            return "other"
        for temperature in [*self.temperatures, 1.0, 2.0, 3.0, 4.0, 20.0]:  # the given ones, then usual defaults
            if np.allclose(t, _softmax(self.logits / temperature), atol=1e-5):
                return float(temperature)
        if np.allclose(t, np.eye(self.num_classes)[self.logits.argmax(axis=1)]):
            return "hard"
        for temperature in self.temperatures:
            if np.allclose(t, _softmax(self.logits * temperature), atol=1e-5):
                return "multiply"
        return "other"

    def train_student(self, texts, targets) -> _FakeStudent:
        kind = self.kind_of(targets)
        self.calls.append((list(texts), kind))
        return _FakeStudent(self, kind)

    def predictions(self, kind, texts: list) -> np.ndarray:
        """Right on the first ``val_correct[kind]`` validation emails; on the traffic, agrees with the teacher
        on the first ``traffic_agree[kind]`` emails; wrong everywhere else."""
        if texts == self.val_texts:
            self.predicted_on.append("validation")
            right = self.val_correct.get(kind, 0)
            truth = self.val_labels
        elif texts == self.traffic:
            self.predicted_on.append("traffic")
            right = self.traffic_agree.get(kind, 0)
            truth = self.logits.argmax(axis=1)
        else:
            self.predicted_on.append("other")
            return np.full(len(texts), -1)
        wrong = (truth + 1) % self.num_classes
        return np.where(np.arange(len(truth)) < right, truth, wrong)

    def expected(self) -> tuple:
        accuracies = {t: self.val_correct[t] / len(self.val_texts) for t in self.temperatures}
        return max(accuracies, key=accuracies.get), accuracies  # max keeps the first of ties

    def variants(self) -> dict:
        """What the choice mistakes return: {hint key: temperature or index}."""
        accuracies = [self.val_correct[t] for t in self.temperatures]
        agree = [self.traffic_agree[t] for t in self.temperatures]
        best = max(accuracies)
        return {
            "ct_index": float(accuracies.index(best)),
            "ct_largest_tie": [t for t, a in zip(self.temperatures, accuracies) if a == best][-1],
            "ct_worst": self.temperatures[accuracies.index(min(accuracies))],
            "ct_not_validation": self.temperatures[agree.index(max(agree))],
            "ct_rounded": [max(self.temperatures, key=lambda t: round(self.val_correct[t] / len(self.val_texts), d))
                           for d in (1, 2)],
        }


# Two cases whose answers are neither an index nor the default temperature 1: (seed, temperatures,
# correct validation emails per temperature, traffic emails agreeing with the teacher per temperature, n_val).
_TEMPERATURE_CASES = [
    (0, [0.5, 1.0, 2.5, 5.0, 10.0], {0.5: 12, 1.0: 15, 2.5: 18, 5.0: 18, 10.0: 11},
     {0.5: 12, 1.0: 11, 2.5: 9, 5.0: 8, 10.0: 6}, 20),
    (1, [1.5, 3.0, 6.0], {1.5: 9, 3.0: 7, 6.0: 8}, {1.5: 8, 3.0: 7, 6.0: 12}, 10),
    # 1,000 validation emails: 0.751 and 0.754 are different, though both round to 0.75
    (2, [1.0, 3.0, 6.0], {1.0: 751, 3.0: 754, 6.0: 700}, {1.0: 5, 3.0: 6, 6.0: 12}, 1000),
]


@learner_check("choose_temperature", solution=answers.choose_temperature)
def check_choose_temperature(fn: Callable) -> None:
    """Check the temperature search on validation data (exercise 4.1).

    ``fn(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_student)`` must, for each
    temperature, train a student with ``train_student(traffic_texts, softmax(teacher_logits / temperature))``,
    measure its accuracy on the validation emails, and return ``(best_temperature, accuracies)`` (ties: the
    first). The students are fakes whose accuracies the check sets, so the check runs in milliseconds.
    """
    ruled_out: set = set()
    for seed, temperatures, val_correct, traffic_agree, n_val in _TEMPERATURE_CASES:
        case = _TemperatureCase(seed, temperatures, val_correct, traffic_agree, n_val)
        logits_before = case.logits.copy()
        what = f"choose_temperature with temperatures {temperatures}"
        with inputs_compared_by_check():
            out = call_learner(fn, case.logits, list(case.traffic), list(case.val_texts), case.val_labels.copy(),
                               list(temperatures), case.train_student)
        if not np.array_equal(case.logits, logits_before):
            _fail(what, "ct_in_place")
        kinds = [kind for _, kind in case.calls]
        for key in ("hard", "multiply", "other"):
            if key in kinds:
                _fail(f"{what}: train_student got targets that are not softmax(teacher_logits / temperature)",
                      f"ct_{'targets_other' if key == 'other' else key}")
        if any(texts != case.traffic for texts, _ in case.calls):
            _fail(f"{what}: train_student was given other texts than the traffic", "ct_texts")
        if len(kinds) > 1 and len(set(kinds)) == 1 and len(temperatures) > 1:
            _fail(f"{what}: every student was trained on the targets of temperature {kinds[0]:g}",
                  "ct_temperature_ignored")
        if kinds != [float(t) for t in temperatures]:
            _fail(f"{what}: train_student was called for the temperatures {kinds}", "ct_calls")
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
            _fail(f"{what}: got {type(out).__name__}", "ct_return")
        best, accuracies = out
        if "validation" not in case.predicted_on:
            _fail(f"{what}: no student predicted the validation emails", "ct_not_validation")
        expected_best, expected_acc = case.expected()
        got = {float(k): v for k, v in accuracies.items()} if all(
            isinstance(k, (int, float, np.floating, np.integer)) for k in accuracies) else {}
        if set(got) != set(expected_acc) or any(
                not isinstance(_scalar(got[t]), float) or not math.isclose(_scalar(got[t]), a, abs_tol=1e-6)
                for t, a in expected_acc.items()):
            shown = {k: _scalar(v) for k, v in accuracies.items()}
            rounded = set(got) == set(expected_acc) and any(
                all(isinstance(_scalar(got[t]), float) and math.isclose(_scalar(got[t]), round(scale * a, d))
                    for t, a in expected_acc.items()) for d in (0, 1, 2, 3) for scale in (1, 100))
            _fail(f"{what}: accuracies {shown}, expected {expected_acc}", "ct_rounded" if rounded else "ct_accuracy")
        value = _scalar(best)
        if value is None:
            _fail(f"{what}: best_temperature is {best!r}", "ct_return")
        keys = name_mistakes(value, expected_best, case.variants(), ruled_out, math.isclose)
        if keys is not None:
            _fail(f"{what}: got {value:g}, expected {expected_best:g}", *(keys or ["ct_other"]))


def _scalar(x) -> float | None:
    try:
        return float(x.item() if hasattr(x, "item") else x)
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- latency


# (warmup, repeats, call durations in ms): cold calls first, then timed calls with one hiccup. The median
# differs from the minimum, the maximum, the mean, the total, either middle element of an even count, and the
# median with the warm-up calls included; None: the defaults (warmup 3, repeats 20: an even count).
_LATENCY_CASES = [
    (4, 7, [40.0, 35.0, 30.0, 25.0, 2.0, 7.0, 3.0, 500.0, 4.0, 2.5, 6.0]),
    (2, 6, [60.0, 45.0, 9.0, 1.5, 300.0, 5.0, 3.5, 2.0]),
    (None, None, [50.0, 40.0, 30.0] + [100.0 if i == 10 else 1.0 + 0.25 * ((7 * i) % 20) for i in range(20)]),
]

#: What a wrong latency is, by the mistake that gives it (exercise 4.2).
LATENCY_MISTAKES: dict[str, str] = {
    "min": "the minimum: the fastest call is a lucky one, not the typical one. Return the median "
           "(statistics.median(times)).",
    "max": "the maximum: return the median of the timed calls (statistics.median(times)).",
    "mean": "the mean: one hiccup (a garbage collection, another process) drags it up. Return the median "
            "(statistics.median(times)).",
    "total": "the total of the timed calls: return the median per call.",
    "with_warmup": "the median with the warm-up calls included: time only the `repeats` calls after the warm-up.",
    "ms": "milliseconds: return seconds.",
    "per_item": "seconds per email: return seconds per call of predict_fn (one batch).",
    "middle": "one of the two middle times: with an even number of timed calls the median is the mean of the "
              "two middle ones. Use statistics.median(times) (not sorted(times)[n // 2], median_low or "
              "median_high).",
    "cpu": "CPU time (time.process_time or thread_time): a call that waits (for I/O, a lock, another thread) "
           "costs wall-clock time the CPU clock does not see. Time with time.perf_counter().",
}


@learner_check("median_latency", solution=answers.median_latency)
def check_median_latency(fn: Callable) -> None:
    """Check ``fn(predict_fn, batch, warmup, repeats)``: median seconds per call after warm-up (exercise 4.2).

    Three cases (an odd and an even number of timed calls, and the defaults: 20, even). The fake model's
    calls take set times on a fake clock (every wall clock the exercise allows, ``timeit`` included: see
    ``checks._clock``), so the answer is exact and the check instant.
    """
    for warmup, repeats, durations_ms in _LATENCY_CASES:
        clock = FakeClock()
        fake = FakeModel(clock, [d / 1000 for d in durations_ms])
        batch = ["an email"] * 4
        args = () if warmup is None else (warmup, repeats)
        with fake_time(fn, clock):
            out = call_learner(fn, fake, batch, *args)
        what = (f"median_latency with warmup={warmup}, repeats={repeats}" if args else
                "median_latency with its defaults (warmup=3, repeats=20)")
        warmup, repeats = (3, 20) if warmup is None else (warmup, repeats)
        value = _scalar(out)
        if value is None:
            raise AssertionError(f"{what}: returned a {type(out).__name__}; return one float (seconds).")
        calls = len(fake.batches)
        if calls == repeats:
            raise AssertionError(f"{what}: no warm-up calls. The first calls of a model are slow (lazy set-up, "
                                 "cold caches): call predict_fn `warmup` times untimed before timing.")
        if calls != warmup + repeats:
            raise AssertionError(f"{what}: predict_fn was called {calls} times, expected {warmup + repeats}: "
                                 "`warmup` untimed calls, then `repeats` timed ones.")
        if any(b is not batch and list(b) != batch for b in fake.batches):
            raise AssertionError(f"{what}: pass the same batch to predict_fn on every call.")
        timed = durations_ms[warmup:warmup + repeats]
        expected = statistics.median(timed) / 1000
        if math.isclose(value, expected, rel_tol=1e-6):
            continue
        ordered = sorted(timed)
        candidates = {
            "min": min(timed) / 1000, "max": max(timed) / 1000, "mean": statistics.mean(timed) / 1000,
            "total": sum(timed) / 1000, "with_warmup": statistics.median(durations_ms[:warmup + repeats]) / 1000,
            "ms": statistics.median(timed), "per_item": expected / len(batch),
            "middle": [ordered[len(timed) // 2] / 1000, ordered[(len(timed) - 1) // 2] / 1000],
        }
        if clock.cpu_clock_read:
            raise AssertionError(f"{what}: got {value:.6g} s, expected {expected:.6g} s: you measured "
                                 + LATENCY_MISTAKES["cpu"])
        for key, values in candidates.items():
            if any(math.isclose(value, v, rel_tol=1e-6) for v in (values if isinstance(values, list) else [values])):
                raise AssertionError(f"{what}: got {value:.6g} s, expected {expected:.6g} s: you returned "
                                     + LATENCY_MISTAKES[key])
        if value < min(timed) / 1000 * 0.5:
            raise AssertionError(f"{what}: got {value:.6g} s, less than any call took ({min(timed):g} ms or more): "
                                 "time each call with time.perf_counter(), before and after predict_fn(batch).")
        raise AssertionError(f"{what}: got {value:.6g} s, expected {expected:.6g} s: time each of the `repeats` "
                             "calls with time.perf_counter() and return the median of those times in seconds.")
