"""The generated answer keys (course_lib/answers, one per lesson) and the library functions that do the same job
agree, edge cases included (issue 21: one answer key per exercise; where the library has its own version, a test
pins the two together)."""

import numpy as np
import pytest
import torch

from course_lib import distill, evaluate, losses, sequence, timing
from course_lib.answers import lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07, lesson08
from course_lib.checks._clock import FakeClock, FakeModel, fake_time
from tolerance import close32, kd_magnitude

# (student_logits, teacher_logits, temperature): ordinary, equal, huge (softmax underflows in float32), ties
KD_CASES = [
    (torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, 3.0]]), torch.tensor([[1.0, 0.0, -2.0], [2.0, 2.0, 0.0]]), 2.0),
    (torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 2.0, 3.0]]), 1.0),
    (torch.tensor([[1e4, -1e4, 0.0]]), torch.tensor([[-1e4, 1e4, 0.0]]), 0.5),
    (torch.zeros(4, 5), torch.zeros(4, 5), 20.0),
]


@pytest.mark.parametrize("student,teacher,temperature", KD_CASES)
def test_kd_losses_agree(student, teacher, temperature):
    labels = torch.arange(len(student)) % student.shape[1]
    # two float32 implementations summing in other orders: float32 tolerances (tests/tolerance.py), scaled to the terms
    tolerance = close32(kd_magnitude(student, teacher, temperature=temperature))
    assert torch.allclose(lesson02.kd_loss(student, teacher, temperature), losses.kd_loss(student, teacher, temperature),
                          **tolerance)
    assert torch.allclose(lesson02.distillation_loss(student, teacher, labels, temperature, 0.3),
                          losses.distillation_loss(student, teacher, labels, temperature, 0.3), **tolerance)
    for dim in (0, -1):
        assert torch.allclose(lesson01.softmax_with_temperature(student, temperature, dim=dim),
                              losses.softmax_with_temperature(student, temperature, dim=dim), atol=1e-6)


def test_hidden_state_losses_agree():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(3, 4, 5, 5, generator=g)
    for p in (1, 2, 3):
        assert torch.allclose(lesson03.attention_map(features, p), losses.attention_map(features, p), atol=1e-6)
    assert torch.allclose(lesson03.attention_map(torch.zeros(2, 3, 2, 2)), losses.attention_map(torch.zeros(2, 3, 2, 2)))
    regressor = torch.nn.Conv2d(4, 6, 1)
    teacher = torch.randn(3, 6, 5, 5, generator=g)
    assert torch.allclose(lesson03.hint_loss(features, teacher, regressor), losses.hint_loss(features, teacher, regressor))


@pytest.mark.parametrize("candidates", [[-1.0, 0.0, 1.0, 2.0], [0.0, 0.0, 5.0], [3.0], [2.0, 1.0, 0.0]])
def test_class_bias_searches_agree_ties_included(candidates):
    logits = torch.tensor([[1.0, 0.0], [0.0, 0.5], [2.0, 1.9], [0.3, 0.3]])  # a tie inside a row too
    labels = torch.tensor([0, 1, 1, 0])
    assert lesson02.choose_class_bias(logits, labels, 1, candidates) == distill.choose_class_bias(logits, labels, 1,
                                                                                                  candidates)


@pytest.mark.parametrize("a,b", [
    (np.array([[0.5, 0.5], [0.2, 0.8]]), np.array([[0.5, 0.5], [0.9, 0.1]])),  # a tie: both take the first class
    (np.eye(3), np.eye(3)[::-1]),
    (np.array([[0.1, 0.9]]), np.array([[0.3, 0.7]])),
])
def test_agreements_agree(a, b):
    assert lesson05.agreement(a, b) == evaluate.agreement(a, b)


@pytest.mark.parametrize("n_bins", [1, 7, 10, 15])
def test_eces_agree_with_confidences_at_one_and_at_edges(n_bins):
    conf = np.concatenate([np.arange(n_bins + 1) / n_bins, [0.999999, 0.5000001]])
    conf = np.maximum(conf, 0.5)
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = np.arange(len(conf)) % 2
    assert lesson05.expected_calibration_error(probs, labels, n_bins) == pytest.approx(
        evaluate.expected_calibration_error(probs, labels, n_bins), abs=1e-12)


def test_cascade_answer_and_library_agree_and_differ_only_in_how_they_say_unreachable():
    gen = np.random.default_rng(0)
    student = gen.dirichlet(np.ones(3), 50)
    teacher = np.eye(3)[gen.integers(0, 3, 50)] * 0.7 + 0.1
    labels = teacher.argmax(1)
    labels[::7] = (labels[::7] + 1) % 3
    split = {"student_probs": student, "teacher_probs": teacher, "labels": labels}
    for target in (0.5, 0.8):
        threshold, accuracy, share = lesson05.cascade_on_test(split, split, target)
        assert threshold == evaluate.choose_threshold(student, teacher, labels, target)
        row = evaluate.cascade_curve(student, teacher, labels, [threshold])[0]
        assert (accuracy, share) == pytest.approx((row["accuracy"], row["share_to_teacher"]))
    assert evaluate.choose_threshold(student, teacher, labels, 0.999) is None  # the library: nothing reaches it
    assert lesson05.cascade_on_test(split, split, 0.999)[0] == 1.01  # the exercise: all to the teacher


def test_timing_answers_and_the_librarys_timer_agree_on_a_fake_clock():
    durations = [9.0, 7.0, 1.0, 4.0, 2.0, 3.0]  # seconds; the first two are the warm-up
    clock = FakeClock()
    model = FakeModel(clock, lambda batch: durations[batch])
    with fake_time(timing.time_calls, clock):
        library = timing.time_calls(model, list(range(6)), warmup=2).median
    with fake_time(lesson06.median_latency_ms, clock):
        assert lesson06.median_latency_ms(model, list(range(6)), warmup=2) == pytest.approx(library * 1e3)


def test_soft_label_loss_answer_agrees_with_the_library():
    from course_lib import router

    for student, teacher, temperature in KD_CASES:
        targets = router.soft_targets(teacher, temperature)
        targets = torch.as_tensor(targets, dtype=student.dtype)
        assert torch.allclose(lesson04.soft_label_loss(student, targets), losses.soft_label_loss(student, targets),
                              **close32(kd_magnitude(student)))


def test_sequence_answers_agree_with_the_library():
    chains = sequence.make_chains(4, [1, 2], seed=0, num_symbols=6)
    config = dict(vocab=sequence.vocab_size(6), max_len=24, d_model=16, num_layers=1, num_heads=2)
    student, teacher = sequence.build_model(config, 0).eval(), sequence.build_model(config, 1).eval()
    for temperature in (1.0, 3.0):
        assert torch.allclose(lesson07.token_kd_loss(student, teacher, chains.tokens, chains.target_mask, temperature),
                              sequence.token_kd_loss(student, teacher, chains.tokens, chains.target_mask, temperature),
                              **close32())
    assert torch.equal(lesson07.greedy_decode(teacher, chains.prompts, 5), sequence.greedy_decode(teacher, chains.prompts, 5))
    rows = sequence.sample_rollouts(student, chains.prompts, 2, generator=0)
    mask = chains.target_mask[:, :rows.shape[1]]
    for beta in (0.0, 0.3, 1.0):
        assert torch.allclose(lesson07.on_policy_loss(student, teacher, rows, mask, beta),
                              sequence.on_policy_loss(student, teacher, rows, mask, beta), **close32())


def test_ranking_answer_agrees_with_the_library():
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(5, 7, generator=generator), 4 * torch.randn(5, 7, generator=generator)
    mask = torch.rand(5, 7, generator=generator) > 0.3
    mask[:, 0] = True  # every query keeps at least one candidate
    for temperature in (0.5, 3.0):
        assert torch.allclose(lesson08.listwise_kd_loss(student, teacher, mask, temperature),
                              losses.listwise_kd_loss(student, teacher, mask, temperature), **close32())


def test_size_answer_and_library_agree():
    model = torch.nn.Linear(8, 3)
    size, zipped = lesson06.size_on_disk(model)
    from course_lib import compress
    assert abs(size - compress.model_size_bytes(model)) < 200  # only the file's name differs inside the archive
    assert abs(zipped - compress.model_size_bytes(model, compressed=True)) < 200
