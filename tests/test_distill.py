import json

import pytest
import torch

from course_lib import cache, distill, evaluate, report
from course_lib.data import MnistSplits


def _tiny_splits(n=60):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.arange(n) % 10
    return MnistSplits(x, y, x[:20], y[:20], x[:20], y[:20], source="synthetic")


def test_fingerprint_depends_on_values_and_shape():
    a = torch.zeros(4, 3)
    assert distill.fingerprint(a) == distill.fingerprint(torch.zeros(4, 3))
    assert distill.fingerprint(a) != distill.fingerprint(torch.zeros(3, 4))
    b = a.clone()
    b[0, 0] = 1e-7
    assert distill.fingerprint(a) != distill.fingerprint(b)


def test_teacher_is_trained_once_and_cached(tmp_course_dirs):
    splits = _tiny_splits()
    recipe = {**distill.FAST_TEACHER_RECIPE, "channels": [4, 4, 4], "hidden": 8, "epochs": 1}
    t1, hit1 = distill.mnist_teacher(splits, recipe, progress=False)
    t2, hit2 = distill.mnist_teacher(splits, recipe, progress=False)
    assert (hit1, hit2) == (False, True)
    assert torch.equal(evaluate.predict_logits(t1, splits.x_test), evaluate.predict_logits(t2, splits.x_test))
    assert cache.artefact_path("mnist-teacher", distill.teacher_key(splits, recipe)).exists()


def test_cached_logits_equal_fresh_logits(tmp_course_dirs):
    splits = _tiny_splits()
    recipe = {**distill.FAST_TEACHER_RECIPE, "channels": [4, 4, 4], "hidden": 8, "epochs": 1}
    teacher, _ = distill.mnist_teacher(splits, recipe, progress=False)
    key = distill.teacher_key(splits, recipe)
    first = distill.cached_logits(teacher, splits.x_train, "logits", key)
    again = distill.cached_logits(torch.nn.Identity(), splits.x_train, "logits", key)  # must come from cache
    assert torch.equal(first, again)
    assert torch.allclose(first, evaluate.predict_logits(teacher, splits.x_train))


def test_train_student_baseline_and_distilled_are_reproducible():
    splits = _tiny_splits()
    teacher_logits = torch.randn(60, 10)
    a, _ = distill.train_student(splits.x_train, splits.y_train, None, hidden=(16,), epochs=1, progress=False)
    b, _ = distill.train_student(splits.x_train, splits.y_train, None, hidden=(16,), epochs=1, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c, hist = distill.train_student(splits.x_train, splits.y_train, teacher_logits, hidden=(16,), epochs=2,
                                    temperature=4.0, alpha=1.0, progress=False)
    assert len(hist.loss) == 2
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_choose_class_bias_brute_force():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(200, 4, generator=g)
    logits[:, 2] -= 1.5  # class 2 under-predicted
    labels = torch.randint(0, 4, (200,), generator=g)
    candidates = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]
    counts = []
    for b in candidates:  # independent: one row at a time
        right = 0
        for row, label in zip(logits.tolist(), labels.tolist()):
            row[2] += b
            right += int(max(range(4), key=lambda k: row[k]) == label)
        counts.append(right)
    expected = candidates[counts.index(max(counts))]
    assert distill.choose_class_bias(logits, labels, 2, candidates) == expected


def test_report_renders_lesson02(tmp_path):
    (tmp_path / "results").mkdir()
    result = {"teacher_errors": 60, "baseline_errors": [150, 160, 170], "distilled_errors": [80, 82, 84],
              "temperature": 20, "epochs": 10, "seconds": 600.0, "device_name": "cpu",
              "omitted3": {"threes_right_before_pct": 50.0, "threes_right_after_pct": 97.0, "bias": 3.0},
              "few_labels": {"fraction": 0.01, "n": 550, "hard_errors": [900], "soft_errors": [700]}}
    (tmp_path / "results" / "lesson02.json").write_text(json.dumps(result))
    text = report.render(tmp_path)
    assert "| 800-800 student, hard labels | 160.0 ± 10.0 | 146 |" in text
    assert "| 800-800 student, soft targets T=20 | 82.0 ± 2.0 | 74 |" in text
    assert "97.0% after raising the class-3 bias by 3 on average" in text
    (tmp_path / "README.md").write_text(f"intro\n{report.BEGIN}\nold\n{report.END}\nrest\n")
    assert report.updated_readme(tmp_path) == f"intro\n{report.BEGIN}\n{text}\n{report.END}\nrest\n"


def test_readme_results_are_current():
    assert report.main(["--check"]) == 0, "run `python -m course_lib.report`"
