"""router.pipeline rebuilds lesson 04's sets and models: same draws, choices made on validation, cache reused."""
import numpy as np
import pytest

from course_lib import emails, router
from course_lib.router import pipeline

TINY = {"archive": 12, "labelled_recent": 12, "traffic": 60, "validation": 24, "test": 18}


def test_email_sets_are_lesson_04s_draws():
    sets = router.email_sets(fast=True)
    assert sets.sizes == pipeline.FAST_SIZES and router.email_sets(fast=False, sizes=TINY).sizes == TINY
    # lesson 04's first cells: test = generate_emails(n, seed=2, style="traffic"), archive seed 0 style archive
    assert [e.text for e in sets["test"]] == [e.text for e in emails.generate_emails(250, seed=2, style="traffic")]
    assert [e.text for e in sets["archive"]] == [e.text for e in emails.generate_emails(150, seed=0, style="archive")]
    texts, labels = sets.texts_and_labels("labelled")
    assert len(texts) == 300 and texts[:150] == [e.text for e in sets["archive"]] and labels.dtype == np.int64
    assert pipeline.teacher_epochs(True) == 1 and pipeline.teacher_epochs(False) == 3
    assert router.email_sets(fast=False).sizes == {"archive": 300, "labelled_recent": 300, "traffic": 20_000,
                                                   "validation": 500, "test": 2_000}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("COURSE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    try:
        sets = router.email_sets(fast=True, sizes=TINY)
        yield sets, router.router_models(sets, fine_tune_epochs=1, target_temperatures=(0.5, 2.0), progress=False)
    finally:
        mp.undo()


def test_router_models_chooses_on_validation(tiny_models):
    sets, models = tiny_models
    val_texts, val_labels = sets.texts_and_labels("validation")
    assert set(models.teacher_val_accuracy) == {"frozen encoder + head", "fine-tuned encoder + head"}
    assert models.teacher_val_accuracy[models.teacher_name] == max(models.teacher_val_accuracy.values())
    assert models.teacher_val_accuracy[models.teacher_name] == pytest.approx(
        np.mean(models.teacher.predict(val_texts) == val_labels))
    assert models.teacher_fine_tune_epochs == 1
    assert set(models.val_accuracy_by_target_temperature) == {0.5, 2.0}
    best = max(models.val_accuracy_by_target_temperature.values())
    assert models.val_accuracy_by_target_temperature[models.target_temperature] == best
    assert np.mean(models.soft_target.predict(val_texts) == val_labels) == pytest.approx(best)
    traffic_texts, _ = sets.texts_and_labels("traffic")
    assert models.traffic_logits.shape == (60, len(emails.QUEUES))
    np.testing.assert_allclose(models.teacher.predict_logits(traffic_texts[:5]), models.traffic_logits[:5], atol=1e-4)
    assert list(models.students) == ["baseline", "hard pseudo-labels", "soft targets"]


def test_students_are_lesson_04s_recipes(tiny_models):
    """The same seeds and targets as lesson 04's cells give the same students, bit for bit."""
    sets, models = tiny_models
    labelled_texts, labelled_labels = sets.texts_and_labels("labelled")
    traffic_texts, _ = sets.texts_and_labels("traffic")
    probe, _ = sets.texts_and_labels("test")
    baseline = router.NgramStudent(len(emails.QUEUES)).fit(labelled_texts, labelled_labels, progress=False)
    hard = router.NgramStudent(len(emails.QUEUES)).fit(traffic_texts, models.traffic_logits.argmax(1), progress=False)
    soft = router.NgramStudent(len(emails.QUEUES)).fit(
        traffic_texts, router.soft_targets(models.traffic_logits, models.target_temperature), progress=False)
    for mine, theirs in [(baseline, models.baseline), (hard, models.hard_pseudo_label), (soft, models.soft_target)]:
        np.testing.assert_allclose(mine.predict_logits(probe), theirs.predict_logits(probe), atol=1e-6)


def test_fine_tuned_teacher_comes_from_the_cache_the_second_time(tiny_models):
    sets, first = tiny_models
    assert not first.teachers["fine-tuned encoder + head"].from_cache   # a fresh cache folder: trained
    again = router.router_models(sets, fine_tune_epochs=1, target_temperatures=(1.0,), progress=False)
    assert again.teachers["fine-tuned encoder + head"].from_cache       # the same recipe and data: loaded
    assert not again.teachers["frozen encoder + head"].from_cache       # nothing to load for a frozen encoder
    probe, _ = sets.texts_and_labels("test")
    name = "fine-tuned encoder + head"
    np.testing.assert_allclose(again.teachers[name].predict_logits(probe), first.teachers[name].predict_logits(probe),
                               atol=1e-4)
