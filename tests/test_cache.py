import pickle

import pytest
import torch

from course_lib import cache, models


def test_cached_model_trains_once_then_loads(tmp_course_dirs):
    calls = []

    def train_fn(model):
        calls.append(1)
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(0.5)

    cfg = {"hidden": [4], "epochs": 1}
    build = lambda: models.MLP(hidden=(4,), in_features=3, num_classes=2)  # noqa: E731
    m1, hit1 = cache.cached_model("toy", cfg, build, train_fn)
    m2, hit2 = cache.cached_model("toy", cfg, build, train_fn)
    assert (hit1, hit2) == (False, True) and len(calls) == 1
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    _, hit3 = cache.cached_model("toy", {**cfg, "epochs": 2}, build, train_fn)
    assert not hit3 and len(calls) == 2
    assert cache.artefact_path("toy", cfg).name.startswith("toy-")


def test_corrupted_cache_is_moved_aside_and_rebuilt(tmp_course_dirs):
    cfg = {"n": 3}
    tensors, hit = cache.cached_tensors("logits", cfg, lambda: {"logits": torch.arange(3.0)})
    assert not hit
    path = cache.artefact_path("logits", cfg)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.warns(UserWarning, match="moved it to"):
        again, hit = cache.cached_tensors("logits", cfg, lambda: {"logits": torch.arange(3.0)})
    assert not hit and torch.equal(again["logits"], torch.arange(3.0))
    assert path.with_name(path.name + ".corrupt").exists()


def test_load_checkpoint_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        cache.load_checkpoint(models.MLP(hidden=(2,), in_features=2, num_classes=2), path)


def test_save_and_load_checkpoint_round_trip(tmp_path):
    a = models.MLP(hidden=(5,), in_features=3, num_classes=2)
    b = models.MLP(hidden=(5,), in_features=3, num_classes=2)
    cache.save_checkpoint(a, tmp_path / "m.pt", {"hidden": [5]})
    cache.load_checkpoint(b, tmp_path / "m.pt")
    x = torch.rand(4, 3)
    assert torch.equal(a(x), b(x))
