import json

import pytest
import torch

from course_lib import cache, distill, models, report
from course_lib.data import MnistSplits
from tolerance import FORWARD_PASS, close32


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
    assert torch.equal(models.predict_logits(t1, splits.x_test), models.predict_logits(t2, splits.x_test))
    assert cache.artefact_path("mnist-teacher", distill.teacher_key(splits, recipe)).exists()


def test_cached_logits_equal_fresh_logits(tmp_course_dirs):
    splits = _tiny_splits()
    recipe = {**distill.FAST_TEACHER_RECIPE, "channels": [4, 4, 4], "hidden": 8, "epochs": 1}
    teacher, _ = distill.mnist_teacher(splits, recipe, progress=False)
    key = distill.teacher_key(splits, recipe)
    first = distill.cached_logits(teacher, splits.x_train, "logits", key)
    again = distill.cached_logits(torch.nn.Identity(), splits.x_train, "logits", key)  # must come from cache
    assert torch.equal(first, again)
    # a fresh forward pass through another helper: equal up to float32 rounding
    torch.testing.assert_close(first, models.predict_logits(teacher, splits.x_train), **close32(FORWARD_PASS))


def test_train_student_is_reproducible_and_leaves_the_global_rng_alone():
    splits = _tiny_splits()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a, _ = distill.train_student(splits.x_train, splits.y_train, None, hidden=(16,), epochs=1, progress=False)
    assert torch.equal(torch.rand(3), expected_next), "train_student reseeded the caller's global RNG"
    b, _ = distill.train_student(splits.x_train, splits.y_train, None, hidden=(16,), epochs=1, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c, _ = distill.train_student(splits.x_train, splits.y_train, None, hidden=(16,), epochs=1, seed=1,
                                 progress=False)
    assert not torch.equal(a.head.weight, c.head.weight)  # another seed, other initial weights


def test_train_student_minimises_the_distillation_loss_it_is_given():
    """alpha = 1 with teacher logits: the student's own KD loss on the transfer set falls well below its start."""
    from course_lib.losses import kd_loss

    splits = _tiny_splits()
    teacher_logits = 3 * torch.randn(60, 10, generator=torch.Generator().manual_seed(5))
    untrained, _ = distill.train_student(splits.x_train, splits.y_train, teacher_logits, hidden=(32,), epochs=1,
                                         lr=0.0, temperature=4.0, alpha=1.0, progress=False)
    trained, hist = distill.train_student(splits.x_train, splits.y_train, teacher_logits, hidden=(64,), epochs=60,
                                          lr=3e-3, temperature=4.0, alpha=1.0, batch_size=20, progress=False)
    before = kd_loss(models.predict_logits(untrained, splits.x_train), teacher_logits, 4.0)
    after = kd_loss(models.predict_logits(trained, splits.x_train), teacher_logits, 4.0)
    assert len(hist.loss) == 60
    assert after < 0.4 * before, (before, after)
    # it follows the teacher, not the labels (which disagree with the random teacher)
    agree_teacher = (models.predict_logits(trained, splits.x_train).argmax(1) == teacher_logits.argmax(1)).float()
    assert agree_teacher.mean() > 0.8


def test_train_student_records_a_curve_on_the_eval_set():
    splits = _tiny_splits()
    _, hist = distill.train_student(splits.x_train, splits.y_train, None, hidden=(16,), epochs=3, progress=False,
                                    x_eval=splits.x_val, y_eval=splits.y_val)
    assert len(hist.val_accuracy) == 3
    assert all(0.0 <= a <= 1.0 for a in hist.val_accuracy)


def test_jittered_views_are_shifted_copies_scored_by_the_teacher(tmp_course_dirs):
    from course_lib import data

    splits = _tiny_splits(n=30)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    key = {"teacher": "linear", "seed": 3}
    x_views, logits = distill.jittered_views(teacher, splits.x_train, 3, key, max_shift=2, seed=40)
    assert x_views.shape == (90, 1, 28, 28) and logits.shape == (90, 10)
    for view in range(3):
        expected = data.random_shift(splits.x_train, 2, torch.Generator().manual_seed(40 + view))
        assert torch.equal(x_views[30 * view:30 * (view + 1)], expected)
    assert not torch.equal(x_views[:30], x_views[30:60])  # the copies differ
    with torch.no_grad():
        # each view scored in its own batch of 30, here all 90 at once: the same up to float32 rounding
        torch.testing.assert_close(logits, teacher(x_views), **close32(FORWARD_PASS))
    # the second call reads the cache: a different model gives the same logits
    _, again = distill.jittered_views(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)),
                                      splits.x_train, 3, key, max_shift=2, seed=40)
    assert torch.equal(again, logits)
    with pytest.raises(ValueError, match="views"):
        distill.jittered_views(teacher, splits.x_train, 0, key)


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
    result = {"teacher_errors": 60, "baseline_errors": [150, 160, 170], "soft_target_errors": [80, 82, 84],
              "temperature": 20, "epochs": 10, "seconds": 600.0, "device_name": "cpu",
              "omitted3": {"threes_right_before_pct": 50.0, "threes_right_after_pct": 97.0, "bias": 3.0},
              "few_labels": {"fraction": 0.01, "n": 550, "baseline_errors": [900], "soft_target_errors": [700]}}
    (tmp_path / "results" / "lesson02.json").write_text(json.dumps(result))
    text = report.render(tmp_path)
    assert "| 800-800 baseline (hard labels, no teacher) | 160.0 ± 10.0 | 146 |" in text
    assert "| 800-800 soft-target student, T=20 | 82.0 ± 2.0 | 74 |" in text
    assert "baseline 900.0 test errors, soft-target student 700.0" in text
    assert "97.0% after raising the class-3 bias by 3.00 on average" in text
    assert report.results_doc(tmp_path) == report.RESULTS_HEADER + text + "\n"
    # README.md gets one headline row per lesson, between the markers, the rest untouched.
    summary = report.summary(tmp_path)
    assert summary.splitlines()[2] == ("| 02 | test errors out of 10,000: soft-target student 82.0 ± 2.0, baseline "
                                       "160.0 ± 10.0, teacher 60 (Hinton et al.: 74 and 146) | - |")
    (tmp_path / "README.md").write_text(f"intro\n{report.BEGIN}\nold\n{report.END}\nrest\n")
    assert report.updated_readme(tmp_path) == f"intro\n{report.BEGIN}\n{summary}\n{report.END}\nrest\n"


def test_report_summary_headlines_and_run_times(tmp_path):
    assert report.summary(tmp_path) == "No full-mode results yet: run `make course`."
    (tmp_path / "results").mkdir()
    lesson06 = {"mnist": {"chosen_on_validation": "small int8", "rows": [
        {"model": "student fp32", "test_errors": 70, "bytes": 4000}, {"model": "small int8", "test_errors": 75,
                                                                         "bytes": 500}]},
        "goals": {"a": True, "b": False}}
    (tmp_path / "results" / "lesson06.json").write_text(json.dumps(lesson06))
    row = report.summary(tmp_path).splitlines()[-1]
    assert row == ("| 06 | chosen on validation: small int8: 75 test errors in 500 bytes (8.0x smaller than the fp32 "
                   "student, which makes 70) | 1 of 2 |")
    timings = {"00.ipynb": {"fast_cpu_s": 7.0}, "02.ipynb": {"full_cpu_s": 1164.0, "full_cpu_cache": "warm",
                                                             "full_cpu_cores": 3},
               "03.ipynb": {"full_cpu_s": 95.4}}
    text = report.run_times(timings)
    assert "00.ipynb" not in text  # FAST runs never reach the results page
    assert "| 02.ipynb | 19.4 min | 3 | warm |" in text and "| 03.ipynb | 95 s | not recorded | not recorded |" in text


def test_report_renders_lesson04_with_the_course_vocabulary():
    row = {"accuracy": 0.9, "accuracy_paraphrased": 0.8, "agreement_with_teacher": 0.85, "params": 1000,
           "ms_per_email_batch1": 0.5, "emails_per_s": 2000.0}
    result = {"teacher": {**row, "params": 100_000}, "baseline": {**row, "accuracy": 0.8},
              "hard_pseudo_labels": {**row, "accuracy": 0.93}, "soft_targets": {**row, "accuracy": 0.935},
              "target_temperature": 0.25, "throughput_ratio": 1000.0, "param_ratio": 100.0,
              "sizes": {"archive": 300, "traffic": 20000, "test": 2000}}
    text = report.lesson04(result)
    assert "| baseline: labelled emails only | 80.0% |" in text
    assert "| hard pseudo-labels: the teacher's top queue on traffic | 93.0% |" in text
    assert "| soft targets: the teacher's probabilities on traffic (target temperature 0.25) | 93.5% |" in text
    assert "Teacher's calibration" not in text and "transfer_size_curves" not in text  # older results files


def test_report_lesson04_calibration_and_transfer_sizes():
    row = {"accuracy": 0.9, "params": 1000, "ms_per_email_batch1": 0.5, "emails_per_s": 2000.0}
    result = {"teacher": row, "throughput_ratio": 1000.0, "param_ratio": 100.0,
              "sizes": {"archive": 300, "traffic": 20000, "test": 2000},
              "teacher_calibration_validation": {"fitted_temperature": 1.37, "ece": 0.0412, "ece_after_fit": 0.0123,
                                                 "bins": 10, "mean_confidence": 0.957, "accuracy": 0.931},
              "transfer_size_curves": {"sizes": [250, 20000], "hard pseudo-labels": [0.66, 0.939],
                                       "soft targets, target temperature 1": [0.671, 0.935]}}
    text = report.lesson04(result)
    assert ("mean top probability 95.7% against 93.1% accuracy, ECE 0.041, 0.012 after a fitted temperature "
            "of 1.37: over-confident by the log-loss it minimises.") in text
    assert "| student | 250 | 20,000 |" in text
    assert "| hard pseudo-labels | 66.0 | 93.9 |" in text
    assert "| soft targets, target temperature 1 | 67.1 | 93.5 |" in text
    assert "| soft targets, target temperature 1 minus hard pseudo-labels (points) | +1.1 | -0.4 |" in text
    result["teacher_calibration_validation"]["fitted_temperature"] = 0.8
    assert "0.80: under-confident by the log-loss" in report.lesson04(result)


def test_report_goals_line_counts_and_names_the_missed_ones():
    assert report.goals({"goals": {"a": True, "b": True}}) == "Goals met in this run: 2 of 2."
    line = report.goals({"goals": {"fast enough": False, "small": True, "accurate": False}})
    assert line == "Goals met in this run: 1 of 3; missed: fast enough; accurate."


def test_readme_results_are_current():
    assert report.main(["--check"]) == 0, "run `python -m course_lib.report`"


def test_report_renders_the_router_tools_run_into_its_readme_markers(tmp_path):
    run = {"command": "python bench/router_tool.py", "sizes": {"labelled": 300, "traffic": 4000, "route": 50000,
                                                              "cascade": 2000},
           "engine": "local", "workers": 1, "cpus": 2, "build_seconds": 300.0, "route_seconds": 4.0,
           "route_emails_per_s": 12500.0, "cascade_seconds": 30.0,
           "routed": {"accuracy": 0.8}, "routed_cascade": {"accuracy": 0.85, "teacher_share": 0.1},
           "report": {"teacher": {"kind": "frozen", "test_accuracy": 0.9},
                      "student": {"test_accuracy": 0.88, "agreement_with_teacher": 0.95},
                      "cascade": {"threshold": 0.6, "share_to_teacher": 0.12}, "throughput_ratio": 1000.0}}
    text = report.router_tool(run)
    assert "| `build` | 5.0 min; frozen teacher, test accuracy 90.0%; student 88.0% (agreement 95.0%), 1,000x" in text
    assert "| `route` 50,000 new emails | 4.0 s (12,500 emails/s), 80.0% routed to their true queue |" in text
    assert "85.0% right, 10.0% answered by the teacher |" in text
    (tmp_path / "README.md").write_text(f"{report.BEGIN}\n{report.END}\nx\n{report.ROUTER_BEGIN}\nold\n{report.ROUTER_END}\n")
    assert "No run yet" in report.updated_readme(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "router_tool.json").write_text(json.dumps(run))
    assert f"{report.ROUTER_BEGIN}\n{text}\n{report.ROUTER_END}" in report.updated_readme(tmp_path)
    assert text in report.render(tmp_path)


def test_report_says_why_a_cascade_escalates_nothing():
    rep = {"cascade": {"share_to_teacher": 0.0, "validation_accuracy": 0.9, "target_accuracy": 0.85},
           "student": {"test_accuracy": 0.8}, "teacher": {"test_accuracy": 0.85}, "split": {"validation": 60, "test": 60}}
    assert "it is 5.0 points below the teacher: a few dozen" in report._cascade_note(rep)[1]
    rep["student"]["test_accuracy"] = 0.9
    assert report._cascade_note(rep)[1].endswith("it is not below the teacher either.")
    rep["cascade"]["share_to_teacher"] = 0.1
    assert report._cascade_note(rep) == []
