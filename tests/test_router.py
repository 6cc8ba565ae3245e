"""The router's teacher and student: offline loading, checksum, featurisation, training on hard and soft targets."""
import os
import shutil
import hashlib
import json
import socket

import numpy as np
import pytest
import torch

from course_lib import hashing, router, timing
from course_lib.router import MINILM_SHA256, NgramStudent, TextTeacher
from course_lib.router._inputs import as_texts
from tolerance import FORWARD_PASS, close32


# ---- reference functions ------------------------------------------------------
def test_soft_targets_numpy_and_torch():
    logits = np.array([[2.0, 1.0, 0.0], [1000.0, 0.0, -1000.0]])
    for temperature in (0.5, 1.0, 3.0):
        z = logits / temperature
        expected = np.exp(z - z.max(1, keepdims=True))
        expected /= expected.sum(1, keepdims=True)
        np.testing.assert_allclose(router.soft_targets(logits, temperature), expected, atol=1e-6)
        torch.testing.assert_close(router.soft_targets(torch.tensor(logits), temperature),
                                   torch.tensor(expected), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="temperature"):
        router.soft_targets(logits, 0.0)


def test_soft_targets_refuse_nan_and_inf():
    for bad in (np.array([[1.0, np.nan, 0.0]]), np.array([[0.0, 0.0], [np.inf, 1.0]]),
                torch.tensor([[0.0, -float("inf")]])):
        with pytest.raises(ValueError, match="NaN or inf"):
            router.soft_targets(bad, 1.0)
    for temperature in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="temperature"):
            router.soft_targets(np.zeros((1, 3)), temperature)


# ---- the student ----------------------------------------------------------------
M64 = 2 ** 64


def splitmix64(x):
    """The splitmix64 finaliser in plain Python ints (the reference for the student's mix)."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 % M64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB % M64
    return x ^ (x >> 31)


def reference_ids(student, text):
    """An independent, slow version of the featuriser: unigram then bigram buckets."""
    words = [w.encode() for w in "".join(c if (c.isascii() and c.isalnum()) or not c.isascii() else " "
                                            for c in text.lower()).split()]
    hashes = [int.from_bytes(hashlib.blake2b(w, digest_size=8).digest(), "little") for w in words]
    uni = [h % student.num_buckets for h in hashes]
    bi = [splitmix64((a * 0x9E3779B97F4A7C15 + b) % M64) % student.num_buckets for a, b in zip(hashes, hashes[1:])]
    return uni + bi


def test_featurize_matches_reference():
    student = NgramStudent(3, num_buckets=1000)
    texts = ["Refund??", "", "My parcel (order #123) never ARRIVED!", "one", "Ça n'arrive pas 📦"]
    ids, offsets = student.featurize(texts)
    expected = [reference_ids(student, t) for t in texts]
    assert ids.tolist() == sum(expected, [])
    assert offsets.tolist() == list(np.cumsum([0] + [len(e) for e in expected])[:-1])
    assert int(ids.max()) < 1000


def test_unigram_collisions_do_not_force_bigram_collisions():
    """Two words in the same unigram bucket must not share every bigram bucket.

    Reducing ``h1 * M + h2`` mod a power of two keeps only the low bits, so each bigram's bucket
    would be a function of its two unigram buckets and every unigram collision would carry over.
    """
    student = NgramStudent(3, num_buckets=256)
    words = [f"w{i}" for i in range(600)]
    unigram = student.featurize(words)[0].tolist()  # a one-word text holds only its unigram
    by_bucket = {}
    for word, bucket in zip(words, unigram):
        by_bucket.setdefault(bucket, []).append(word)
    pairs = [(a, b) for group in by_bucket.values() for a, b in zip(group, group[1:])][:50]
    assert len(pairs) >= 30  # 600 words in 256 buckets collide a lot
    same = 0
    for a, b in pairs:
        for left in ("refund", "parcel", "charged"):
            bucket_a = student.featurize([f"{left} {a}"])[0][-1]
            bucket_b = student.featurize([f"{left} {b}"])[0][-1]
            same += int(bucket_a == bucket_b)
    assert same / (3 * len(pairs)) < 0.05  # about 1/256 by chance; 100% with the low-bits hash


TOY = [("the invoice charge is wrong", 0), ("charged twice on my invoice", 0), ("invoice total wrong", 0),
       ("parcel never arrived", 1), ("where is my parcel", 1), ("parcel lost by courier", 1),
       ("password reset fails", 2), ("cannot reset my password", 2), ("password locked out", 2)]


def test_student_fits_hard_labels():
    texts, labels = zip(*TOY)
    student = NgramStudent(3, num_buckets=512, embedding_dim=8, epochs=60, batch_size=4, lr=0.05)
    student.fit(list(texts), np.array(labels), progress=False)
    assert (student.predict(["my invoice is wrong", "the parcel please", "password please"]) == [0, 1, 2]).all()
    probs = student.predict_proba(list(texts))
    assert probs.shape == (9, 3)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_student_fits_soft_targets():
    texts = ["red red", "blue blue", "green green"]
    targets = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.34, 0.33, 0.33]], dtype=np.float32)
    student = NgramStudent(3, num_buckets=256, embedding_dim=8, epochs=300, batch_size=3, lr=0.05)
    student.fit(texts, targets, progress=False)
    # cross-entropy against soft targets is minimised by matching them
    np.testing.assert_allclose(student.predict_proba(texts), targets, atol=0.03)


def test_student_is_deterministic_and_saves(tmp_path):
    texts, labels = zip(*TOY)
    a = NgramStudent(3, num_buckets=512, epochs=5, seed=3).fit(list(texts), np.array(labels), progress=False)
    b = NgramStudent(3, num_buckets=512, epochs=5, seed=3).fit(list(texts), np.array(labels), progress=False)
    np.testing.assert_array_equal(a.predict_logits(list(texts)), b.predict_logits(list(texts)))
    a.save(tmp_path / "student")
    c = NgramStudent.load(tmp_path / "student")
    np.testing.assert_array_equal(a.predict_logits(list(texts)), c.predict_logits(list(texts)))
    assert a.num_parameters() == 512 * a.embedding_dim + a.embedding_dim * 3 + 3
    assert 4 * a.num_parameters() < a.disk_bytes() < 4 * a.num_parameters() + 4096


def test_student_bad_inputs():
    student = NgramStudent(3, num_buckets=64)
    with pytest.raises(ValueError, match="single string"):
        student.fit("just one text", np.array([0]))
    with pytest.raises(ValueError, match="outside"):
        student.fit(["a", "b"], np.array([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        student.fit(["a", "b"], np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="row 1 sums to"):
        student.fit(["a", "b"], np.array([[0.5, 0.5, 0.0], [0.5, 0.6, 0.2]]))
    with pytest.raises(ValueError, match="non-negative"):
        student.fit(["a", "b"], np.array([[2.0, -1.0, 0.0], [0.5, 0.5, 0.0]]))
    with pytest.raises(ValueError, match="not a str"):
        student.predict(["ok", None])



@pytest.mark.parametrize("bigrams", [True, False])
def test_student_predicts_nothing_for_no_texts(bigrams):
    """No texts in, no rows out (it used to return one row for an empty list)."""
    student = NgramStudent(3, num_buckets=64, bigrams=bigrams)
    ids, offsets = student.featurize([])
    assert ids.shape == (0,) and offsets.shape == (0,)
    assert student.predict([]).shape == (0,)
    assert student.predict_proba([]).shape == (0, 3)
    assert student.predict_logits([]).shape == (0, 3)
    # and a batch still gives one row per text, the empty text included
    assert student.predict_logits(["a b", "", "c"]).shape == (3, 3)


def test_student_refuses_to_fit_on_nothing():
    student = NgramStudent(3, num_buckets=64)
    before = student.linear.weight.detach().clone()
    with pytest.raises(ValueError, match="no texts to train on"):
        student.fit([], [], progress=False)
    with pytest.raises(ValueError, match="no texts to train on"):
        student.fit([], np.zeros((0, 3)), progress=False)
    assert torch.equal(student.linear.weight, before)


# --- the student's own surgery for lesson 06: prune_dims and as_flat_module ---------------------------
SURGERY_TEXTS = ["my refund has not arrived", "", "parcel lost in delivery, where is it", "card charged twice",
                 "x", "please close my account now"] * 3 + [""]


@pytest.fixture
def trained_student():
    texts, labels = SURGERY_TEXTS[:6], np.array([0, 1, 2, 2, 1, 0])
    return NgramStudent(3, num_buckets=512, embedding_dim=8, epochs=3, seed=3).fit(texts, labels, progress=False)


@pytest.mark.parametrize("amount, kept", [(0.5, 4), (0.0, 8), (0.8, 2), (0.99, 1)])
def test_prune_dims_keeps_the_highest_scoring_dimensions_and_their_exact_contribution(trained_student, amount, kept):
    student = trained_student
    table, weight = student.embedding.weight.detach().double().numpy(), student.linear.weight.detach().double().numpy()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    small = student.prune_dims(amount)
    # the ranking written out: |table column d| * |linear column d|, the top `kept`, in index order
    scores = np.linalg.norm(table, axis=0) * np.linalg.norm(weight, axis=0)
    dims = sorted(np.argsort(-scores)[:kept].tolist())
    assert small.embedding_dim == kept and small.embedding.weight.shape == (512, kept)
    assert torch.equal(small.embedding.weight, student.embedding.weight[:, dims])
    assert torch.equal(small.linear.weight, student.linear.weight[:, dims])
    assert torch.equal(small.linear.bias, student.linear.bias)
    # the logits: the mean of each email's rows over the kept columns, through the kept weights
    ids, offsets = student.featurize(SURGERY_TEXTS)
    expected = student.embedding(ids, offsets)[:, dims] @ student.linear.weight[:, dims].T + student.linear.bias
    assert torch.allclose(small(ids, offsets), expected, **close32(FORWARD_PASS))
    # the original is untouched, and the copy still predicts and saves as a student
    assert all(torch.equal(v, before[k]) for k, v in student.state_dict().items()) and student.embedding_dim == 8
    assert small.predict_logits(SURGERY_TEXTS).shape == (len(SURGERY_TEXTS), 3)
    assert small._config()["embedding_dim"] == kept


@pytest.mark.parametrize("amount", [-0.1, 1.0, 2])
def test_prune_dims_refuses_an_amount_outside_0_1(amount):
    with pytest.raises(ValueError, match="lie in \\[0, 1\\)"):
        NgramStudent(3, num_buckets=64).prune_dims(amount)


def test_as_flat_module_equals_embedding_bag_and_shares_the_weights(trained_student):
    student = trained_student
    ids, offsets = student.featurize(SURGERY_TEXTS)
    flat = student.as_flat_module()
    assert torch.allclose(flat(ids, offsets), student(ids, offsets), **close32(FORWARD_PASS))
    # an empty email: zeros through the linear layer, as nn.EmbeddingBag gives
    empty = SURGERY_TEXTS.index("")
    assert torch.allclose(flat(ids, offsets)[empty], student.linear.bias, **close32(FORWARD_PASS))
    # shared, not copied: a change to the student's table shows in the flat module
    with torch.no_grad():
        student.embedding.weight.mul_(2.0)
    assert torch.allclose(flat(ids, offsets), student(ids, offsets), **close32(FORWARD_PASS))
    assert sum(p.numel() for p in flat.parameters()) == student.num_parameters()


@pytest.mark.parametrize("field, value, words", [
    ("num_buckets", 2 ** 30, "num_buckets must be an int in \\[1, 16777216\\], got 1073741824"),
    ("embedding_dim", 0, "embedding_dim must be an int"),
    ("num_classes", "3", "num_classes must be an int .* got '3'"),
    ("bigrams", "yes", "bigrams must be true or false"),
    ("lr", -0.1, "lr must be a number in"),
    ("weight_decay", float("nan"), "weight_decay must be a number in"),
    ("epochs", 2.5, "epochs must be an int"),
    ("batch_size", True, "batch_size must be an int"),
    ("seed", -1, "seed must be an int"),
    ("hidden_layers", 3, "unknown field.*hidden_layers"),
])
def test_student_load_validates_config(tmp_path, field, value, words):
    """A saved student's config is checked, field by field, before anything is allocated."""
    folder = NgramStudent(3, num_buckets=512, embedding_dim=4).save(tmp_path / "student")
    config = json.loads((folder / "config.json").read_text())
    config[field] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=words) as info:
        NgramStudent.load(folder)
    assert "config.json" in str(info.value)


def test_student_load_checks_config_against_weights(tmp_path):
    folder = NgramStudent(3, num_buckets=512, embedding_dim=4).save(tmp_path / "student")
    config = json.loads((folder / "config.json").read_text())
    for bad in ({**config, "num_buckets": 256}, {k: v for k, v in config.items() if k != "seed"},
                {**config, "num_buckets": 2 ** 20, "embedding_dim": 1024}):
        (folder / "config.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="num_buckets|missing field.*seed|embedding table"):
            NgramStudent.load(folder)
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        NgramStudent.load(folder)
    (folder / "config.json").write_text('{"num_classes": 3,')
    with pytest.raises(ValueError, match="config.json: not a valid JSON file"):
        NgramStudent.load(folder)


def _saved_student(tmp_path):
    texts, labels = zip(*TOY)
    student = NgramStudent(3, num_buckets=512, embedding_dim=4, epochs=3).fit(list(texts), np.array(labels),
                                                                              progress=False)
    return student, student.save(tmp_path / "student"), list(texts)


def test_student_load_refuses_a_flipped_weight_byte(tmp_path):
    """Before issue 23 a flipped byte loaded silently with other outputs; now the checksum refuses it."""
    student, folder, texts = _saved_student(tmp_path)
    weights = folder / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    start = 8 + int.from_bytes(blob[:8], "little")
    for at in (start, start + 1234, len(blob) - 1):  # first, middle and last weight bytes
        spoiled = bytearray(blob)
        spoiled[at] ^= 0x01
        weights.write_bytes(bytes(spoiled))
        with pytest.raises(ValueError, match=r"model\.safetensors: its checksum does not match.*byte of the weights "
                                             r"changed.*re-save") as err:
            NgramStudent.load(folder)
        assert str(weights) in str(err.value)
    weights.write_bytes(bytes(blob))
    np.testing.assert_array_equal(NgramStudent.load(folder).predict_logits(texts), student.predict_logits(texts))


@pytest.mark.parametrize("cut", [1, 100, 2000])
def test_student_load_refuses_a_truncated_file_with_a_clear_error(tmp_path, cut):
    _, folder, _ = _saved_student(tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-cut])
    with pytest.raises(ValueError, match=r"model\.safetensors: it cannot be read \(truncated or corrupted.*re-save"):
        NgramStudent.load(folder)


def test_student_load_refuses_weights_saved_with_another_config(tmp_path):
    """Same shapes, other settings (bigrams off): the outputs would differ, so the pair is refused."""
    _, folder, _ = _saved_student(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "bigrams": False, "lr": 0.5}))
    with pytest.raises(ValueError, match=r"config\.json does not belong with .*model\.safetensors.*bigrams, lr"):
        NgramStudent.load(folder)


def test_student_load_refuses_an_unverified_weights_file(tmp_path):
    """A plain safetensors file (an earlier save, another program) has no record to check: refused by name."""
    from safetensors.torch import save_file

    student, folder, _ = _saved_student(tmp_path)
    save_file({k: v.contiguous() for k, v in student.state_dict().items()}, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=r"model\.safetensors: it is not a verified course file.*re-save"):
        NgramStudent.load(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"no file at .*model\.safetensors.*no weights were saved"):
        NgramStudent.load(folder)


def test_student_save_leaves_only_its_two_files(tmp_path):
    _, folder, _ = _saved_student(tmp_path)
    NgramStudent(3, num_buckets=512, embedding_dim=4).save(folder)  # saved again over the first
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_as_texts_replaces_lone_surrogates_once():
    """A lone surrogate becomes U+FFFD with one warning; a split pair is joined; the caller's list is kept."""
    texts = ["ok", "refund \ud800 please", "fine \udc00 and \ud801", "pair \ud83d\ude00"]
    original = list(texts)
    with pytest.warns(UnicodeWarning, match="2 texts .*first: row 1") as record:
        out = as_texts(texts)
    assert len(record) == 1
    assert out == ["ok", "refund \ufffd please", "fine \ufffd and \ufffd", "pair \U0001F600"]
    assert texts == original


def test_lone_surrogate_reaches_no_tokenizer():
    """The teacher's tokenizer raises a bare TypeError on a lone surrogate; as_texts cleans it first."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(router.packaged_encoder_path(), local_files_only=True)
    with pytest.warns(UnicodeWarning):
        texts = as_texts(["hello", "refund \ud800 please"])
    assert len(tokenizer(texts)["input_ids"]) == 2
    student = NgramStudent(3, num_buckets=64)
    with pytest.warns(UnicodeWarning):
        logits = student.predict_logits(["hello", "refund \ud800 please"])
    np.testing.assert_array_equal(logits, student.predict_logits(["hello", "refund \ufffd please"]))

def test_student_is_small_and_fast():
    student = NgramStudent(6)
    assert student.num_parameters() < 22_700_000 / 100
    texts = ["Hello, I was charged twice for order #1234567 on 3 March, please fix it. Thanks, Anna"] * 256
    stats = timing.benchmark_predict(student.predict_proba, texts, batch_size=256, warmup=2, repeats=10)
    assert stats["emails_per_s"] > 5_000  # loose: the benchmark, not this test, measures speed


# ---- the teacher ----------------------------------------------------------------
@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("a test tried to reach the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def teacher_model():
    return router.packaged_encoder_path()


def test_packaged_weights_checksum(teacher_model):
    hashing.verify_sha256(teacher_model / "model.safetensors", MINILM_SHA256)


def test_teacher_loads_offline_and_embeds(no_network, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    router._ENCODERS.clear()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    teacher = TextTeacher(2, progress=False)
    # offline by local_files_only, sockets refused by the fixture, and no process-wide switch left behind
    assert "HF_HUB_OFFLINE" not in os.environ and "TRANSFORMERS_OFFLINE" not in os.environ
    texts = ["I was charged twice", "Where is my parcel? It was due on Monday and has not come."]
    emb = teacher.embed(texts)
    assert emb.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    # independent: one text at a time, no padding, a plain mean over its tokens
    for text, row in zip(texts, emb):
        enc = teacher.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            hidden = teacher.encoder(**enc).last_hidden_state[0]
        mean = hidden.mean(0).numpy()
        np.testing.assert_allclose(row, mean / np.linalg.norm(mean), **close32(FORWARD_PASS))
    assert len(list(tmp_path.glob("embeddings-*.safetensors"))) == 1  # cached on disk, verified by course_lib.cache
    np.testing.assert_array_equal(teacher.embed(texts), emb)
    sim = teacher.embed(["I was billed two times", "My package is late"]) @ emb.T
    assert sim[0, 0] > sim[0, 1] and sim[1, 1] > sim[1, 0]  # a pretrained encoder knows paraphrases

    teacher.fit(texts + ["double charge on card", "parcel not delivered"], np.array([0, 1, 0, 1]))
    probs = teacher.predict_proba(["charged two times", "the parcel has not arrived"])
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
    assert probs.argmax(1).tolist() == [0, 1]
    logits = teacher.predict_logits(["charged two times"])
    np.testing.assert_allclose(teacher.predict_proba(["charged two times"], temperature=2.0),
                               router.soft_targets(logits / 2.0), atol=1e-6)
    assert teacher.num_parameters() > 22_000_000


@pytest.fixture
def tampered_model(teacher_model, tmp_path):
    folder = tmp_path / "tampered"
    shutil.copytree(teacher_model, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    data = bytearray((teacher_model / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    return folder


def test_tampered_weights_are_refused(tampered_model, monkeypatch, no_network):
    with pytest.raises(ValueError, match="checksum mismatch"):
        TextTeacher(6, encoder=tampered_model, sha256=MINILM_SHA256)
    monkeypatch.setattr(router.teacher, "packaged_encoder_path", lambda: tampered_model)
    with pytest.raises(ValueError, match="checksum mismatch"):
        TextTeacher(6)


def test_teacher_rejects_bad_labels(no_network):
    teacher = TextTeacher(3, progress=False, use_cache=False)
    with pytest.raises(ValueError, match="outside"):
        teacher.fit(["a", "b"], np.array([0, 5]))
    with pytest.raises(RuntimeError, match="fit"):
        teacher.predict(["a"])


TINY = (["I was charged twice for my order", "my card was billed two times",
         "the parcel never arrived", "where is my package, it is late"], np.array([0, 0, 1, 1]))


def test_fine_tuned_teacher_is_cached_and_verified(no_network, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    texts, labels = TINY
    first = TextTeacher(2, fine_tune_epochs=1, progress=False).fit(texts, labels)
    assert not first.from_cache
    folders = list((tmp_path / "teachers").iterdir())
    assert len(folders) == 1 and (folders[0] / "teacher.safetensors").is_file()
    pretrained = TextTeacher(2, progress=False)
    assert not torch.equal(next(first.encoder.parameters()), next(pretrained.encoder.parameters())), \
        "fine-tuning must change a copy of the encoder, never the shared pretrained one"
    probe = ["charged two times", "the parcel has not arrived"]

    second = TextTeacher(2, fine_tune_epochs=1, progress=False).fit(texts, labels)
    assert second.from_cache
    np.testing.assert_allclose(second.predict_logits(probe), first.predict_logits(probe), atol=1e-5)

    other_data = TextTeacher(2, fine_tune_epochs=1, progress=False).fit(texts[::-1], labels[::-1])
    assert not other_data.from_cache  # the data fingerprint is part of the key
    other_recipe = TextTeacher(2, fine_tune_epochs=1, lr=1e-5, progress=False).fit(texts, labels)
    assert not other_recipe.from_cache  # and so is the recipe

    weights = folders[0] / "teacher.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-100] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="checksum does not match its contents.*moved it to .*teacher.safetensors.corrupt"):
        third = TextTeacher(2, fine_tune_epochs=1, progress=False).fit(texts, labels)
    assert not third.from_cache  # a corrupt cache is never trusted: it is fine-tuned again
    np.testing.assert_allclose(third.predict_logits(probe), first.predict_logits(probe), atol=1e-4)


# ---- distillation does something ----------------------------------------------------
@pytest.fixture(scope="module")
def distillation_setup(tmp_path_factory):
    """A small lesson-04 setup, with the teacher's logits computed once for the module.

    The fast teacher recipe (frozen encoder + logistic-regression head) is enough here: the
    test is about what the *student* learns from it, not about the teacher's own accuracy.
    """
    from course_lib import emails

    archive_texts, archive_labels = emails.texts_and_labels(emails.generate_emails(300, seed=0, style="archive"))
    traffic_texts, _ = emails.texts_and_labels(emails.generate_emails(600, seed=5, style="traffic"))
    test_texts, test_labels = emails.texts_and_labels(emails.generate_emails(300, seed=105, style="traffic"))
    teacher = TextTeacher(len(emails.QUEUES), progress=False, use_cache=False).fit(archive_texts, archive_labels)
    return {"archive": (archive_texts, archive_labels), "traffic": traffic_texts,
            "teacher_logits": teacher.predict_logits(traffic_texts), "test": (test_texts, test_labels)}


def test_soft_label_student_beats_archive_only_student(distillation_setup):
    """Student C (the teacher's soft labels on unlabelled traffic) beats student A (archive labels only).

    Measured before choosing the margin (this frozen teacher, 75-81% on the test draws; 800
    traffic emails; three traffic draws x three student seeds): C - A was 11 to 24 points, so we
    ask for 8 on one fixed seed.
    """
    archive_texts, archive_labels = distillation_setup["archive"]
    test_texts, test_labels = distillation_setup["test"]
    targets = router.soft_targets(distillation_setup["teacher_logits"], 1.0)
    student_a = NgramStudent(6, seed=0).fit(archive_texts, archive_labels, progress=False)
    student_c = NgramStudent(6, seed=0).fit(distillation_setup["traffic"], targets, progress=False)
    accuracy_a = np.mean(student_a.predict(test_texts) == test_labels)
    accuracy_c = np.mean(student_c.predict(test_texts) == test_labels)
    assert accuracy_c - accuracy_a >= 0.08, (accuracy_a, accuracy_c)
