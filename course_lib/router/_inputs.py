"""Input validation shared by the router's teacher and student (lesson 04)."""
from __future__ import annotations

import re
import warnings
from typing import Sequence

import numpy as np

_SURROGATE = re.compile("[\ud800-\udfff]")


def as_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a new list of str, safe for any tokenizer (lesson 04; the teacher and student both use it).

    A single string or a non-str item raises ``ValueError`` naming the row. Lone UTF-16 surrogates
    (``"refund \\ud800 please"``, e.g. from a truncated emoji) cannot be encoded and crash the
    teacher's tokenizer: they are *replaced* by U+FFFD, with one ``UnicodeWarning`` per call naming
    how many texts and the first row; a split but complete pair is joined into its character.
    The caller's list and strings are never modified.
    """
    if isinstance(texts, str):
        raise ValueError("expected a list of texts, got a single string: wrap it as [text]")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text {i} is a {type(text).__name__}, not a str")
    replaced = []
    for i in [i for i, text in enumerate(texts) if _SURROGATE.search(text)]:
        clean = texts[i].encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        if clean.count("\ufffd") > texts[i].count("\ufffd"):
            replaced.append(i)
        texts[i] = clean
    if replaced:
        warnings.warn(f"{len(replaced)} text{'s' if len(replaced) > 1 else ''} (first: row {replaced[0]}) held "
                      "lone surrogates, which no tokenizer can read: replaced them with U+FFFD",
                      UnicodeWarning, stacklevel=2)
    return texts


def as_labels(labels, n: int, num_classes: int) -> np.ndarray:
    """Int labels ``(n,)`` in ``[0, num_classes)`` as int64, or a ``ValueError`` naming the bad row."""
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the texts, got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be ints in [0, {num_classes}), got dtype {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        raise ValueError(f"label {y[bad[0]]} at row {bad[0]} is outside [0, {num_classes})")
    return y.astype(np.int64)


def as_targets(targets, n: int, num_classes: int) -> np.ndarray:
    """Int labels (n,) -> int64; probability rows (n, num_classes) -> float32, checked."""
    t = np.asarray(targets)
    if t.ndim == 1:
        return as_labels(t, n, num_classes)
    if t.shape != (n, num_classes):
        raise ValueError(f"soft targets must have shape ({n}, {num_classes}), got {t.shape}")
    t = t.astype(np.float32)
    if not np.isfinite(t).all() or (t < 0).any():
        raise ValueError("soft targets must be finite and non-negative: pass probabilities, not logits")
    sums = t.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > 1e-3)
    if bad.size:
        raise ValueError(f"soft target row {bad[0]} sums to {sums[bad[0]]:.4f}, not 1: "
                         "use softmax(teacher_logits / temperature) over each row")
    return t
