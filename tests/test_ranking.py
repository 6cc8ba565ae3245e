"""Unit tests for lesson 08's ranker: the losses in course_lib.losses and course_lib.ranking.

The losses are compared on float64 inputs with the formulas written out in Python loops; the metrics
with small cases computed by hand (ties, k larger than N, masks); the embedder and ``fit_embedder``
with repeatability, the global RNG, and one small learning test per objective on synthetic emails.
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from course_lib import losses, ranking
from course_lib.losses import contrastive_loss, embedding_regression_loss, listwise_kd_loss


def _pair(q: int = 4, c: int = 6, seed: int = 0, scale: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(q, c, generator=g, dtype=torch.float64) * scale,
            torch.randn(q, c, generator=g, dtype=torch.float64) * scale)


def _log_softmax(values: list[float]) -> list[float]:
    m = max(values)
    z = m + math.log(sum(math.exp(v - m) for v in values))
    return [v - z for v in values]


def _listwise_written_out(student, teacher, mask, temperature) -> float:
    """T^2 * mean over rows of KL(softmax(t/T) || softmax(s/T)) over the row's valid entries, in loops."""
    total = 0.0
    for i in range(student.shape[0]):
        cols = [j for j in range(student.shape[1]) if mask is None or bool(mask[i, j])]
        log_p = _log_softmax([float(teacher[i, j]) / temperature for j in cols])
        log_q = _log_softmax([float(student[i, j]) / temperature for j in cols])
        total += sum(math.exp(a) * (a - b) for a, b in zip(log_p, log_q))
    return total / student.shape[0] * temperature**2


# --- listwise_kd_loss ------------------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [0.05, 0.5, 1.0, 4.0])
def test_listwise_kd_loss_matches_the_formula_with_a_mask(temperature):
    student, teacher = _pair()
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[0, 0] = mask[1, 3] = mask[2, 5] = mask[3, 1] = False  # each query's own row
    mask[2, :4] = False                                        # padding
    loss = listwise_kd_loss(student, teacher, mask, temperature)
    assert loss.dtype == torch.float64
    assert float(loss) == pytest.approx(_listwise_written_out(student, teacher, mask, temperature), rel=1e-9)
    assert float(listwise_kd_loss(student, teacher, None, temperature)) == pytest.approx(
        _listwise_written_out(student, teacher, None, temperature), rel=1e-9)


def test_listwise_kd_loss_is_kd_loss_without_a_mask_and_scales_with_t_squared():
    student, teacher = _pair()
    for temperature in (0.5, 2.0):
        assert float(listwise_kd_loss(student, teacher, temperature=temperature)) == pytest.approx(
            float(losses.kd_loss(student, teacher, temperature)), rel=1e-9)
    # the T^2 factor: at T the loss is T^2 times the plain KL of the softened rows
    kl = F.kl_div(F.log_softmax(student / 3.0, -1), F.log_softmax(teacher / 3.0, -1), log_target=True,
                  reduction="batchmean")
    assert float(listwise_kd_loss(student, teacher, temperature=3.0)) == pytest.approx(9.0 * float(kl), rel=1e-9)


def test_listwise_kd_loss_ignores_masked_entries_completely():
    student, teacher = _pair()
    mask = torch.rand(4, 6, generator=torch.Generator().manual_seed(1)) > 0.3
    mask[:, 0] = True
    student = student.clone().requires_grad_(True)
    loss = listwise_kd_loss(student, teacher, mask)
    loss.backward()
    assert torch.all(student.grad[~mask] == 0)
    wild_s = torch.where(mask, student.detach(), torch.full_like(teacher, 1e6))
    wild_t = torch.where(mask, teacher, torch.full_like(teacher, -1e6))
    assert float(listwise_kd_loss(wild_s, wild_t, mask)) == pytest.approx(float(loss.detach()), rel=1e-12)


def test_listwise_kd_loss_zero_when_equal_up_to_a_row_constant_and_teacher_gets_no_gradient():
    student, teacher = _pair()
    assert float(listwise_kd_loss(teacher + torch.arange(4.0, dtype=torch.float64)[:, None], teacher)) < 1e-12
    student, teacher = student.requires_grad_(True), teacher.clone().requires_grad_(True)
    listwise_kd_loss(student, teacher, temperature=2.0).backward()
    assert teacher.grad is None and student.grad is not None


def test_listwise_kd_loss_refuses_bad_input():
    student, teacher = _pair()
    with pytest.raises(ValueError, match="same shape"):
        listwise_kd_loss(student, teacher[:, :5])
    with pytest.raises(ValueError, match="bool"):
        listwise_kd_loss(student, teacher, torch.ones(4, 6))
    with pytest.raises(ValueError, match="bool tensor of shape"):
        listwise_kd_loss(student, teacher, torch.ones(4, 5, dtype=torch.bool))
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[2] = False
    with pytest.raises(ValueError, match=r"row\(s\) \[2\] have no valid candidate"):
        listwise_kd_loss(student, teacher, mask)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            listwise_kd_loss(student, teacher, temperature=bad)
    with pytest.raises(ValueError, match="queries, candidates"):
        listwise_kd_loss(student[0], teacher[0])


# --- embedding_regression_loss ----------------------------------------------------------------------

def test_embedding_regression_loss_matches_the_formulas():
    s, t = _pair(5, 3)
    cos = [sum(a * b for a, b in zip(s[i].tolist(), t[i].tolist()))
           / math.sqrt(sum(a * a for a in s[i].tolist()) * sum(b * b for b in t[i].tolist())) for i in range(5)]
    assert float(embedding_regression_loss(s, t)) == pytest.approx(sum(1 - c for c in cos) / 5, rel=1e-9)
    mse = sum((a - b) ** 2 for a, b in zip(s.flatten().tolist(), t.flatten().tolist())) / 15
    assert float(embedding_regression_loss(s, t, kind="mse")) == pytest.approx(mse, rel=1e-9)


def test_embedding_regression_loss_zero_when_equal_teacher_detached_and_errors():
    s, t = _pair(5, 3)
    assert float(embedding_regression_loss(t, t)) < 1e-12
    assert float(embedding_regression_loss(3.0 * t, t)) < 1e-12  # cosine: directions only
    assert float(embedding_regression_loss(3.0 * t, t, kind="mse")) > 0
    s, t = s.requires_grad_(True), t.clone().requires_grad_(True)
    embedding_regression_loss(s, t).backward()
    assert t.grad is None and s.grad is not None
    with pytest.raises(ValueError, match="kind"):
        embedding_regression_loss(s, t, kind="l1")
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        embedding_regression_loss(s, t[:, :2])
    with pytest.raises(ValueError, match="batch size"):
        embedding_regression_loss(s, t[:4])


# --- contrastive_loss -------------------------------------------------------------------------------

def _contrastive_written_out(q, c, positive, mask, temperature) -> float:
    values = []
    for i in range(q.shape[0]):
        cols = [j for j in range(c.shape[0]) if mask is None or bool(mask[i, j])]
        pos = [j for j in cols if bool(positive[i, j])]
        if not pos:
            continue
        scores = {j: sum(a * b for a, b in zip(q[i].tolist(), c[j].tolist())) / temperature for j in cols}
        log_p = dict(zip(cols, _log_softmax([scores[j] for j in cols])))
        values.append(-math.log(sum(math.exp(log_p[j]) for j in pos)))
    return sum(values) / len(values)


def test_contrastive_loss_matches_the_formula_skips_queries_without_positives_and_masks():
    g = torch.Generator().manual_seed(0)
    v = F.normalize(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 1, 2])                 # query 5 has no other of its label
    not_self = ~torch.eye(6, dtype=torch.bool)
    positive = (labels[:, None] == labels[None, :]) & not_self
    for temperature in (0.05, 1.0):
        got = float(contrastive_loss(v, v, positive, temperature, mask=not_self))
        assert got == pytest.approx(_contrastive_written_out(v, v, positive, not_self, temperature), rel=1e-9)
    # without the mask every candidate, the query itself included, is in the softmax
    assert float(contrastive_loss(v, v, positive, 0.5)) == pytest.approx(
        _contrastive_written_out(v, v, positive, None, 0.5), rel=1e-9)
    # a positive that the mask rules out does not count
    assert float(contrastive_loss(v, v, positive | ~not_self, 0.5, mask=not_self)) == pytest.approx(
        float(contrastive_loss(v, v, positive, 0.5, mask=not_self)), rel=1e-12)


def test_contrastive_loss_near_zero_when_positives_dominate_and_errors():
    q = torch.eye(3, dtype=torch.float64)
    assert float(contrastive_loss(q, q, torch.eye(3, dtype=torch.bool), temperature=0.01)) < 1e-30
    with pytest.raises(ValueError, match="no query has a positive"):
        contrastive_loss(q, q, torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="positive_mask must be a bool"):
        contrastive_loss(q, q, torch.eye(3))
    with pytest.raises(ValueError, match="same width"):
        contrastive_loss(q, q[:, :2], torch.eye(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="temperature"):
        contrastive_loss(q, q, torch.eye(3, dtype=torch.bool), temperature=0)


# --- metrics: hand-computed cases ---------------------------------------------------------------------

def test_topk_overlap_by_hand_with_ties_k_beyond_n_and_a_mask():
    student = [[0.9, 0.8, 0.1, 0.5], [1.0, 1.0, 1.0, 0.0]]   # row 2: a three-way tie, lower index first
    teacher = [[0.9, 0.1, 0.8, 0.5], [0.0, 0.5, 1.0, 0.9]]
    # k=2: row 1 tops {0, 1} vs {0, 2} -> 1/2; row 2 tops {0, 1} vs {2, 3} -> 0
    assert ranking.topk_overlap(student, teacher, 2) == pytest.approx(0.25)
    # k=3: {0, 1, 3} vs {0, 2, 3} -> 2/3; {0, 1, 2} vs {1, 2, 3} -> 2/3
    assert ranking.topk_overlap(np.array(student), torch.tensor(teacher), 3) == pytest.approx(2 / 3)
    assert ranking.topk_overlap(student, teacher, 10) == 1.0  # k > N: both top lists are everything
    mask = np.array([[False, True, True, True], [True, True, True, True]])
    # row 1 without item 0, k=1: student's best is 1, teacher's best is 2 -> 0; row 2: {0} vs {2} -> 0
    assert ranking.topk_overlap(student, teacher, 1, mask=mask) == 0.0
    # k=3 leaves row 1 with its three valid items: overlap 1; row 2 as before 2/3
    assert ranking.topk_overlap(student, teacher, 3, mask=mask) == pytest.approx((1 + 2 / 3) / 2)


def test_top_k_indices_order_ties_and_mask():
    scores = [[0.2, 0.9, 0.9, 0.1]]
    assert ranking.top_k_indices(scores, 3).tolist() == [[1, 2, 0]]
    assert ranking.top_k_indices(scores, 2, mask=[[True, False, True, True]]).tolist() == [[2, 0]]
    assert ranking.top_k_indices(scores, 9).shape == (1, 4)


def test_ndcg_at_k_by_hand():
    scores = [[3.0, 2.0, 1.0, 0.0]]
    relevance = [[0.0, 1.0, 2.0, 0.5]]
    # ranked relevances 0, 1, 2, 0.5; ideal 2, 1, 0.5, 0
    dcg2 = 0 / math.log2(2) + 1 / math.log2(3)
    ideal2 = 2 / math.log2(2) + 1 / math.log2(3)
    assert ranking.ndcg_at_k(scores, relevance, 2) == pytest.approx(dcg2 / ideal2, rel=1e-12)
    dcg = dcg2 + 2 / math.log2(4) + 0.5 / math.log2(5)
    ideal = ideal2 + 0.5 / math.log2(4)
    assert ranking.ndcg_at_k(scores, relevance, 10) == pytest.approx(dcg / ideal, rel=1e-12)  # k > N
    assert ranking.ndcg_at_k(relevance, relevance, 3) == 1.0
    # ties in the scores: lower index first -> ranked relevances 0, 1 at k=2, as above
    assert ranking.ndcg_at_k([[1.0, 1.0, 0.0, 0.0]], relevance, 2) == pytest.approx(dcg2 / ideal2, rel=1e-12)
    # a mask removes item 0: ranked 1, 2 vs ideal 2, 1; a query with no relevance at all is skipped
    masked = ranking.ndcg_at_k(scores + [[1.0, 0, 0, 0]], relevance + [[0.0, 0, 0, 0]], 2,
                               mask=[[False, True, True, True], [True] * 4])
    assert masked == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)), rel=1e-12)
    with pytest.raises(ValueError, match=">= 0"):
        ranking.ndcg_at_k(scores, [[-0.1, 0, 0, 0]], 2)
    with pytest.raises(ValueError, match="no query"):
        ranking.ndcg_at_k(scores, [[0.0] * 4], 2)


def test_recall_at_k_by_hand_capped_at_k():
    scores = [[0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5], [0.5] * 5]
    relevant = [[True, False, True, True, True],   # 4 relevant: k=2 -> 1/2 (precision), k=4 -> 3/4
                [True, False, False, False, False],  # 1 relevant, ranked last: k=2 -> 0, k=5 -> 1
                [False] * 5]                         # skipped
    assert ranking.recall_at_k(scores, relevant, 2) == pytest.approx((1 / 2 + 0) / 2)
    assert ranking.recall_at_k(scores, relevant, 4) == pytest.approx((3 / 4 + 0) / 2)
    assert ranking.recall_at_k(scores, relevant, 50) == 1.0  # k > N: everything is retrieved
    # ties (row 3 all 0.5): lower index first; a mask drops item 0 from row 1 (neither retrieved nor relevant)
    assert ranking.recall_at_k([[0.5] * 5], [[False, True, False, False, False]], 2) == 1.0
    mask = [[False, True, True, True, True], [True] * 5, [True] * 5]
    assert ranking.recall_at_k(scores, relevant, 2, mask=mask) == pytest.approx((1 / 2 + 0) / 2)  # {1,2}: 1 of 2
    assert ranking.recall_at_k(scores, relevant, 3, mask=mask) == pytest.approx((2 / 3 + 0) / 2)
    with pytest.raises(ValueError, match="bool"):
        ranking.recall_at_k(scores, np.ones((3, 5)), 2)
    with pytest.raises(ValueError, match="no query"):
        ranking.recall_at_k(scores, [[False] * 5] * 3, 2)


def test_spearman_by_hand_with_ties_and_against_scipy():
    assert ranking.spearman([[1, 2, 3, 4]], [[10, 20, 30, 40]]) == pytest.approx(1.0)
    assert ranking.spearman([[1, 2, 3, 4]], [[4, 3, 2, 1]]) == pytest.approx(-1.0)
    # ties: ranks (1.5, 1.5, 3) vs (1, 2, 3): centred (-.75, -.75, 1.5) . (-1, 0, 1) = 2.25; norms sqrt(3.375 * 2)
    assert ranking.spearman([[0, 0, 1]], [[1, 2, 3]]) == pytest.approx(2.25 / math.sqrt(3.375 * 2), rel=1e-12)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, (5, 9)).astype(float), rng.normal(size=(5, 9))
    expected = np.mean([spearmanr(a[i], b[i]).statistic for i in range(5)])
    assert ranking.spearman(a, b) == pytest.approx(expected, rel=1e-12)
    mask = np.ones((5, 9), dtype=bool)
    mask[np.arange(5), np.arange(5)] = False
    expected = np.mean([spearmanr(a[i][mask[i]], b[i][mask[i]]).statistic for i in range(5)])
    assert ranking.spearman(a, b, mask=mask) == pytest.approx(expected, rel=1e-12)
    # a constant row has no ordering: skipped
    assert ranking.spearman([[1, 1, 1], [1, 2, 3]], [[1, 2, 3], [1, 2, 3]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no query"):
        ranking.spearman([[1, 1, 1]], [[1, 2, 3]])


def test_metrics_refuse_bad_input():
    s = np.zeros((2, 3))
    with pytest.raises(ValueError, match="same shape"):
        ranking.topk_overlap(s, np.zeros((2, 4)), 1)
    with pytest.raises(ValueError, match="k must be"):
        ranking.topk_overlap(s, s, 0)
    with pytest.raises(ValueError, match="mask must be bool"):
        ranking.recall_at_k(s, s > 0, 1, mask=np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        ranking.spearman(np.full((2, 3), np.nan), s)
    with pytest.raises(ValueError, match=r"\(queries, items\)"):
        ranking.ndcg_at_k(np.zeros(3), np.zeros(3), 1)


def test_score_matrix_is_the_batched_dot_product():
    g = torch.Generator().manual_seed(0)
    q, a = torch.randn(7, 5, generator=g), torch.randn(11, 5, generator=g)
    got = ranking.score_matrix(q, a.numpy(), batch_size=3)
    assert got.dtype == torch.float32 and got.shape == (7, 11)
    assert torch.allclose(got, q @ a.T, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="queries"):
        ranking.score_matrix(q, a[:, :4])


# --- the embedder and the PCA projection -----------------------------------------------------------------

def test_embedder_is_deterministic_unit_length_and_stays_on_its_device(models_never_move):
    texts = ["My parcel never arrived", "charged twice", "", "Ça n'arrive pas 📦"]
    a, b = ranking.HashedEmbedder(num_buckets=512, dim=16, seed=3), ranking.HashedEmbedder(512, 16, seed=3)
    before = torch.get_rng_state()
    va = a.embed(texts, batch_size=3)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(va, b.embed(texts, batch_size=3))  # the same seed, inputs and batches: identical computation
    assert torch.allclose(va, b.embed(texts), atol=1e-6)     # other batches: float32 rounding only
    assert not torch.equal(va, ranking.HashedEmbedder(512, 16, seed=4).embed(texts))
    assert va.dtype == torch.float32 and va.shape == (4, 16) and va.device == next(a.parameters()).device
    norms = va.norm(dim=1)
    assert torch.allclose(norms[[0, 1, 3]], torch.ones(3), atol=1e-6) and float(norms[2]) == 0.0  # no word: zeros
    assert a.embed([]).shape == (0, 16)
    # the same featurisation as lesson 04's student
    from course_lib.router import NgramStudent
    ids, offsets = a.featurize(texts)
    ref_ids, ref_offsets = NgramStudent(2, num_buckets=512).featurize(texts)
    assert torch.equal(ids, ref_ids) and torch.equal(offsets, ref_offsets)
    with pytest.raises(ValueError, match="dim"):
        ranking.HashedEmbedder(dim=0)
    with pytest.raises(ValueError, match="batch_size"):
        a.embed(texts, batch_size=0)


def test_pca_projection_keeps_inner_products_within_its_rank():
    g = torch.Generator().manual_seed(0)
    low_rank = torch.randn(40, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 10, generator=g,
                                                                                   dtype=torch.float64)
    p = ranking.pca_projection(low_rank, 3)
    assert p.shape == (10, 3) and p.dtype == torch.float32
    assert torch.allclose(p.double().T @ p.double(), torch.eye(3, dtype=torch.float64), atol=1e-6)
    projected = low_rank @ p.double()
    assert torch.allclose(projected @ projected.T, low_rank @ low_rank.T, rtol=1e-5, atol=1e-4)
    # no centring: a shared offset stays in the projection (centred PCA would drop it)
    offset = torch.ones(5, 4)
    assert torch.allclose((offset @ ranking.pca_projection(offset, 1)).abs(), torch.full((5, 1), 2.0))
    assert torch.equal(ranking.pca_projection(torch.eye(2, 4), 3)[:, 2], torch.zeros(4))  # rank 2 < dim 3
    with pytest.raises(ValueError, match="dim"):
        ranking.pca_projection(low_rank, 11)


def test_teacher_vectors_read_the_teachers_embed_path():
    class Teacher:
        calls = []

        def embed(self, texts):
            self.calls.append(list(texts))
            return np.eye(len(texts), 4, dtype=np.float64)

    teacher = Teacher()
    got = ranking.teacher_vectors(("a", "b"), teacher=teacher)
    assert teacher.calls == [["a", "b"]] and got.dtype == torch.float32 and got.shape == (2, 4)


# --- fit_embedder: synthetic emails with a topic and a subtopic -------------------------------------------

TOPICS, SUBTOPICS = 4, 3


def _synthetic(n: int, seed: int):
    """Texts with one topic word, one subtopic word and six noise words; the teacher knows topic and subtopic."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(100)  # the same teacher geometry for every seed
    centres = F.normalize(torch.randn(TOPICS, 24, generator=g), dim=1)
    sub = F.normalize(torch.randn(TOPICS * SUBTOPICS, 24, generator=g), dim=1)
    texts, labels, rows = [], [], []
    for _ in range(n):
        topic, subtopic = rng.randrange(TOPICS), rng.randrange(SUBTOPICS)
        words = [f"topic{topic}w{rng.randrange(3)}", f"sub{topic}x{subtopic}"] + \
                [f"noise{rng.randrange(300)}" for _ in range(6)]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(topic)
        rows.append(2.0 * centres[topic] + sub[topic * SUBTOPICS + subtopic])
    return texts, np.array(labels), F.normalize(torch.stack(rows), dim=1)


def _quality(student, texts, labels, teacher):
    v = student.embed(texts)
    mask = ~torch.eye(len(texts), dtype=torch.bool)
    scores, teacher_scores = ranking.score_matrix(v, v), ranking.score_matrix(teacher, teacher)
    relevant = torch.as_tensor(labels)[:, None] == torch.as_tensor(labels)[None, :]
    return (ranking.recall_at_k(scores, relevant, 10, mask=mask),
            ranking.topk_overlap(scores, teacher_scores, 10, mask=mask))


FIT = dict(epochs=6, batch_size=32, lr=0.05, list_size=64, progress=False)


@pytest.mark.parametrize("objective", ranking.OBJECTIVES)
def test_fit_embedder_learns_each_objective(objective, pinned_one_thread):
    texts, labels, teacher = _synthetic(300, seed=0)
    held_texts, held_labels, held_teacher = _synthetic(150, seed=1)
    student = ranking.HashedEmbedder(num_buckets=1024, dim=24, seed=0)
    recall0, overlap0 = _quality(student, held_texts, held_labels, held_teacher)
    temperature = 0.1 if objective == "listwise_kd" else 0.05
    history = ranking.fit_embedder(student, texts, objective, teacher_vectors=teacher, labels=labels,
                                   temperature=temperature, **FIT)
    recall, overlap = _quality(student, held_texts, held_labels, held_teacher)
    assert len(history.loss) == 6 and history.loss[-1] < history.loss[0]
    assert recall > recall0 + 0.4, (recall0, recall)
    if objective != "labels_only":  # the teacher's subtopics order its top 10: the distilled students are taught them
        assert overlap > overlap0 + 0.2, (overlap0, overlap)


def test_fit_embedder_repeats_with_a_seed_and_leaves_the_global_rng(pinned_one_thread):
    texts, labels, teacher = _synthetic(120, seed=0)
    state = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    weights = []
    for seed in (0, 0, 1):
        student = ranking.HashedEmbedder(num_buckets=256, dim=8, seed=0)
        ranking.fit_embedder(student, texts, "listwise_kd", teacher_vectors=teacher, epochs=1, batch_size=32,
                             list_size=16, seed=seed, progress=False)
        weights.append(student.embedding.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])  # the same seed: the identical computation
    assert not torch.equal(weights[0], weights[2])
    assert torch.equal(torch.get_rng_state(), state[0]) and np.array_equal(np.random.get_state()[1], state[1])
    assert random.getstate() == state[2]
    assert torch.get_num_threads() == 1  # the fixture's count, restored by fit_embedder


def test_fit_embedder_same_budget_for_every_objective(monkeypatch):
    texts, labels, teacher = _synthetic(70, seed=0)
    steps, original = {}, torch.optim.Adam.step
    for objective in ranking.OBJECTIVES:
        calls = []

        def counting(self, *args, _calls=calls, **kwargs):
            _calls.append(1)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.optim.Adam, "step", counting)
        ranking.fit_embedder(ranking.HashedEmbedder(128, 8), texts, objective, teacher_vectors=teacher, labels=labels,
                             epochs=2, batch_size=32, list_size=8, progress=False)
        monkeypatch.setattr(torch.optim.Adam, "step", original)
        steps[objective] = len(calls)
    assert set(steps.values()) == {2 * 3}, steps


def test_fit_embedder_refuses_bad_input():
    texts, labels, teacher = _synthetic(10, seed=0)
    student = ranking.HashedEmbedder(64, 4)
    with pytest.raises(ValueError, match="objective"):
        ranking.fit_embedder(student, texts, "pairwise", labels=labels, progress=False)
    with pytest.raises(ValueError, match="needs labels"):
        ranking.fit_embedder(student, texts, "labels_only", progress=False)
    with pytest.raises(ValueError, match="integer labels"):
        ranking.fit_embedder(student, texts, "labels_only", labels=labels[:5], progress=False)
    with pytest.raises(ValueError, match="needs teacher_vectors"):
        ranking.fit_embedder(student, texts, "listwise_kd", progress=False)
    with pytest.raises(ValueError, match="one row per text"):
        ranking.fit_embedder(student, texts, "embedding_regression", teacher_vectors=teacher[:9], progress=False)
    with pytest.raises(ValueError, match="epochs"):
        ranking.fit_embedder(student, texts, "listwise_kd", teacher_vectors=teacher, epochs=0, progress=False)
    with pytest.raises(ValueError, match="at least 2 texts"):
        ranking.fit_embedder(student, texts[:1], "listwise_kd", teacher_vectors=teacher[:1], progress=False)
    with pytest.raises(ValueError, match="temperature"):
        ranking.fit_embedder(student, texts, "listwise_kd", teacher_vectors=teacher, temperature=0, progress=False)
