"""Lesson 04's emails, teacher and students in two calls, for the lessons that build on them (introduced in lesson 05).

:func:`email_sets` draws lesson 04's email sets (same sizes, seeds and styles) and
:func:`router_models` builds lesson 04's models on them exactly as its cells do: both teacher
recipes fitted (the fine-tuned one loads from the verified cache when lesson 04 ran before),
the one with the better validation accuracy kept, its logits on the traffic computed (the
embeddings are cached), then the three students, with the target temperature chosen on
validation. Nothing is chosen on the test set.

Its two steps are functions of their own, which the router tool (:mod:`course_lib.router.tool`)
runs on any labelled CSV: :func:`choose_teacher` (fit the teacher recipes, keep the best on validation) and
:func:`fit_soft_target_student` (one student per target temperature, keep the best on validation).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .. import config, emails
from .student import NgramStudent
from .targets import soft_targets
from .teacher import TextTeacher

#: Lesson 04's set sizes (full mode) and FAST sizes.
SIZES = {"archive": 300, "labelled_recent": 300, "traffic": 20_000, "validation": 500, "test": 2_000}
FAST_SIZES = {"archive": 150, "labelled_recent": 150, "traffic": 600, "validation": 150, "test": 250}
#: The generator seed and style of each set (lesson 04's first cells).
SEEDS = {"archive": 0, "labelled_recent": 6, "traffic": 1, "validation": 3, "test": 2}
STYLES = {"archive": "archive", "labelled_recent": "traffic", "traffic": "traffic", "validation": "traffic",
          "test": "traffic"}
#: Lesson 04's candidate target temperatures for the soft-target student.
TARGET_TEMPERATURES = (0.25, 0.5, 1.0, 2.0, 4.0)


def teacher_epochs(fast: Optional[bool] = None) -> int:
    """Passes over the labelled emails when fine-tuning the teacher: 1 in FAST mode, else 3 (lesson 04)."""
    return 1 if (config.is_fast() if fast is None else fast) else 3


@dataclass
class EmailSets:
    """Lesson 04's email sets: ``sets[name]`` is a list of :class:`~course_lib.emails.Email`."""

    sets: dict
    sizes: dict
    seeds: dict = field(default_factory=lambda: dict(SEEDS))

    def __getitem__(self, name: str) -> list:
        return self.sets[name]

    def texts_and_labels(self, name: str) -> tuple[list[str], np.ndarray]:
        """``(texts, labels)`` of one set; ``"labelled"`` is the archive plus the labelled recent sample."""
        if name == "labelled":
            return emails.texts_and_labels(self.sets["archive"] + self.sets["labelled_recent"])
        return emails.texts_and_labels(self.sets[name])


def email_sets(fast: Optional[bool] = None, sizes: Optional[dict] = None) -> EmailSets:
    """Lesson 04's email sets: archive, labelled_recent, traffic, validation and test.

    Args:
        fast: FAST mode's sizes (default: ``config.is_fast()``).
        sizes: override the sizes (e.g. tiny ones in tests); missing names keep the mode's size.
    """
    fast = config.is_fast() if fast is None else fast
    chosen = {**(FAST_SIZES if fast else SIZES), **(sizes or {})}
    sets = {name: emails.generate_emails(chosen[name], seed=SEEDS[name], style=STYLES[name]) for name in SEEDS}
    return EmailSets(sets, chosen)


@dataclass
class RouterModels:
    """Lesson 04's teacher and students, with the choices made on validation."""

    teacher: TextTeacher
    teacher_name: str
    teacher_val_accuracy: dict
    teacher_fine_tune_epochs: int
    teacher_seconds: dict          # name -> seconds to fit (near 0 when loaded from the cache)
    teachers: dict                 # name -> both fitted candidates (``.from_cache`` says which loaded)
    traffic_logits: np.ndarray     # the teacher's logits on the traffic: the transfer set
    baseline: NgramStudent         # true labels of the labelled emails only
    hard_pseudo_label: NgramStudent  # the teacher's top queue on the traffic
    soft_target: NgramStudent      # the teacher's soft targets at the chosen target temperature
    target_temperature: float
    val_accuracy_by_target_temperature: dict

    @property
    def students(self) -> dict:
        """The three students by their course names."""
        return {"baseline": self.baseline, "hard pseudo-labels": self.hard_pseudo_label,
                "soft targets": self.soft_target}


#: The teacher recipes by the names ``router_models`` reports them under, and the tool's ``--teacher`` kinds.
TEACHER_KINDS = {"frozen": "frozen encoder + head", "fine-tuned": "fine-tuned encoder + head"}


@dataclass
class TeacherChoice:
    """The teacher candidates fitted on the labelled texts and the one kept (chosen on validation)."""

    teacher: TextTeacher
    name: str                      # a value of TEACHER_KINDS
    val_accuracy: dict             # name -> validation accuracy of each candidate
    seconds: dict                  # name -> seconds to fit (near 0 when loaded from the cache)
    candidates: dict               # name -> fitted TextTeacher

    @property
    def kind(self) -> str:
        """The kept recipe as a ``--teacher`` kind: ``"frozen"`` or ``"fine-tuned"``."""
        return next(kind for kind, name in TEACHER_KINDS.items() if name == self.name)


def choose_teacher(labelled_texts: Sequence[str], labelled_labels, val_texts: Sequence[str], val_labels,
                   num_classes: int, fine_tune_epochs: int, kinds: Sequence[str] = ("frozen", "fine-tuned"),
                   progress: bool = True) -> TeacherChoice:
    """Fit the teacher recipes named in ``kinds`` and keep the one with the best validation accuracy (lesson 04).

    Args:
        kinds: a subset of :data:`TEACHER_KINDS` (``"frozen"``, ``"fine-tuned"``), fitted in that order;
            one kind means no choice (the tool's ``--teacher frozen``).
        fine_tune_epochs: passes over the labelled texts for the fine-tuned recipe.
    Ties keep the first kind. Nothing is chosen on test rows.
    """
    unknown = [kind for kind in kinds if kind not in TEACHER_KINDS]
    if unknown or not kinds:
        raise ValueError(f"teacher kinds must be a non-empty subset of {list(TEACHER_KINDS)}, got {list(kinds)}")
    val_labels = np.asarray(val_labels)
    candidates = {TEACHER_KINDS[kind]: TextTeacher(num_classes, fine_tune_epochs=fine_tune_epochs if kind == "fine-tuned"
                                                   else 0, progress=progress) for kind in kinds}
    val_accuracy, seconds = {}, {}
    for name, candidate in candidates.items():
        start = time.perf_counter()
        candidate.fit(labelled_texts, labelled_labels)
        seconds[name] = time.perf_counter() - start
        val_accuracy[name] = float(np.mean(candidate.predict(val_texts) == val_labels))
    name = max(val_accuracy, key=val_accuracy.get)
    return TeacherChoice(candidates[name], name, val_accuracy, seconds, candidates)


@dataclass
class SoftTargetStudent:
    """The soft-target student at the target temperature chosen on validation."""

    student: NgramStudent
    target_temperature: float
    val_accuracy: dict             # target temperature -> validation accuracy


def fit_soft_target_student(traffic_texts: Sequence[str], traffic_logits, val_texts: Sequence[str], val_labels,
                            num_classes: int, target_temperatures: Sequence[float] = TARGET_TEMPERATURES,
                            progress: bool = True) -> SoftTargetStudent:
    """One :class:`NgramStudent` per target temperature on ``soft_targets(traffic_logits, T)``; keep the best on validation.

    Lesson 04's recipe (each student seeded the same way, so the order of the fits does not change them).
    Ties keep the first temperature. ``progress``: one tqdm bar over the temperatures.
    """
    if not len(target_temperatures):
        raise ValueError("target_temperatures is empty: give at least one candidate temperature")
    val_labels = np.asarray(val_labels)
    candidates, val_accuracy = {}, {}
    loop = target_temperatures
    if progress:
        from tqdm.auto import tqdm
        loop = tqdm(target_temperatures, desc="target temperature")
    for temperature in loop:
        student = NgramStudent(num_classes).fit(traffic_texts, soft_targets(traffic_logits, temperature),
                                                progress=False)
        candidates[temperature] = student
        val_accuracy[temperature] = float(np.mean(student.predict(val_texts) == val_labels))
    best = max(val_accuracy, key=val_accuracy.get)
    return SoftTargetStudent(candidates[best], float(best), val_accuracy)


def router_models(sets: EmailSets, fast: Optional[bool] = None, fine_tune_epochs: Optional[int] = None,
                  target_temperatures: Sequence[float] = TARGET_TEMPERATURES, progress: bool = True) -> RouterModels:
    """Fit lesson 04's teacher candidates and students on ``sets`` (see the module docstring).

    Built from :func:`choose_teacher` and :func:`fit_soft_target_student`, the steps the router tool
    (:mod:`course_lib.router.tool`) runs on your own CSV files.

    Args:
        sets: from :func:`email_sets`.
        fast: picks the teacher's fine-tuning epochs (:func:`teacher_epochs`) unless ``fine_tune_epochs`` is given.
        target_temperatures: candidates for the soft-target student, chosen by validation accuracy.
        progress: tqdm bars (the teacher's, and one over the target temperatures).
    """
    epochs = teacher_epochs(fast) if fine_tune_epochs is None else fine_tune_epochs
    num_classes = len(emails.QUEUES)
    labelled_texts, labelled_labels = sets.texts_and_labels("labelled")
    traffic_texts, _ = sets.texts_and_labels("traffic")  # the traffic's labels are never used
    val_texts, val_labels = sets.texts_and_labels("validation")

    choice = choose_teacher(labelled_texts, labelled_labels, val_texts, val_labels, num_classes, epochs,
                            progress=progress)
    traffic_logits = choice.teacher.predict_logits(traffic_texts)

    baseline = NgramStudent(num_classes).fit(labelled_texts, labelled_labels, progress=progress)
    hard = NgramStudent(num_classes).fit(traffic_texts, traffic_logits.argmax(1), progress=progress)
    soft = fit_soft_target_student(traffic_texts, traffic_logits, val_texts, val_labels, num_classes,
                                   target_temperatures, progress=progress)
    return RouterModels(teacher=choice.teacher, teacher_name=choice.name, teacher_val_accuracy=choice.val_accuracy,
                        teacher_fine_tune_epochs=epochs, teacher_seconds=choice.seconds, teachers=choice.candidates,
                        traffic_logits=traffic_logits,
                        baseline=baseline, hard_pseudo_label=hard, soft_target=soft.student,
                        target_temperature=soft.target_temperature,
                        val_accuracy_by_target_temperature=soft.val_accuracy)
