"""The router teacher's files and caches: every file the teacher loads is pinned, every cache verified (issue 9)."""
import json
import shutil

import numpy as np
import pytest
import torch

from course_lib import cache
from course_lib.router import teacher as teacher_mod


@pytest.fixture
def model_copy(tmp_path, monkeypatch):
    """A copy of the packaged MiniLM folder (the weights linked, not copied) that the teacher will load."""
    original = teacher_mod.packaged_encoder_path()
    folder = tmp_path / "minilm"
    shutil.copytree(original, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(original / "model.safetensors")
    monkeypatch.setattr(teacher_mod, "packaged_encoder_path", lambda: folder)
    return folder


def test_the_genuine_packaged_folder_passes_its_manifest():
    teacher_mod.verify_manifest(teacher_mod.packaged_encoder_path())
    assert {"config.json", "tokenizer.json", "1_Pooling/config.json", "model.safetensors"} <= set(
        teacher_mod.MINILM_MANIFEST)


def _cut_layers(folder):
    cfg = json.loads((folder / "config.json").read_text())
    cfg["num_hidden_layers"] = 3
    (folder / "config.json").write_text(json.dumps(cfg))


def _swap_tokens(folder):
    tok = json.loads((folder / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab["money"], vocab["order"] = vocab["order"], vocab["money"]
    (folder / "tokenizer.json").write_text(json.dumps(tok))


def _mean_to_cls(folder):
    pooling = json.loads((folder / "1_Pooling/config.json").read_text())
    pooling["pooling_mode_mean_tokens"], pooling["pooling_mode_cls_token"] = False, True
    (folder / "1_Pooling/config.json").write_text(json.dumps(pooling))


@pytest.mark.parametrize("tamper, named", [
    (_cut_layers, "config.json"),
    (_swap_tokens, "tokenizer.json"),
    (_mean_to_cls, "1_Pooling/config.json"),
    (lambda f: (f / "vocab.txt").write_text("[PAD]\n"), "vocab.txt"),
    (lambda f: (f / "tokenizer_config.json").unlink(), "tokenizer_config.json"),
    (lambda f: (f / "added_tokens.json").write_text('{"refund": 5}'), "added_tokens.json"),
])
def test_a_changed_missing_or_extra_teacher_file_is_refused_by_name(model_copy, tamper, named):
    tamper(model_copy)
    with pytest.raises(ValueError) as info:
        teacher_mod.TextTeacher(num_classes=3)
    assert named in str(info.value)


def test_documentation_files_do_not_block_the_teacher(model_copy):
    (model_copy / "README.md").write_text("edited")
    teacher_mod.verify_manifest(model_copy)  # no error


def test_transformers_warnings_are_not_muted(model_copy, monkeypatch):
    """While the encoder loads, the transformers logger lets warnings through (a wrong model must be heard)."""
    import transformers
    from transformers.utils import logging as hf_logging

    seen = []
    real = transformers.AutoModel.from_pretrained
    monkeypatch.setattr(teacher_mod, "_ENCODERS", {})
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained",
                        lambda *a, **k: (seen.append(hf_logging.get_verbosity()), real(*a, **k))[1])
    teacher_mod.TextTeacher(num_classes=2, progress=False)
    assert seen and seen[0] <= hf_logging.WARNING


@pytest.fixture
def frozen_teacher(tmp_course_dirs):
    return teacher_mod.TextTeacher(num_classes=2, progress=False, max_length=32)


TEXTS = ["where is my parcel", "refund me please", "my password is not accepted"]


def test_a_wrong_embedding_cache_is_moved_aside_not_used(frozen_teacher):
    genuine = frozen_teacher.embed(TEXTS)
    path = cache.artefact_path("embeddings", frozen_teacher._cache_key(TEXTS))
    assert path.exists()
    # Five rows where three are expected (the failure the issue found): moved aside, recomputed.
    cache.save_verified(path, {"embeddings": torch.zeros(5, genuine.shape[1])}, key=frozen_teacher._cache_key(TEXTS))
    with pytest.warns(UserWarning, match="shape"):
        again = frozen_teacher.embed(TEXTS)
    assert again.shape == (3, genuine.shape[1]) and np.allclose(again, genuine, atol=1e-6)
    assert path.with_name(path.name + ".corrupt").exists()
    # A file made for other texts, copied over this one: refused by its key.
    other = ["a different email", "and another one"]
    frozen_teacher.embed(other)
    shutil.copy(cache.artefact_path("embeddings", frozen_teacher._cache_key(other)), path)
    with pytest.warns(UserWarning, match="another config"):
        assert np.allclose(frozen_teacher.embed(TEXTS), genuine, atol=1e-6)
    assert path.with_name(path.name + ".corrupt1").exists()  # the first .corrupt is kept


def test_a_tampered_fine_tuned_teacher_is_refused_and_retrained(tmp_course_dirs, monkeypatch):
    """The fine-tuned teacher's cache: a changed byte, another run's files, or a missing note are never used."""
    texts = ["where is my parcel", "refund me please", "parcel late again", "refund the charge"] * 2
    labels = [0, 1, 0, 1] * 2
    trained = []
    real_train = teacher_mod.TextTeacher._train
    monkeypatch.setattr(teacher_mod.TextTeacher, "_train",
                        lambda self, t, y: (trained.append(1), real_train(self, t, y))[1])
    make = lambda: teacher_mod.TextTeacher(num_classes=2, fine_tune_epochs=1, progress=False,  # noqa: E731
                                           max_length=16, batch_size=4)
    first = make().fit(texts, labels)
    assert len(trained) == 1 and not first.from_cache
    second = make().fit(texts, labels)
    assert len(trained) == 1 and second.from_cache
    folder = next((cache.config.cache_dir() / "teachers").iterdir())
    weights = folder / "teacher.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-8:-4] = b"\x00\x00\x80\x7f"  # 4 bytes of the last tensor
    weights.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="checksum does not match"):
        third = make().fit(texts, labels)
    assert len(trained) == 2 and not third.from_cache
    assert (folder / "teacher.safetensors.corrupt").exists()
    # Valid weights recorded for other training data: refused by key.
    tensors, _ = cache.load_verified(weights)
    key = {"recipe": third.recipe(), "data": "0" * 64}
    cache.save_verified(weights, tensors, key=key)
    with pytest.warns(UserWarning, match="another config"):
        make().fit(texts, labels)
    assert len(trained) == 3 and (folder / "teacher.safetensors.corrupt1").exists()
    # A write cut short: refused, retrained; the folder holds one file, its lock and what was moved aside.
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="cannot be read"):
        make().fit(texts, labels)
    assert len(trained) == 4
    assert sorted(p.name for p in folder.iterdir()) == [
        "teacher.safetensors", "teacher.safetensors.corrupt", "teacher.safetensors.corrupt1",
        "teacher.safetensors.corrupt2", "teacher.safetensors.lock"]


def test_a_fine_tuned_teacher_of_the_earlier_format_is_retrained(tmp_course_dirs):
    """Before issue 23: a plain safetensors file plus a JSON note. Both are moved aside; no crash, one retraining."""
    from safetensors.torch import save_file

    texts, labels = ["where is my parcel", "refund me please"] * 2, [0, 1] * 2
    make = lambda: teacher_mod.TextTeacher(num_classes=2, fine_tune_epochs=1, progress=False,  # noqa: E731
                                           max_length=16, batch_size=4)
    first = make().fit(texts, labels)
    folder = next((cache.config.cache_dir() / "teachers").iterdir())
    tensors, _ = cache.load_verified(folder / "teacher.safetensors")
    save_file(tensors, str(folder / "teacher.safetensors"))
    (folder / "teacher.json").write_text('{"key": {}, "sha256": "0"}')
    with pytest.warns(UserWarning, match="not a verified course file"):
        again = make().fit(texts, labels)
    assert not again.from_cache and not (folder / "teacher.json").exists()
    np.testing.assert_allclose(again.predict_logits(texts), first.predict_logits(texts), atol=1e-5)
    assert make().fit(texts, labels).from_cache
