"""course_lib.compress against independent computations: zeros counted by hand, kept units' outputs,
the file actually written, PyTorch's own outputs; and no deprecated API on the way (warnings as errors)."""
import gzip
import struct
import warnings

import numpy as np
import pytest
import torch

from course_lib import compress, models
from course_lib.router import NgramStudent
from tolerance import FORWARD_PASS, close32

TEXTS = ["my refund has not arrived", "", "parcel lost in delivery, where is it", "card charged twice",
         "x", "please close my account now"] * 3 + [""]


@pytest.fixture(autouse=True)
def deprecations_are_errors():
    """Every test here fails if a helper calls an API PyTorch or ONNX Runtime marks as on its way out."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", FutureWarning)
        yield


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return models.MLP(hidden=(48, 24)).eval()


@pytest.fixture
def images():
    return torch.rand(37, 1, 28, 28, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def student():
    return NgramStudent(5, num_buckets=512, embedding_dim=8, seed=3).eval()


def weights(model):
    return [m.weight for m in model.modules() if isinstance(m, compress.PRUNABLE)]


def test_prune_magnitude_zeroes_the_smallest_share_globally(mlp):
    before = [w.detach().clone() for w in weights(mlp)]
    pruned = compress.prune_magnitude(mlp, 0.6)
    after = weights(pruned)
    zeros = sum(int((w == 0).sum()) for w in after)
    total = sum(w.numel() for w in after)
    assert zeros == round(0.6 * total)
    assert compress.sparsity(pruned) == pytest.approx(zeros / total)
    # global threshold: every kept weight is at least as large as every removed one
    flat_before = torch.cat([w.flatten() for w in before]).abs()
    flat_after = torch.cat([w.detach().flatten() for w in after])
    assert flat_before[flat_after != 0].min() >= flat_before[flat_after == 0].max()
    assert torch.equal(flat_after[flat_after != 0], torch.cat([w.flatten() for w in before])[flat_after != 0])
    # the original is untouched, the masks are gone, biases are kept
    assert all(torch.equal(a, w) for a, w in zip(before, weights(mlp)))
    assert not compress.has_masks(pruned)
    assert torch.equal(pruned.head.bias, mlp.head.bias)


def test_sparsity_counts_zeros_by_hand():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.0, 1, 0, 2], [3, 0, 0, 0], [1, 1, 1, 1]]))
        model[1].weight.copy_(torch.tensor([[0.0, 0, 0], [1, 2, 3]]))
        model[0].bias.zero_()  # biases are not counted
    assert compress.sparsity(model) == pytest.approx((3 + 2 + 3) / (12 + 6))


def test_masks_left_in_place_make_the_file_bigger(mlp):
    masked = compress.prune_magnitude(mlp, 0.5, permanent=False)
    assert compress.has_masks(masked)
    assert compress.sparsity(masked) == pytest.approx(0.5, abs=1e-3)
    assert compress.model_size_bytes(masked) > 1.9 * compress.model_size_bytes(mlp)
    compress.make_permanent(masked)
    assert not compress.has_masks(masked)
    assert compress.model_size_bytes(masked) == compress.model_size_bytes(mlp)


def test_model_size_bytes_is_the_file_written(mlp, tmp_path):
    path = tmp_path / "model.pt"  # torch.save stores the file's stem inside the archive: same name, same bytes
    torch.save(mlp.state_dict(), path)
    assert compress.model_size_bytes(mlp) == path.stat().st_size
    assert compress.file_size_bytes(path) == path.stat().st_size
    assert compress.file_size_bytes(path, compressed=True) == len(gzip.compress(path.read_bytes(), 9, mtime=0))
    parameters = sum(p.numel() for p in mlp.parameters())
    assert compress.model_size_bytes(mlp) >= 4 * parameters  # bytes, not a count of numbers


def test_gzip_size_shows_sparsity_the_plain_file_does_not(mlp):
    pruned = compress.prune_magnitude(mlp, 0.8)
    assert compress.model_size_bytes(pruned) == compress.model_size_bytes(mlp)
    assert compress.model_size_bytes(pruned, compressed=True) < 0.6 * compress.model_size_bytes(mlp, compressed=True)


def test_prune_structured_mlp_keeps_the_kept_units_outputs(mlp, images):
    small = compress.prune_structured(mlp, 0.5)
    assert small.hidden == (24, 12)
    assert compress.model_size_bytes(small) < 0.6 * compress.model_size_bytes(mlp)
    _, big_features = mlp(images, return_features=True)
    _, small_features = small(images, return_features=True)
    # which units were kept: the first layer's rows are copies of the original rows
    kept = [int((mlp.layers[0][0].weight == row).all(dim=1).nonzero()) for row in small.layers[0][0].weight]
    assert kept == sorted(kept)
    # a narrower layer: the same sums up to float32 rounding (another width, another kernel)
    assert torch.allclose(small_features["hidden1"], big_features["hidden1"][:, kept], **close32(FORWARD_PASS))
    # zeroing the removed units in the original gives the small model's logits (up to float32 rounding)
    zeroed = compress.prune_structured(mlp, 0.0)
    with torch.no_grad():
        removed1 = [i for i in range(48) if i not in kept]
        zeroed.layers[0][0].weight[removed1] = 0
        zeroed.layers[0][0].bias[removed1] = 0
        kept2 = [int((mlp.layers[1][0].weight[:, kept] == row).all(dim=1).nonzero()) for row in small.layers[1][0].weight]
        removed2 = [i for i in range(24) if i not in kept2]
        zeroed.layers[1][0].weight[removed2] = 0
        zeroed.layers[1][0].bias[removed2] = 0
    assert torch.allclose(zeroed(images), small(images), **close32(FORWARD_PASS))
    assert mlp.hidden == (48, 24)  # the original is untouched


def test_prune_structured_calls_the_models_own_prune_dims(student):
    """The router's student brings its own surgery (NgramStudent.prune_dims, tested in test_router.py)."""
    ids, offsets = student.featurize(TEXTS)
    small = compress.prune_structured(student, 0.5)
    assert small.embedding_dim == 4
    assert torch.equal(small(ids, offsets), student.prune_dims(0.5)(ids, offsets))

    class Pruneable(torch.nn.Module):  # any model with the hook, not only the router's
        def __init__(self):
            super().__init__()
            self.linear, self.calls = torch.nn.Linear(3, 2), []

        def prune_dims(self, amount):
            self.calls.append(amount)
            return "pruned"

    model = Pruneable()
    assert compress.prune_structured(model, 0.25) == "pruned" and model.calls == [0.25]
    with pytest.raises(ValueError, match="lie in"):  # the amount is checked before the hook runs
        compress.prune_structured(model, 1.0)
    assert model.calls == [0.25]


def test_prune_structured_refuses_masks_and_unknown_models(mlp):
    with pytest.raises(ValueError, match="make_permanent"):
        compress.prune_structured(compress.prune_magnitude(mlp, 0.3, permanent=False), 0.5)
    with pytest.raises(TypeError, match="MLP and models with a prune_dims"):
        compress.prune_structured(torch.nn.Linear(3, 3), 0.5)


def test_compress_knows_no_lesson_model():
    """Model surgery lives with the model: compress imports nothing from the router."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(compress))
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if "router" in name], imported


def test_onnx_export_matches_pytorch_and_int8_is_smaller(mlp, images, tmp_path):
    path = compress.export_onnx(mlp, images[:2], tmp_path / "mlp.onnx")
    # one self-contained file, weights inside, and its seal (the sha256 OnnxModel checks)
    assert sorted(tmp_path.iterdir()) == [path, tmp_path / "mlp.onnx.sha256"]
    reference = mlp(images).detach()
    fp32 = compress.OnnxModel(path).predict_logits(images, batch_size=10)  # a batch size other than the export's
    report = compress.equivalence(reference, fp32)
    assert report["within_tolerance"] and report["argmax_agreement"] == 1.0
    assert np.allclose(fp32.numpy(), reference.numpy(), atol=compress.ATOL)
    int8 = compress.quantize_onnx_int8(path, tmp_path / "mlp-int8.onnx")
    assert compress.file_size_bytes(int8) < 0.35 * compress.file_size_bytes(path)
    approx = compress.OnnxModel(int8).predict_logits(images)
    assert (approx - reference).abs().max() < 0.1


def test_router_student_exports_and_serves(student, tmp_path):
    ids, offsets = student.featurize(TEXTS)
    path = compress.export_onnx(student.as_flat_module(), (ids[:5], offsets[:2]), tmp_path / "r.onnx",
                                input_names=["ids", "offsets"])
    logits = compress.OnnxModel(path).predict_logits(ids, offsets)
    assert compress.equivalence(student(ids, offsets).detach(), logits)["within_tolerance"]
    int8 = compress.OnnxModel(compress.quantize_onnx_int8(path, tmp_path / "r8.onnx")).predict_logits(ids, offsets)
    assert int8.shape == (len(TEXTS), 5)


def test_an_onnx_file_with_a_changed_byte_is_refused_before_onnx_runtime_reads_it(mlp, images, tmp_path):
    """Lesson 06's ONNX files were read back unverified (changed weights ran silently); now their seal is checked."""
    from course_lib import cache

    path = compress.export_onnx(mlp, images[:2], tmp_path / "mlp.onnx")
    genuine = path.read_bytes()
    reference = compress.OnnxModel(path).predict_logits(images)
    weight = struct.pack("<f", float(mlp.state_dict()["head.bias"][0]))
    at = genuine.rindex(weight)
    path.write_bytes(genuine[:at] + struct.pack("<f", 1e3) + genuine[at + 4:])  # one weight, 4 bytes
    import onnxruntime as ort  # unverified, the change runs silently:
    changed = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": images.numpy()})[0]
    assert not np.allclose(changed, reference.numpy(), atol=1.0)
    with pytest.raises(cache.CacheError, match=r"mlp\.onnx: its sha256 does not match its seal"):
        compress.OnnxModel(path)
    with pytest.raises(cache.CacheError, match="does not match its seal"):
        compress.quantize_onnx_int8(path, tmp_path / "int8.onnx")
    assert not (tmp_path / "int8.onnx").exists()
    (tmp_path / "mlp.onnx.sha256").unlink()
    path.write_bytes(genuine)
    with pytest.raises(cache.CacheError, match="has no seal mlp.onnx.sha256"):
        compress.OnnxModel(path)
    cache.seal(path)  # the documented way to trust a file made elsewhere
    assert torch.equal(compress.OnnxModel(path).predict_logits(images), reference)


def test_onnx_export_over_an_existing_file_is_atomic_and_resealed(mlp, student, images, tmp_path):
    path = compress.export_onnx(mlp, images[:2], tmp_path / "m.onnx")
    ids, offsets = student.featurize(TEXTS)
    compress.export_onnx(student.as_flat_module(), (ids[:5], offsets[:2]), path, input_names=["ids", "offsets"])
    assert compress.OnnxModel(path).input_names == ["ids", "offsets"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.sha256"]  # no .tmp left


def test_equivalence_counts_argmax_differences():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 0.5], [2.0, 1.00001]])
    report = compress.equivalence(a, b)
    assert report["argmax_differences"] == 1 and report["argmax_agreement"] == pytest.approx(2 / 3)
    assert not report["within_tolerance"] and report["max_abs_diff"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        compress.equivalence(a, b[:2])


def test_pareto_front_by_hand():
    costs = [4.0, 1.0, 2.0, 3.0, 2.0, 1.0]
    scores = [99.0, 90.0, 97.0, 96.0, 95.0, 90.0]
    # 3 (cost 3, 96) is beaten by 2 (cost 2, 97); 4 by 2; 1 and 5 are equal, both kept
    assert compress.pareto_front(costs, scores) == [1, 5, 2, 0]
    with pytest.raises(ValueError):
        compress.pareto_front([1.0], [1.0, 2.0])
