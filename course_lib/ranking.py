"""Distilling a ranker: a tiny text embedder trained to order emails as the MiniLM teacher does (introduced in lesson 08).

A support agent's query email is compared with an archive of past emails; the teacher (lesson 04's
MiniLM encoder) ranks the archive by cosine similarity, the student by a dot product of its own vectors.

* The student: :class:`HashedEmbedder`, hashed word uni- and bigrams (lesson 04's featurisation,
  :func:`course_lib.router.student.hashed_ngrams`) -> ``nn.EmbeddingBag`` (mean) -> linear -> unit length.
* The teacher: :func:`lesson04_teacher` rebuilds lesson 04's teacher exactly as lesson 04 chose it
  (fine-tuned or frozen, on validation; the fine-tuned weights load from the verified cache), and
  :func:`teacher_vectors` reads its unit-length embeddings from the verified cache
  (``TextTeacher.embed``), computing them only when missing.
* Training: :func:`fit_embedder` with one of :data:`OBJECTIVES` (labels only, embedding regression,
  listwise ranking KD; the losses live in :mod:`course_lib.losses`), all three on the same texts and
  the same number of optimiser steps; :func:`pca_projection` maps the teacher's 384 dimensions to
  the student's for embedding regression.
* Ranking and its metrics: :func:`score_matrix`, :func:`top_k_indices`, :func:`topk_overlap`,
  :func:`ndcg_at_k`, :func:`recall_at_k`, :func:`spearman`. Every metric takes ``(Q, N)`` scores
  (arrays or tensors) and an optional ``(Q, N)`` bool ``mask`` whose False entries are left out of
  the ranking, e.g. a query's own row when the queries are part of the archive.

Timing the two rankers: :func:`course_lib.timing.benchmark_interleaved` on their embed functions,
inside :func:`course_lib.timing.pinned_threads`.
"""
from __future__ import annotations

import math
import numbers
import time
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import config, emails, losses
from .models import model_device
from .router import pipeline
from .router._inputs import as_texts
from .router.student import hashed_ngrams
from .router.teacher import TextTeacher
from .timing import pinned_threads
from .train import History

#: The three training objectives of :func:`fit_embedder`.
OBJECTIVES = ("labels_only", "embedding_regression", "listwise_kd")


# ----------------------------------------------------------------------------- the student
class HashedEmbedder(nn.Module):
    """Hashed word n-grams -> ``nn.EmbeddingBag`` (mean) -> linear -> unit-length vectors: a ranking student.

    Lesson 04's :class:`~course_lib.router.NgramStudent` without its classification head: the same
    featurisation (:func:`~course_lib.router.student.hashed_ngrams`), a wider table, and a square
    linear layer that mixes the dimensions before the L2 normalisation. Ranking is then a dot product
    (= cosine). An email with no word gets the zero vector (score 0 against everything).

    Args:
        num_buckets: hash buckets shared by unigrams and bigrams (the table has ``num_buckets * dim`` floats).
        dim: width of the output vectors (and of each bucket's vector).
        bigrams: also hash pairs of neighbouring words.
        project: add the linear layer (``dim x dim``); without it the vector is the normalised mean of the rows.
        seed: the initial weights (the caller's RNG is left untouched).
    """

    def __init__(self, num_buckets: int = 2 ** 15, dim: int = 128, bigrams: bool = True, project: bool = True,
                 seed: int = 0):
        super().__init__()
        for name, value in (("num_buckets", num_buckets), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"HashedEmbedder: {name} must be an integer >= 1, got {value!r}")
        self.num_buckets, self.dim, self.bigrams, self.seed = int(num_buckets), int(dim), bool(bigrams), seed
        with config.seeded(seed):  # seeded initial weights, without reseeding the caller's RNG
            self.embedding = nn.EmbeddingBag(self.num_buckets, self.dim, mode="mean")
            nn.init.normal_(self.embedding.weight, std=1.0 / math.sqrt(self.dim))
            self.linear = nn.Linear(self.dim, self.dim) if project else None
        self._hashes: dict[bytes, int] = {}

    def featurize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Bucket ids ``(total,)`` and offsets ``(n,)`` on the CPU (:func:`~course_lib.router.student.hashed_ngrams`)."""
        return hashed_ngrams(texts, self.num_buckets, self.bigrams, self._hashes)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Unit-length vectors ``(n, dim)`` from :meth:`featurize`'s output (on the model's device)."""
        pooled = self.embedding(ids, offsets)
        if self.linear is not None:
            ends = torch.cat([offsets[1:], offsets.new_tensor([ids.shape[0]])])
            pooled = self.linear(pooled) * (ends > offsets).unsqueeze(1)  # no word: zeros, not the bias
        return F.normalize(pooled, dim=-1)

    def embed(self, texts: Sequence[str], batch_size: int = 4096) -> torch.Tensor:
        """Unit-length float32 vectors ``(n, dim)`` of ``texts``, computed in batches on the model's device.

        The result stays on the model's device (``.cpu()`` it for NumPy); no gradient is recorded.
        """
        texts = as_texts(texts)
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        device = model_device(self)
        out = torch.empty((len(texts), self.dim), dtype=torch.float32, device=device)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                ids, offsets = self.featurize(texts[start:start + batch_size])
                out[start:start + batch_size] = self(ids.to(device), offsets.to(device))
        return out

    def num_parameters(self) -> int:
        """Table plus linear layer."""
        return sum(p.numel() for p in self.parameters())


# ----------------------------------------------------------------------------- the teacher
def lesson04_teacher(fast: Optional[bool] = None, progress: bool = True) -> pipeline.TeacherChoice:
    """Lesson 04's teacher, rebuilt exactly as lesson 04 builds it: ``choice.teacher`` is the :class:`TextTeacher`.

    :func:`~course_lib.router.pipeline.email_sets` (lesson 04's sizes and seeds for ``fast``), then
    :func:`~course_lib.router.pipeline.choose_teacher` with both recipes and lesson 04's fine-tuning
    epochs, the better on validation kept (the fine-tuned one in both modes so far: 96.0% against 87.2%
    in full mode). With lesson 04's cache warm nothing is trained: the fine-tuned weights load from
    ``cache_dir()/teachers/<key>/teacher.safetensors`` (verified) and the frozen recipe's embeddings
    from the embeddings cache. ``choice.name`` says which recipe was kept.
    """
    sets = pipeline.email_sets(fast)
    labelled_texts, labelled_labels = sets.texts_and_labels("labelled")
    val_texts, val_labels = sets.texts_and_labels("validation")
    return pipeline.choose_teacher(labelled_texts, labelled_labels, val_texts, val_labels, len(emails.QUEUES),
                                   pipeline.teacher_epochs(fast), progress=progress)


def teacher_vectors(texts: Sequence[str], teacher: Optional[TextTeacher] = None, progress: bool = True) -> torch.Tensor:
    """The teacher's unit-length embeddings of ``texts``: float32 ``(n, 384)``, read from the verified cache.

    ``TextTeacher.embed``'s own path: the vectors are cached under ``cache_dir()/embeddings-<hash>.safetensors``,
    keyed by the encoder (fine-tuned or not), ``max_length`` and a hash of the texts *in order*, and computed
    only when that file is missing or fails verification. Lesson 04 already embedded its traffic, validation and
    test sets: pass those lists whole and slice the result (a subset or a reordering is another key, embedded anew).

    Args:
        texts: the emails.
        teacher: a fitted :class:`TextTeacher`; None builds :func:`lesson04_teacher` (seconds with a warm
            cache; pass it in when embedding several sets).
        progress: the teacher's bars while building it (embedding shows its own when it must compute).
    """
    texts = as_texts(texts)
    if teacher is None:
        teacher = lesson04_teacher(progress=progress).teacher
    return torch.from_numpy(np.ascontiguousarray(teacher.embed(texts), dtype=np.float32))


def pca_projection(vectors, dim: int) -> torch.Tensor:
    """A ``(D, dim)`` matrix with orthonormal columns: the top-``dim`` principal directions of ``vectors`` (uncentred).

    ``vectors @ P`` keeps the most of the rows' inner products a rank-``dim`` map can (the truncated
    SVD, Eckart-Young): exactly what a dot-product ranking reads. Unlike centred PCA it does not
    subtract the mean, which would add ``-mean . t_j`` to every query's score of candidate j and so
    change the teacher's orderings. Fit it on the training texts' teacher vectors only. Column signs are
    fixed (largest entry positive); with fewer than ``dim`` independent rows the extra columns are zeros.
    """
    v = torch.as_tensor(vectors).detach().cpu().double()
    if v.dim() != 2 or not 1 <= dim <= v.shape[1]:
        raise ValueError(f"pca_projection needs (N, D) vectors and 1 <= dim <= D, got shape {tuple(v.shape)}, dim {dim}")
    _, _, vh = torch.linalg.svd(v, full_matrices=False)       # rows of vh: directions, by singular value
    basis = vh[:dim].T                                         # (D, min(N, D, dim))
    signs = torch.sign(basis.gather(0, basis.abs().argmax(0, keepdim=True)))
    basis = basis * torch.where(signs == 0, torch.ones_like(signs), signs)
    if basis.shape[1] < dim:
        basis = torch.cat([basis, basis.new_zeros(basis.shape[0], dim - basis.shape[1])], dim=1)
    return basis.float()


# ----------------------------------------------------------------------------- training
def _check_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"fit_embedder: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _training_targets(objective: str, n: int, dim: int, teacher_vectors, labels):
    """The objective's per-text targets: labels (n,), projected teacher vectors (n, dim) or teacher vectors."""
    if objective not in OBJECTIVES:
        raise ValueError(f"fit_embedder: objective must be one of {OBJECTIVES}, got {objective!r}")
    if objective == "labels_only":
        if labels is None:
            raise ValueError("fit_embedder: labels_only needs labels (the queue of each text)")
        y = torch.as_tensor(np.asarray(labels))
        if y.shape != (n,) or y.dtype.is_floating_point or y.dtype == torch.bool:
            raise ValueError(f"fit_embedder: labels must be {n} integer labels, got {y.dtype} {tuple(y.shape)}")
        return y.long()
    if teacher_vectors is None:
        raise ValueError(f"fit_embedder: {objective} needs teacher_vectors (ranking.teacher_vectors of the same texts)")
    t = torch.as_tensor(teacher_vectors).detach().float().cpu()
    if t.dim() != 2 or t.shape[0] != n:
        raise ValueError(f"fit_embedder: teacher_vectors must be ({n}, D), one row per text, got {tuple(t.shape)}")
    if objective == "embedding_regression":
        return t @ pca_projection(t, dim)  # (n, dim): the teacher's vectors in the student's width
    return F.normalize(t, dim=1)           # listwise_kd: the teacher's cosines are dot products of these


def fit_embedder(student: HashedEmbedder, texts: Sequence[str], objective: str, *, teacher_vectors=None, labels=None,
                 epochs: int = 4, batch_size: int = 256, lr: float = 0.01, seed: int = 0, temperature: float = 0.05,
                 list_size: int = 256, regression_kind: str = "cosine", progress: bool = True,
                 desc: Optional[str] = None) -> History:
    """Train ``student`` in place on ``texts`` with one of :data:`OBJECTIVES`; returns a :class:`~course_lib.train.History`.

    Every objective takes the same steps: ``epochs * ceil(n / batch_size)`` Adam updates (learning rate
    ``lr``, cosine decay to 0), each on a batch of ``batch_size`` query texts from a seeded shuffle.

    * ``"labels_only"`` (no teacher): :func:`~course_lib.losses.contrastive_loss` within the batch, the
      other emails of the query's queue (``labels``) its positives, its own row out of the softmax.
    * ``"embedding_regression"``: :func:`~course_lib.losses.embedding_regression_loss` (``regression_kind``)
      between the student's vectors and the teacher's projected to the student's width by
      :func:`pca_projection`, fitted on these (training) texts. Why PCA rather than a trained linear
      map: it is fixed before training (no extra parameters, nothing to throw away) and it keeps the
      most of the teacher's inner products, the scores a ranking reads; Model2Vec reduces its
      teacher's vectors with PCA too.
    * ``"listwise_kd"``: each step also draws a candidate list of ``list_size`` training texts (a
      seeded draw without replacement, shared by the batch's queries); for every query the teacher's
      cosines to the candidates and the student's dot products go into
      :func:`~course_lib.losses.listwise_kd_loss` at ``temperature``, a candidate that is the query
      itself masked out. The student reads ``batch_size + list_size`` texts per step.

    Args:
        student: a :class:`HashedEmbedder`; it trains where it is (its device), inputs are moved there.
        texts: the training emails (queries and candidates alike).
        teacher_vectors: ``(n, D)`` teacher vectors of ``texts`` (:func:`teacher_vectors`), for the two
            distilled objectives. labels: ``(n,)`` int queues, for ``"labels_only"``.
        temperature: T > 0 dividing cosine scores in the softmax of ``"labels_only"`` and ``"listwise_kd"``.
        list_size: candidates per step for ``"listwise_kd"`` (at most ``n``).
        progress, desc: a tqdm bar over the steps, and its label (default: the objective).

    Deterministic given ``seed``: shuffles and candidate lists come from a local generator (the global
    RNGs are untouched) and training runs on one torch thread (``timing.pinned_threads(1)``, restored
    after), as ``NgramStudent.fit`` does, so the same seed gives the same weights on any machine's CPU.
    """
    texts = as_texts(texts)
    n = len(texts)
    if n < 2:
        raise ValueError(f"fit_embedder needs at least 2 texts (a query and a candidate), got {n}")
    epochs, batch_size = _check_int("epochs", epochs), _check_int("batch_size", batch_size)
    list_size = min(_check_int("list_size", list_size), n)
    temperature = losses._check_temperature(temperature)
    targets = _training_targets(objective, n, student.dim, teacher_vectors, labels)
    device = model_device(student)
    targets = targets.to(device)
    ids, offsets = student.featurize(texts)
    ends = torch.cat([offsets[1:], torch.tensor([len(ids)])])
    bags = [ids[s:e] for s, e in zip(offsets.tolist(), ends.tolist())]

    def embed(idx: torch.Tensor) -> torch.Tensor:
        chosen = [bags[i] for i in idx.tolist()]
        starts = torch.tensor([0] + [len(b) for b in chosen[:-1]]).cumsum(0)
        return student(torch.cat(chosen).to(device), starts.to(device))

    steps_per_epoch = -(-n // batch_size)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    history, start = History(), time.perf_counter()
    bar = tqdm(total=epochs * steps_per_epoch, desc=desc or objective, disable=not progress, leave=False)
    student.train()
    try:
        with pinned_threads(1):
            for _ in range(epochs):
                order, running = torch.randperm(n, generator=generator), 0.0
                for step in range(steps_per_epoch):
                    idx = order[step * batch_size:(step + 1) * batch_size]
                    loss = _step_loss(objective, embed, idx, targets, generator, n, list_size, temperature,
                                      regression_kind)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    running += float(loss.detach()) * len(idx)
                    bar.update(1)
                if not math.isfinite(running):
                    raise FloatingPointError(f"fit_embedder: the {objective} loss became {running}; lower lr")
                history.loss.append(running / n)
                bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
    finally:
        bar.close()
        student.eval()
    history.seconds = time.perf_counter() - start
    return history


def _step_loss(objective, embed, idx, targets, generator, n, list_size, temperature, regression_kind):
    """One batch's loss for ``objective`` (see :func:`fit_embedder`)."""
    vectors = embed(idx)
    device = vectors.device
    if objective == "embedding_regression":
        return losses.embedding_regression_loss(vectors, targets[idx.to(device)], kind=regression_kind)
    if objective == "labels_only":
        y = targets[idx.to(device)]
        not_self = ~torch.eye(len(idx), dtype=torch.bool, device=device)
        return losses.contrastive_loss(vectors, vectors, (y[:, None] == y[None, :]) & not_self, temperature,
                                       mask=not_self)
    candidates = torch.randperm(n, generator=generator)[:list_size]
    student_scores = vectors @ embed(candidates).T
    idx_d, cand_d = idx.to(device), candidates.to(device)
    teacher_scores = targets[idx_d] @ targets[cand_d].T
    mask = idx_d[:, None] != cand_d[None, :]
    keep = mask.any(dim=1)  # a query whose only candidate is itself (list_size 1) has nothing to rank
    return losses.listwise_kd_loss(student_scores[keep], teacher_scores[keep], mask[keep], temperature)


# ----------------------------------------------------------------------------- ranking and its metrics
def score_matrix(query_vectors, archive_vectors, batch_size: int = 1024) -> torch.Tensor:
    """``(Q, N)`` dot products of every query with every archive vector (cosines for unit vectors), float32.

    Computed ``batch_size`` queries at a time on the queries' device (the archive is moved there), so
    memory stays at ``batch_size * N`` scores beyond the result. Arrays or tensors; widths must match.
    """
    q, a = torch.as_tensor(query_vectors), torch.as_tensor(archive_vectors)
    if q.dim() != 2 or a.dim() != 2 or q.shape[1] != a.shape[1]:
        raise ValueError(f"score_matrix needs (Q, d) queries and (N, d) archive vectors, got {tuple(q.shape)} "
                         f"and {tuple(a.shape)}")
    q, a = q.float(), a.float().to(q.device)
    out = torch.empty((q.shape[0], a.shape[0]), dtype=torch.float32, device=q.device)
    with torch.inference_mode():
        for start in range(0, q.shape[0], batch_size):
            out[start:start + batch_size] = q[start:start + batch_size] @ a.T
    return out


def _as_scores(scores, mask, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores as float64 CPU (Q, N), valid mask (Q, N) bool)`` or a ValueError."""
    s = torch.as_tensor(scores).detach().cpu()
    if s.dim() != 2 or s.dtype == torch.bool:
        raise ValueError(f"{what}: scores must be a (queries, items) array of numbers, got shape {tuple(s.shape)}")
    s = s.double()
    if torch.isnan(s).any():
        raise ValueError(f"{what}: scores contain NaN")
    if mask is None:
        return s, torch.ones(s.shape, dtype=torch.bool)
    m = torch.as_tensor(mask).detach().cpu()
    if m.dtype != torch.bool or m.shape != s.shape:
        raise ValueError(f"{what}: mask must be bool of shape {tuple(s.shape)} (False = left out, e.g. the query's "
                         f"own row), got {m.dtype} {tuple(m.shape)}")
    return s, m


def _check_k(k, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"{what}: k must be an integer >= 1, got {k!r}")
    return int(k)


def _order(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Each row's items from the highest score down, left-out items last; ties keep the lower index first."""
    keyed = torch.where(valid, scores, torch.tensor(float("-inf"), dtype=scores.dtype))
    return torch.sort(keyed, dim=1, descending=True, stable=True).indices


def top_k_indices(scores, k: int, mask=None) -> torch.Tensor:
    """``(Q, min(k, N))`` indices of each query's highest-scoring items, best first; ties: lower index first.

    Items with ``mask`` False are never returned while a row has enough valid ones (after them a row
    is padded with the left-out items, last). Use :func:`score_matrix` for the scores.
    """
    s, valid = _as_scores(scores, mask, "top_k_indices")
    return _order(s, valid)[:, :_check_k(k, "top_k_indices")]


def _top_sets(scores: torch.Tensor, valid: torch.Tensor, k: int) -> torch.Tensor:
    """(Q, N) bool: the items in each row's top min(k, valid items)."""
    order = _order(scores, valid)[:, :k]
    top = torch.zeros(scores.shape, dtype=torch.bool)
    top.scatter_(1, order, True)
    return top & valid


def topk_overlap(student_scores, teacher_scores, k: int = 10, mask=None) -> float:
    """Mean over queries of ``|top-k(student) & top-k(teacher)| / k``: how much of the teacher's top k the student finds.

    With fewer than ``k`` valid items in a row, k is that count (both top lists are then everything:
    overlap 1). Ties are broken by the lower index in both rankings. ``mask``: (Q, N) bool, False =
    left out of both rankings (a query's own row when the queries are in the archive).
    """
    what = "topk_overlap"
    s, valid = _as_scores(student_scores, mask, what)
    t, _ = _as_scores(teacher_scores, mask, what)
    if s.shape != t.shape:
        raise ValueError(f"{what}: student and teacher scores must have the same shape, got {tuple(s.shape)} "
                         f"and {tuple(t.shape)}")
    k = _check_k(k, what)
    k_row = valid.sum(1).clamp(max=k)
    rows = k_row > 0
    both = (_top_sets(s, valid, k) & _top_sets(t, valid, k)).sum(1)
    return float((both[rows] / k_row[rows]).mean())


def ndcg_at_k(scores, relevance, k: int = 10, mask=None) -> float:
    """Mean over queries of nDCG@k with graded relevance: how well the ranking puts the most relevant items first.

    ``DCG@k = sum over ranks r = 1..k of rel(item at r) / log2(r + 1)`` (linear gains), divided by the
    DCG of the ideal order of the row's valid items. ``relevance`` is ``(Q, N)``, >= 0 (e.g. the
    teacher's cosines clipped at 0: ``teacher_scores.clip(min=0)``); queries whose valid items all have
    relevance 0 are skipped. Ties in ``scores``: lower index first. ``mask`` as in :func:`topk_overlap`.
    """
    what = "ndcg_at_k"
    s, valid = _as_scores(scores, mask, what)
    rel, _ = _as_scores(relevance, None, what)
    if rel.shape != s.shape:
        raise ValueError(f"{what}: scores and relevance must have the same shape, got {tuple(s.shape)} and "
                         f"{tuple(rel.shape)}")
    if (rel < 0).any():
        raise ValueError(f"{what}: relevance must be >= 0 (clip the teacher's scores at 0 first)")
    k = _check_k(k, what)
    rel = torch.where(valid, rel, torch.zeros_like(rel))
    kk = min(k, s.shape[1])
    discounts = 1.0 / torch.log2(torch.arange(2, kk + 2, dtype=torch.float64))
    dcg = (rel.gather(1, _order(s, valid)[:, :kk]) * discounts).sum(1)
    ideal = (rel.sort(dim=1, descending=True).values[:, :kk] * discounts).sum(1)
    rows = ideal > 0
    if not bool(rows.any()):
        raise ValueError(f"{what}: no query has an item with relevance > 0")
    return float((dcg[rows] / ideal[rows]).mean())


def recall_at_k(scores, relevant, k: int = 10, mask=None) -> float:
    """Mean over queries of ``|relevant & top-k| / min(k, |relevant|)``: capped recall (BEIR's R_cap@k).

    ``relevant`` is ``(Q, N)`` bool (e.g. the archive emails of the query's queue). Dividing by
    ``min(k, |relevant|)`` rather than ``|relevant|`` makes 1 reachable: with k or more relevant
    items it is precision@k (the share of the top k that is relevant), with fewer it is plain recall.
    Queries with no relevant valid item are skipped. Ties: lower index first. ``mask`` as in
    :func:`topk_overlap` (left-out items are neither retrieved nor relevant).
    """
    what = "recall_at_k"
    s, valid = _as_scores(scores, mask, what)
    r = torch.as_tensor(relevant).detach().cpu()
    if r.dtype != torch.bool or r.shape != s.shape:
        raise ValueError(f"{what}: relevant must be bool of shape {tuple(s.shape)}, got {r.dtype} {tuple(r.shape)}")
    k = _check_k(k, what)
    r = r & valid
    counts = r.sum(1)
    rows = counts > 0
    if not bool(rows.any()):
        raise ValueError(f"{what}: no query has a relevant item")
    hits = (_top_sets(s, valid, k) & r).sum(1)
    return float((hits[rows] / counts[rows].clamp(max=k)).mean())


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values`` (1-D), ties sharing their average rank."""
    from scipy.stats import rankdata
    return rankdata(values, method="average")


def spearman(scores_a, scores_b, mask=None) -> float:
    """Mean over queries of Spearman's rank correlation between two full orderings of the same items.

    Per query: the Pearson correlation of the two rows' ranks over the valid items, ties sharing
    their average rank. A query with fewer than 2 valid items, or with all its items tied in either
    row (no ordering to compare), is skipped. ``mask`` as in :func:`topk_overlap`.
    """
    what = "spearman"
    a, valid = _as_scores(scores_a, mask, what)
    b, _ = _as_scores(scores_b, mask, what)
    if a.shape != b.shape:
        raise ValueError(f"{what}: the two scores must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b, valid = a.numpy(), b.numpy(), valid.numpy()
    values = []
    for row in range(a.shape[0]):
        keep = valid[row]
        if keep.sum() < 2:
            continue
        ra, rb = _average_ranks(a[row, keep]), _average_ranks(b[row, keep])
        ra, rb = ra - ra.mean(), rb - rb.mean()
        norm = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
        if norm > 0:
            values.append(float((ra * rb).sum()) / norm)
    if not values:
        raise ValueError(f"{what}: no query has two or more valid items with an ordering to compare")
    return float(np.mean(values))
