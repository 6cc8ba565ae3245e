"""Tests for course_lib.sequence (lesson 07): the task, the transformer's causal mask, masked token KD,
greedy decoding, the chain metrics, and a small learning test. Expected values come from independent
computations (a Python loop over the table, the KL written out in float64, argmax step by step)."""
from __future__ import annotations

import math

import pytest
import torch

from course_lib import losses
from course_lib import sequence as sq
from tolerance import approx32, close32, kd_magnitude

NUM_SYMBOLS = 6


def tiny_model(seed=0, d_model=16, num_layers=1, num_heads=2, max_len=20, vocab=NUM_SYMBOLS + 2):
    return sq.build_model(dict(vocab=vocab, max_len=max_len, d_model=d_model, num_layers=num_layers,
                               num_heads=num_heads), seed)


# ----------------------------------------------------------------------------- the task
def test_make_chains_is_deterministic_and_seeded():
    a = sq.make_chains(50, range(1, 5), seed=3, num_symbols=NUM_SYMBOLS)
    b = sq.make_chains(50, range(1, 5), seed=3, num_symbols=NUM_SYMBOLS)
    c = sq.make_chains(50, range(1, 5), seed=4, num_symbols=NUM_SYMBOLS)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.lengths, b.lengths)
    assert not torch.equal(a.tokens, c.tokens)


def test_make_chains_follows_the_pointers():
    """Every answer is recomputed with a plain Python loop over the row's own table."""
    chains = sq.make_chains(200, range(1, 7), seed=0, num_symbols=NUM_SYMBOLS, max_length=8)
    pad, sep, p = sq.pad_token(NUM_SYMBOLS), sq.sep_token(NUM_SYMBOLS), sq.prompt_length(NUM_SYMBOLS)
    assert chains.tokens.shape == (200, p + 8)
    assert set(chains.lengths.tolist()) == set(range(1, 7))
    for row, k, mask in zip(chains.tokens.tolist(), chains.lengths.tolist(), chains.target_mask.tolist()):
        table, x = row[:NUM_SYMBOLS], row[NUM_SYMBOLS + 1]
        assert sorted(table) == list(range(NUM_SYMBOLS)) and row[NUM_SYMBOLS] == sep
        expected = []
        for _ in range(k):
            x = table[x]
            expected.append(x)
        assert row[p:p + k] == expected
        assert row[p + k:] == [pad] * (8 - k)
        assert mask == [p <= i < p + k for i in range(len(row))]


def test_make_chains_refuses_bad_lengths():
    with pytest.raises(ValueError):
        sq.make_chains(3, [0, 1], seed=0)
    with pytest.raises(ValueError):
        sq.make_chains(3, [5], seed=0, max_length=4)


# ----------------------------------------------------------------------------- the model
def test_causal_mask_later_tokens_never_change_earlier_logits():
    model = tiny_model(num_layers=2).eval()
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(NUM_SYMBOLS + 2, (4, 12), generator=g)
    with torch.no_grad():
        before = model(tokens)
        for t in range(12):
            changed = tokens.clone()
            changed[:, t:] = torch.randint(NUM_SYMBOLS + 2, changed[:, t:].shape, generator=g)
            after = model(changed)
            # equal up to float32 rounding (the rows differ later on); a leak from later tokens is far bigger
            assert torch.allclose(after[:, :t], before[:, :t], **close32())
        assert not torch.allclose(model(changed)[:, -1], before[:, -1])  # the last position does read its token


def test_model_refuses_rows_longer_than_max_len():
    with pytest.raises(ValueError, match="max_len"):
        tiny_model(max_len=5)(torch.zeros(1, 6, dtype=torch.long))


# ----------------------------------------------------------------------------- masked token KD
def _kd_by_hand(student, teacher, mask, temperature):
    """T^2 * mean over masked positions of sum_v p_v (log p_v - log q_v), in float64 with explicit loops."""
    terms = []
    for b in range(student.shape[0]):
        for t in range(student.shape[1]):
            if not mask[b, t]:
                continue
            zs = [float(v) / temperature for v in student[b, t]]
            zt = [float(v) / temperature for v in teacher[b, t]]
            ls = math.log(sum(math.exp(v) for v in zs))
            lt = math.log(sum(math.exp(v) for v in zt))
            terms.append(sum(math.exp(a - lt) * ((a - lt) - (c - ls)) for a, c in zip(zt, zs)))
    return temperature**2 * sum(terms) / len(terms)


def test_token_kd_loss_aligns_positions_and_keeps_the_teacher_out_of_autograd():
    chains = sq.make_chains(8, range(1, 5), seed=0, num_symbols=NUM_SYMBOLS)
    student, teacher = tiny_model(0), tiny_model(1, d_model=32)
    loss = sq.token_kd_loss(student, teacher, chains.tokens, chains.target_mask, temperature=2.0)
    x, mask = chains.tokens[:, :-1], chains.target_mask[:, 1:]
    with torch.no_grad():
        student_logits, teacher_logits = student(x), teacher(x)
    expected = _kd_by_hand(student_logits, teacher_logits, mask, 2.0)
    # float32 loss against a float64 reference: they agree to float32 rounding, not to 1e-5 (issue 19)
    assert loss.item() == approx32(expected, kd_magnitude(student_logits[mask], teacher_logits[mask], temperature=2.0))
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())


# ----------------------------------------------------------------------------- on-policy loss (GKD) on rollouts
def _kl_by_hand(p, q):
    """sum_v p_v (log p_v - log q_v) in float64, a p_v = 0 term counting 0."""
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(p, q) if a > 0)


def _gkd_by_hand(student, teacher, mask, beta, temperature):
    """GKD's divergence (TRL's conventions) averaged over masked positions, float64, one position at a time:
    beta = 0 KL(T || S), beta = 1 KL(S || T), else beta KL(T || M) + (1 - beta) KL(S || M), M = beta T + (1 - beta) S."""
    def probs(logits):
        z = [float(v) / temperature for v in logits]
        top = max(z)
        e = [math.exp(v - top) for v in z]
        return [v / sum(e) for v in e]

    terms = []
    for b, t in mask.nonzero().tolist():
        s_p, t_p = probs(student[b, t]), probs(teacher[b, t])
        if beta == 0:
            terms.append(_kl_by_hand(t_p, s_p))
        elif beta == 1:
            terms.append(_kl_by_hand(s_p, t_p))
        else:
            m = [beta * a + (1 - beta) * c for a, c in zip(t_p, s_p)]
            terms.append(beta * _kl_by_hand(t_p, m) + (1 - beta) * _kl_by_hand(s_p, m))
    return sum(terms) / len(terms)


def _rollout_case(num_rows=8, lengths=(1, 2, 4), seed=0):
    """A student of width 16, a teacher of width 32 (heads scaled: distinct, peaked distributions), the student's
    own samples after chain prompts of several lengths, and those chains' answer mask."""
    student, teacher = tiny_model(0), tiny_model(1, d_model=32)
    with torch.no_grad():
        student.head.weight.mul_(20.0)
        teacher.head.weight.mul_(40.0)
    chains = sq.make_chains(num_rows, list(lengths), seed=seed, num_symbols=NUM_SYMBOLS)
    rollouts = sq.sample_rollouts(student, chains.prompts, chains.answers.shape[1], generator=seed)
    assert len(chains.lengths.unique()) > 1  # rows of different lengths: the mask matters
    return student, teacher, chains, rollouts


@pytest.mark.parametrize("beta,temperature", [(0.0, 1.0), (0.2, 1.0), (0.5, 2.0), (1.0, 1.0)])
def test_on_policy_loss_is_gkd_on_the_answer_positions_of_the_rollouts(beta, temperature, models_never_move):
    student, teacher, chains, rollouts = _rollout_case()
    loss = sq.on_policy_loss(student, teacher, rollouts, chains.target_mask, beta=beta, temperature=temperature)
    x, mask = rollouts[:, :-1], chains.target_mask[:, 1:]
    with torch.no_grad():
        student_logits, teacher_logits = student(x), teacher(x)
    expected = _gkd_by_hand(student_logits, teacher_logits, mask, beta, temperature)
    assert expected > 0.01  # the two models disagree: a test that can fail
    assert loss.dim() == 0
    assert loss.item() == approx32(expected, kd_magnitude(student_logits[mask], teacher_logits[mask],
                                                          temperature=temperature))


def test_on_policy_loss_is_zero_when_student_and_teacher_agree():
    student, _, chains, rollouts = _rollout_case()
    for beta in (0.0, 0.5, 1.0):
        assert sq.on_policy_loss(student, student, rollouts, chains.target_mask, beta=beta).item() == \
            pytest.approx(0.0, abs=1e-6)


def test_on_policy_loss_ignores_every_position_outside_the_mask():
    """The last scored logit of a row of k answer steps sits at p + k - 2 (it predicts token p + k - 1): the tokens
    from p + k - 1 on (the k-th answer token itself, what the student wrote past k) never change the loss. A causal
    model reads all earlier tokens, so the token at p + k - 2 does."""
    student, teacher, chains, rollouts = _rollout_case()
    p, g = sq.prompt_length(NUM_SYMBOLS), torch.Generator().manual_seed(1)
    loss = sq.on_policy_loss(student, teacher, rollouts, chains.target_mask, beta=0.2).item()
    positions = torch.arange(rollouts.shape[1])
    free = positions >= (p + chains.lengths - 1)[:, None]
    noise = torch.randint(sq.vocab_size(NUM_SYMBOLS), rollouts.shape, generator=g)
    changed = torch.where(free, noise, rollouts)
    assert not torch.equal(changed, rollouts)
    magnitude = kd_magnitude(student(rollouts), teacher(rollouts))
    assert sq.on_policy_loss(student, teacher, changed, chains.target_mask, beta=0.2).item() == \
        approx32(loss, magnitude)
    scored = positions == (p + chains.lengths - 2)[:, None]  # the last scored input position: it counts
    shifted = torch.where(scored, (rollouts + 1) % NUM_SYMBOLS, rollouts)
    assert sq.on_policy_loss(student, teacher, shifted, chains.target_mask, beta=0.2).item() != \
        approx32(loss, magnitude)


def test_on_policy_loss_trains_the_student_only_and_leaves_its_inputs_alone():
    student, teacher, chains, rollouts = _rollout_case()
    calls = []
    teacher.register_forward_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    given, mask = rollouts.clone(), chains.target_mask.clone()
    loss = sq.on_policy_loss(student, teacher, given, mask, beta=0.2)
    loss.backward()
    assert calls == [False]  # the teacher ran once, under torch.no_grad()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    assert torch.equal(given, rollouts) and torch.equal(mask, chains.target_mask)


def test_on_policy_loss_refuses_bad_input():
    student, teacher, chains, rollouts = _rollout_case()
    mask = chains.target_mask
    with pytest.raises(ValueError, match="answer_mask"):
        sq.on_policy_loss(student, teacher, rollouts, mask[:, :-1])
    with pytest.raises(ValueError, match="answer_mask"):
        sq.on_policy_loss(student, teacher, rollouts, mask.long())
    with pytest.raises(ValueError, match="position 0"):
        sq.on_policy_loss(student, teacher, rollouts, mask | (torch.arange(mask.shape[1]) == 0))
    with pytest.raises(ValueError, match="rollouts"):
        sq.on_policy_loss(student, teacher, rollouts.float(), mask)
    with pytest.raises(ValueError, match="beta"):
        sq.on_policy_loss(student, teacher, rollouts, mask, beta=1.5)
    with pytest.raises(ValueError, match="no position"):
        sq.on_policy_loss(student, teacher, rollouts, torch.zeros_like(mask))


# ----------------------------------------------------------------------------- decoding
def test_greedy_decode_is_deterministic_and_argmax_step_by_step(models_never_move):
    model = tiny_model(0, num_layers=2)
    prompts = sq.make_chains(5, 3, seed=0, num_symbols=NUM_SYMBOLS).prompts
    out = sq.greedy_decode(model, prompts, 6)
    assert out.shape == (5, 6) and out.dtype == torch.long
    assert torch.equal(out, sq.greedy_decode(model, prompts, 6))
    tokens = prompts.clone()
    with torch.no_grad():
        for _ in range(6):
            logits = model(tokens)[:, -1]
            tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, tokens[:, prompts.shape[1]:])  # the same forward on the same rows: the same argmax
    assert model.training  # its mode is restored


def test_transfer_set_holds_the_teachers_answers_padded_after_k():
    teacher = tiny_model(0)
    fresh = sq.make_chains(20, range(1, 5), seed=5, num_symbols=NUM_SYMBOLS)
    chains = sq.transfer_set(teacher, fresh.prompts, fresh.lengths, num_symbols=NUM_SYMBOLS)
    greedy = sq.greedy_decode(teacher, fresh.prompts, 4)
    p = sq.prompt_length(NUM_SYMBOLS)
    assert torch.equal(chains.prompts, fresh.prompts)
    assert torch.equal(chains.target_mask, fresh.target_mask)
    for row, k in enumerate(fresh.lengths.tolist()):
        assert chains.tokens[row, p:p + k].tolist() == greedy[row, :k].tolist()
        assert (chains.tokens[row, p + k:] == sq.pad_token(NUM_SYMBOLS)).all()


# ----------------------------------------------------------------------------- metrics
def test_first_error_and_exact_match_on_hand_cases():
    answers = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [5, 5, 9, 9], [1, 2, 0, 0]])
    predicted = torch.tensor([[1, 2, 3, 4], [1, 9, 3, 4], [0, 0, 0, 0], [5, 5, 1, 1], [1, 2, 7, 7]])
    lengths = torch.tensor([4, 4, 3, 2, 2])
    assert sq.first_error(predicted, answers, lengths).tolist() == [0, 2, 1, 0, 0]
    assert sq.exact_match(predicted, answers, lengths).tolist() == [True, False, False, True, True]


def test_metrics_refuse_short_predictions():
    with pytest.raises(ValueError):
        sq.first_error(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long), torch.tensor([3]))


def test_accuracy_by_length_of_a_perfect_and_a_broken_model():
    chains = sq.make_chains(30, range(1, 4), seed=0, num_symbols=NUM_SYMBOLS)

    class Oracle(torch.nn.Module):
        """Reads the table and the last symbol and puts all its weight on the next hop."""

        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(()))

        def forward(self, tokens):
            nxt = tokens[:, :NUM_SYMBOLS].gather(1, tokens[:, -1:].clamp(max=NUM_SYMBOLS - 1))
            logits = torch.zeros(*tokens.shape, NUM_SYMBOLS + 2)
            logits[:, -1].scatter_(1, nxt, 10.0)
            return logits

    assert sq.accuracy_by_length(Oracle(), chains) == {1: 1.0, 2: 1.0, 3: 1.0}


def test_exact_match_by_length_from_predictions_matches_a_plain_loop_and_the_model_path():
    chains = sq.make_chains(60, range(1, 6), seed=4, num_symbols=NUM_SYMBOLS)
    # predictions with a known pattern of mistakes: row i is wrong at step (i % 7) + 1, if that step counts
    predicted = chains.answers.clone()
    for i in range(len(chains)):
        step = i % 7
        if step < predicted.shape[1]:
            predicted[i, step] = (predicted[i, step] + 1) % NUM_SYMBOLS
    by_loop = {}
    for k in sorted(set(chains.lengths.tolist())):
        rows = [i for i in range(len(chains)) if int(chains.lengths[i]) == k]
        right = [all(int(predicted[i, s]) == int(chains.answers[i, s]) for s in range(k)) for i in rows]
        by_loop[k] = sum(right) / len(rows)
    assert sq.exact_match_by_length(predicted, chains) == pytest.approx(by_loop, abs=1e-7)
    assert list(sq.exact_match_by_length(predicted, chains)) == sorted(by_loop)
    # a model: scoring its decoded answers is what accuracy_by_length does, number for number
    model = tiny_model(0)
    assert sq.accuracy_by_length(model, chains) == sq.exact_match_by_length(sq.decode_chains(model, chains), chains)
    with pytest.raises(ValueError, match="same number of rows"):
        sq.exact_match_by_length(predicted[:-1], chains)


# ----------------------------------------------------------------------------- learning
def test_token_kd_moves_a_tiny_student_towards_the_teacher(pinned_one_thread):
    chains = sq.make_chains(256, range(1, 5), seed=0, num_symbols=NUM_SYMBOLS)
    teacher = tiny_model(1, d_model=32)
    with torch.no_grad():  # a confident, non-trivial teacher
        teacher.head.weight.mul_(50.0)
    targets = sq.teacher_logits(teacher, chains)
    student = tiny_model(0)
    x, mask = chains.tokens[:, :-1], chains.target_mask[:, 1:]

    def distance():
        with torch.no_grad():
            return losses.masked_kd_loss(student(x), targets, mask).item()

    before = distance()
    sq.fit_chains(student, chains, teacher_logits=targets, epochs=5, batch_size=32, lr=1e-2, progress=False)
    assert distance() < 0.5 * before


def test_cached_teacher_trains_once_then_loads_the_same_weights(tmp_course_dirs, pinned_one_thread):
    chains = sq.make_chains(64, range(1, 3), seed=0, num_symbols=NUM_SYMBOLS)
    spec = dict(vocab=NUM_SYMBOLS + 2, max_len=chains.tokens.shape[1], d_model=16, num_layers=1, num_heads=2)
    recipe = {"model": spec, "epochs": 1, "batch_size": 32, "lr": 3e-3, "seed": 0}
    device = torch.device("cpu")
    first, cached = sq.cached_teacher(recipe, chains, device=device, progress=False)
    second, cached_again = sq.cached_teacher(recipe, chains, device=device, progress=False)
    assert (cached, cached_again) == (False, True)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    other = sq.make_chains(64, range(1, 3), seed=1, num_symbols=NUM_SYMBOLS)  # other rows: another key
    assert sq.cached_teacher(recipe, other, device=device, progress=False)[1] is False


# ----------------------------------------------------------------------------- on-policy rollouts and hazard rates
def test_sample_rollouts_keeps_the_prompt_is_seeded_and_leaves_mode_and_global_rng_alone(models_never_move):
    model = tiny_model(0)
    prompts = sq.make_chains(6, 3, seed=0, num_symbols=NUM_SYMBOLS).prompts
    rng_before = torch.get_rng_state()
    rows = sq.sample_rollouts(model, prompts, 5, temperature=1.0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG was neither used nor reseeded
    assert model.training
    assert rows.shape == (6, prompts.shape[1] + 5) and rows.dtype == torch.long and rows.device.type == "cpu"
    assert torch.equal(rows[:, :prompts.shape[1]], prompts)
    assert torch.equal(rows, sq.sample_rollouts(model, prompts, 5, generator=7))  # same seed, same rows
    generator = torch.Generator().manual_seed(7)
    first, second = (sq.sample_rollouts(model, prompts, 5, generator=generator) for _ in range(2))
    assert not torch.equal(first, second)  # a reused generator draws fresh rollouts
    # the rows are draws, not argmaxes: near-uniform logits give answers greedy decoding would not
    assert not torch.equal(rows[:, prompts.shape[1]:], sq.greedy_decode(model, prompts, 5))


def test_sample_rollouts_at_temperature_zero_is_greedy_decode():
    model = tiny_model(1, num_layers=2)
    prompts = sq.make_chains(5, 3, seed=1, num_symbols=NUM_SYMBOLS).prompts
    rows = sq.sample_rollouts(model, prompts, 6, temperature=0)
    assert torch.equal(rows, torch.cat([prompts, sq.greedy_decode(model, prompts, 6)], dim=1))


def test_sample_rollouts_draws_from_the_models_distribution():
    """A model whose next-token distribution is known (a fixed bias) gives token frequencies close to it."""
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.log(torch.tensor([0.7, 0.2, 0.1, 0.0])))

        def forward(self, tokens):
            return self.bias.expand(*tokens.shape, 4)

    rows = sq.sample_rollouts(Fixed(), torch.zeros(4000, 1, dtype=torch.long), 1, generator=0)
    counts = torch.bincount(rows[:, 1], minlength=4) / 4000
    assert counts[3] == 0 and torch.allclose(counts[:3], torch.tensor([0.7, 0.2, 0.1]), atol=0.03)
    sharp = sq.sample_rollouts(Fixed(), torch.zeros(4000, 1, dtype=torch.long), 1, temperature=0.1, generator=0)
    assert (sharp[:, 1] == 0).float().mean() > 0.99  # a low temperature sharpens towards the mode


def test_sample_rollouts_refuses_bad_input():
    model, prompts = tiny_model(0), torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="temperature"):
        sq.sample_rollouts(model, prompts, 2, temperature=-1.0)
    with pytest.raises(ValueError, match="num_steps"):
        sq.sample_rollouts(model, prompts, -1)
    with pytest.raises(ValueError, match="prompts"):
        sq.sample_rollouts(model, prompts.float(), 2)


def test_first_error_hazard_on_a_hand_computed_example():
    # steps 1..4; rows: never erred (0) x2, first error at 1, at 2 x2, at 4
    first_errors = torch.tensor([0, 2, 1, 0, 2, 4])
    hazard = sq.first_error_hazard(first_errors, 5)
    # step 1: 1 error / 6 reached; step 2: 2 / 5; step 3: 0 / 3 (two never erred, one errs at 4);
    # step 4: 1 / 3; step 5: 0 / 2 (only the never-erring rows reach it)
    assert hazard.dtype.kind == "f" and hazard.shape == (5,)
    assert hazard.tolist() == pytest.approx([1 / 6, 2 / 5, 0.0, 1 / 3, 0.0])
    # a step no row reaches: every row erred by step 2
    nan_hazard = sq.first_error_hazard([1, 2, 1], 3)
    assert nan_hazard[:2].tolist() == pytest.approx([2 / 3, 1.0]) and math.isnan(nan_hazard[2])
    # the raw counts fall geometrically under independent slips; the hazard stays flat at p
    p, n, k = 0.2, 200_000, 6
    g = torch.Generator().manual_seed(0)
    slips = torch.rand(n, k, generator=g) < p
    first = torch.where(slips.any(1), slips.float().argmax(1) + 1, 0)
    assert sq.first_error_hazard(first, k) == pytest.approx([p] * k, abs=0.01)
    with pytest.raises(ValueError, match="first_errors"):
        sq.first_error_hazard(torch.tensor([0.5, 1.0]), 3)
    with pytest.raises(ValueError, match="num_steps"):
        sq.first_error_hazard([0, 1], 0)


def test_on_policy_kd_on_the_students_own_samples_lowers_the_divergence(pinned_one_thread):
    """GKD in miniature: the student samples its answers, the teacher scores every answer position, the
    student is pulled towards it; the divergence measured on fresh samples of the student falls."""
    student, teacher = tiny_model(0), tiny_model(1, d_model=32, num_layers=2, num_heads=4)
    with torch.no_grad():
        teacher.head.weight.mul_(150.0)  # a confident teacher: peaked distributions, far from the student's
    teacher.eval()
    prompts = sq.make_chains(32, 3, seed=0, num_symbols=NUM_SYMBOLS).prompts
    p, steps = prompts.shape[1], 6
    mask = (torch.arange(p + steps - 1) >= p - 1).expand(len(prompts), -1)  # logits that predict answer tokens
    generator = torch.Generator().manual_seed(0)

    def divergence(rows, grad=False):
        with torch.no_grad():
            target = teacher(rows[:, :-1])
        with torch.set_grad_enabled(grad):
            return losses.on_policy_kd_loss(student(rows[:, :-1]), target, mask, beta=0.5)

    before = divergence(sq.sample_rollouts(student, prompts, steps, generator=generator)).item()
    optimiser = torch.optim.Adam(student.parameters(), lr=1e-2)
    for _ in range(40):
        rows = sq.sample_rollouts(student, prompts, steps, generator=generator)
        loss = divergence(rows, grad=True)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = divergence(sq.sample_rollouts(student, prompts, steps, generator=generator)).item()
    assert after < 0.7 * before, (before, after)


# ----------------------------------------------------------------------------- positions: all that evaluation reads are trained
def offset_model(seed=0, max_offset=4, max_k=8, d_model=16):
    p = sq.prompt_length(NUM_SYMBOLS)
    return sq.build_model(dict(vocab=NUM_SYMBOLS + 2, max_len=p + max_k, d_model=d_model, num_layers=1, num_heads=2,
                               answer_start=p, max_offset=max_offset), seed)


def test_position_offsets_shift_answer_positions_in_training_only():
    model = offset_model(0, max_offset=4)
    rows = sq.make_chains(16, range(1, 5), seed=0, num_symbols=NUM_SYMBOLS, max_length=8).tokens
    p = sq.prompt_length(NUM_SYMBOLS)
    assert model.position_embedding.num_embeddings == rows.shape[1] + 4
    model.eval()
    with torch.no_grad():
        plain = model(rows)
        # eval mode: exactly positions 0..L-1, the same as a model read with an explicit arange
        manual = model.head(model.norm(model.blocks(model.token_embedding(rows)
                                                    + model.position_embedding(torch.arange(rows.shape[1])))))
    assert torch.equal(plain, manual)
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        shifted = model(rows)
    # causal: the prompt's logits never see a shifted position, the answer's do (some rows get offset > 0)
    assert torch.allclose(shifted[:, :p], plain[:, :p], atol=1e-6)
    assert not torch.allclose(shifted[:, p:], plain[:, p:], atol=1e-4)
    torch.manual_seed(0)
    with torch.no_grad():
        assert torch.equal(model(rows), shifted)  # the offsets come from the (seeded) global RNG, like dropout
    with pytest.raises(ValueError, match="max_offset"):
        sq.TinyGPT(8, 16, max_offset=-1)


def test_no_position_the_evaluation_uses_is_left_untrained(pinned_one_thread):
    """Lesson 07's recipe: labelled chains of at most 4 steps, evaluation up to 8. Without offsets the position
    vectors of steps 5-8 never move (exactly their initial values); with offsets every one the evaluation reads moves."""
    p, max_k, trained_k = sq.prompt_length(NUM_SYMBOLS), 8, 4
    chains = sq.make_chains(64, range(1, trained_k + 1), seed=0, num_symbols=NUM_SYMBOLS, max_length=max_k)
    eval_positions = list(range(p - 1, p + max_k - 1))  # the logits that predict answer steps 1..max_k
    drifts = {}
    for offset in (0, max_k - trained_k):
        start, model = offset_model(0, offset, max_k), offset_model(0, offset, max_k)
        sq.fit_chains(model, chains, epochs=1, batch_size=16, lr=1e-3, progress=False)
        drifts[offset] = sq.position_drift(model, start)
    assert (drifts[max_k - trained_k][eval_positions] > 0).all()  # every position the evaluation uses was trained
    assert (drifts[0][eval_positions[:trained_k]] > 0).all()
    assert (drifts[0][eval_positions[trained_k:]] == 0).all()  # steps 5-8: never reached by a loss


def test_position_drift_is_the_row_norm_of_the_change():
    start, model = offset_model(0), offset_model(0)
    with torch.no_grad():
        model.position_embedding.weight[3] += torch.tensor([3.0, 4.0] + [0.0] * 14)
    drift = sq.position_drift(model, start)
    expected = torch.zeros(model.position_embedding.num_embeddings)
    expected[3] = 5.0
    assert torch.allclose(drift, expected)
    with pytest.raises(ValueError, match="shape"):
        sq.position_drift(model, offset_model(0, max_offset=2))


# ----------------------------------------------------------------------------- scores that do not saturate
def test_answer_nll_is_the_mean_cross_entropy_of_the_answer_tokens():
    model = tiny_model(3)
    with torch.no_grad():
        model.head.weight.mul_(20.0)
    chains = sq.make_chains(5, [1, 2, 4], seed=0, num_symbols=NUM_SYMBOLS)
    total, count = 0.0, 0
    with torch.no_grad():
        for row, k in zip(chains.tokens, chains.lengths.tolist()):  # row by row, a plain loop
            log_p = torch.log_softmax(model(row[None, :-1])[0].double(), dim=-1)
            p = sq.prompt_length(NUM_SYMBOLS)
            for t in range(p, p + k):
                total -= float(log_p[t - 1, row[t]])
                count += 1
    model.train()
    assert sq.answer_nll(model, chains, batch_size=2) == pytest.approx(total / count, rel=1e-6)
    assert model.training  # mode restored


def test_answer_entropy_on_hand_cases():
    mask = torch.tensor([[False, True, True], [True, False, False]])
    logits = torch.zeros(2, 3, 5)
    logits[0, 1] = torch.tensor([100.0, 0, 0, 0, 0])  # one-hot: entropy 0
    logits[0, 2] = torch.tensor([0.0, 0, 0, -1e9, -1e9])  # uniform over 3: log 3
    logits[1, 1] = torch.tensor([100.0, 0, 0, 0, 0])  # masked out: never counted
    # (1, 0): all zeros, uniform over 5: log 5
    assert sq.answer_entropy(logits, mask) == pytest.approx((0 + math.log(3) + math.log(5)) / 3, abs=1e-6)
    with pytest.raises(ValueError, match="mask"):
        sq.answer_entropy(logits, mask.int())


# ----------------------------------------------------------------------------- on-policy training
def test_fit_on_policy_pulls_the_student_to_the_teacher_on_its_own_answers(pinned_one_thread):
    chains = sq.make_chains(96, range(1, 4), seed=0, num_symbols=NUM_SYMBOLS)
    teacher = tiny_model(1, d_model=32, num_layers=2, num_heads=4)
    with torch.no_grad():
        teacher.head.weight.mul_(150.0)
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    p = sq.prompt_length(NUM_SYMBOLS)

    def divergence(student):
        rows = sq.sample_rollouts(student, chains.prompts, 3, generator=7)
        with torch.no_grad():
            return float(sq.on_policy_loss(student, teacher, rows, chains.target_mask[:, :p + 3], beta=0.5))

    students = [tiny_model(0), tiny_model(0)]
    before = divergence(students[0])
    rng = torch.get_rng_state()
    for student in students:
        sq.fit_on_policy(student, teacher, chains, epochs=12, batch_size=32, lr=1e-2, beta=0.5, seed=3, progress=False)
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is untouched
    assert all(torch.equal(a, b) for a, b in zip(students[0].parameters(), students[1].parameters()))  # repeatable
    assert divergence(students[0]) < 0.5 * before, (before, divergence(students[0]))
    assert all(torch.equal(v, teacher_state[k]) for k, v in teacher.state_dict().items())  # the teacher is only read
    assert not students[0].training and teacher.training  # modes: the student left in eval, the teacher restored
    with pytest.raises(ValueError, match="epochs"):
        sq.fit_on_policy(students[0], teacher, chains, epochs=0)
