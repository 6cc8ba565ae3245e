"""The email router's student: hashed word n-grams -> ``nn.EmbeddingBag`` -> linear (introduced in lesson 04).

fastText style: each word and each pair of neighbouring words is hashed into one of
``num_buckets`` rows of an embedding table; an email is the mean of its rows, then a
linear layer. It trains on int labels or on the teacher's probability rows. Its own surgery
for lesson 06 lives here too: :meth:`NgramStudent.prune_dims` (structured pruning, the hook
``compress.prune_structured`` calls) and :meth:`NgramStudent.as_flat_module` (a flat graph for ONNX export).
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import tempfile
from itertools import chain
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import cache, config
from ..losses import soft_label_loss
from ..timing import pinned_threads
from ._inputs import as_targets, as_texts
from .targets import soft_targets

# Bytes that end a word: ASCII other than a-z and 0-9 becomes a space; bytes >= 128 (UTF-8 of
# accented letters, other scripts, emoji) are kept as parts of words.
_WORD_BYTES = bytes(c if (48 <= c <= 57 or 97 <= c <= 122 or c >= 128) else 32 for c in range(256))
_BIGRAM_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant: the pair's words are not symmetric


def word_hash(word: bytes) -> int:
    """A stable 64-bit hash of a word's bytes (blake2b; Python's ``hash()`` changes between runs)."""
    return int.from_bytes(hashlib.blake2b(word, digest_size=8).digest(), "little")


def mix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on ``uint64``: every input bit changes about half of the output bits.

    Reducing ``h1 * M + h2`` straight ``mod num_buckets`` would keep only its low bits, which
    depend only on the low bits of ``h1`` and ``h2``: every pair of words that collide as
    unigrams would then also collide in all their bigrams. Mixing first brings the high bits down.
    """
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def bigram_hashes(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """64-bit hashes of word pairs from the two words' full 64-bit hashes (``uint64`` arrays)."""
    with np.errstate(over="ignore"):
        return mix64(first.astype(np.uint64) * _BIGRAM_MULT + second.astype(np.uint64))


def _word_hashes(words: list[bytes], cache: dict) -> np.ndarray:
    """``word_hash`` of each word as ``uint64``, looked up in ``cache`` (filled with new words; cleared past 2M)."""
    hashes = list(map(cache.get, words))
    if None in hashes:  # new words: hash each once
        if len(cache) > 2_000_000:
            cache.clear()
        for i, (w, h) in enumerate(zip(words, hashes)):
            if h is None:
                h = cache[w] = word_hash(w)
                hashes[i] = h
    return np.array(hashes, dtype=np.uint64)


def hashed_ngrams(texts: Sequence[str], num_buckets: int, bigrams: bool = True,
                  hash_cache: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hashed word uni- (and bi-)gram bucket ids and offsets for ``nn.EmbeddingBag``: ``ids`` (total,), ``offsets`` (n,).

    The featurisation of :class:`NgramStudent` (lesson 04) and of lesson 08's ``ranking.HashedEmbedder``.
    Words are runs of ASCII letters and digits (other scripts' bytes count as letters);
    splitting bytes through a translation table is about 3x faster than a regex. Bag ``i`` holds
    text ``i``'s unigrams in order, then its bigrams. ``hash_cache`` (a dict kept by the caller)
    saves hashing a word twice.
    """
    texts = as_texts(texts)
    words = [t.lower().encode("utf-8", "surrogatepass").translate(_WORD_BYTES).split() for t in texts]
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    h = _word_hashes(list(chain.from_iterable(words)), {} if hash_cache is None else hash_cache)
    buckets = np.uint64(num_buckets)
    uni = (h % buckets).astype(np.int64)
    if not bigrams:
        offsets = np.cumsum(lengths) - lengths  # each bag's start; none for no texts
        return torch.from_numpy(uni), torch.from_numpy(offsets.astype(np.int64))
    # Bag i holds its L_i unigrams, then its max(L_i - 1, 0) bigrams: place both directly.
    n_bi = np.maximum(lengths - 1, 0)
    bag_sizes = lengths + n_bi
    bag_start = np.cumsum(bag_sizes) - bag_sizes
    uni_start = np.cumsum(lengths) - lengths
    doc = np.repeat(np.arange(len(texts)), lengths)
    ids = np.empty(int(bag_sizes.sum()), dtype=np.int64)
    ids[np.arange(len(uni)) - uni_start[doc] + bag_start[doc]] = uni
    if len(h) > 1:
        same_doc = doc[1:] == doc[:-1]
        pair = bigram_hashes(h[:-1], h[1:]) % buckets
        first = np.flatnonzero(same_doc)  # flat index of each bigram's first word
        d = doc[first]
        ids[bag_start[d] + lengths[d] + (first - uni_start[d])] = pair[same_doc].astype(np.int64)
    return torch.from_numpy(ids), torch.from_numpy(bag_start.astype(np.int64))


#: The range each field of a saved student's ``config.json`` may take: (type, lowest, highest).
#: The upper bounds are far above any student this course trains, and keep a bad file from
#: asking for an absurd allocation.
CONFIG_LIMITS: dict[str, tuple[type, float, float]] = {
    "num_classes": (int, 2, 100_000), "num_buckets": (int, 1, 2 ** 24), "embedding_dim": (int, 1, 1024),
    "bigrams": (bool, 0, 1), "epochs": (int, 0, 100_000), "batch_size": (int, 1, 2 ** 20),
    "lr": (float, 1e-8, 10.0), "weight_decay": (float, 0.0, 10.0), "seed": (int, 0, 2 ** 63 - 1),
}
_MAX_TABLE = 2 ** 27  # floats in the embedding table (512 MB)


def _field_ok(value, kind: type, low: float, high: float) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        return False
    return math.isfinite(value) and low <= value <= high


def _check_config(config, source: str | Path = "config") -> dict:
    """A saved student's config, checked field by field (lesson 04); a ``ValueError`` names the bad field."""
    if not isinstance(config, dict):
        raise ValueError(f"{source}: expected a JSON object of settings, got {type(config).__name__}")
    unknown, missing = sorted(set(config) - set(CONFIG_LIMITS)), sorted(set(CONFIG_LIMITS) - set(config))
    if unknown or missing:
        raise ValueError(f"{source}: unknown fields {unknown}, missing fields {missing}; "
                         f"expected exactly {list(CONFIG_LIMITS)}")
    for name, (kind, low, high) in CONFIG_LIMITS.items():
        if not _field_ok(config[name], kind, low, high):
            wanted = "true or false" if kind is bool else (
                f"{'an int' if kind is int else 'a number'} in [{low}, {high}]")
            raise ValueError(f"{source}: {name} must be {wanted}, got {config[name]!r}")
    if config["num_buckets"] * config["embedding_dim"] > _MAX_TABLE:
        raise ValueError(f"{source}: num_buckets x embedding_dim = {config['num_buckets'] * config['embedding_dim']} "
                         f"floats in the embedding table, more than {_MAX_TABLE}: is this file a student's?")
    return dict(config)


def _read_config(path: Path) -> dict:
    """``config.json`` of a saved student, parsed and checked by :func:`_check_config`."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a valid JSON file ({err})") from None
    return _check_config(config, path)


_RESAVE = "re-save the student with NgramStudent.save, or rebuild it by re-running the lesson that trains it"
#: What to do, by the verified store's reason for refusing the weights (course_lib.cache.CacheError.reason).
_LOAD_HINTS = {
    "missing": f"no weights were saved there; {_RESAVE}",
    "unreadable": f"the file is truncated or corrupted (a write cut short?); {_RESAVE}",
    "format": f"it was saved by an earlier version of the course or another program; {_RESAVE}",
    "checksum": f"a byte of the weights changed after they were saved; {_RESAVE}",
    "expected": "config.json (num_classes, num_buckets, embedding_dim) asks for other shapes: the two files "
                "do not belong together",
}


def _weight_shapes(config: dict) -> dict:
    """The shapes of a student's state dict for a given config."""
    return {"embedding.weight": (config["num_buckets"], config["embedding_dim"]),
            "linear.weight": (config["num_classes"], config["embedding_dim"]), "linear.bias": (config["num_classes"],)}


class _FlatNgramStudent(nn.Module):
    """An :class:`NgramStudent`'s forward written as gather + scatter-add, for export (lesson 06).

    Made by :meth:`NgramStudent.as_flat_module`. The exporter turns ``nn.EmbeddingBag`` into an ONNX
    ``Loop`` over the emails, one iteration per email; here the same mean of each email's rows is a
    ``Gather`` of the rows, a running count that gives each id its email, and one ``ScatterElements``
    sum: a flat graph. It shares the student's weights (no copy) and takes the student's ``(ids, offsets)``.
    """

    def __init__(self, student: "NgramStudent"):
        super().__init__()
        self.embedding, self.linear = student.embedding, student.linear

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        rows = nn.functional.embedding(ids, self.embedding.weight)             # (total, dim)
        starts = torch.zeros(ids.shape[0] + 1, dtype=torch.int64)
        starts = starts.scatter_add(0, offsets[1:], torch.ones_like(offsets[1:]))[:-1]
        email = starts.cumsum(0)                                                # email index of each id
        sums = torch.zeros(offsets.shape[0], rows.shape[1]).index_add(0, email, rows)
        counts = torch.zeros(offsets.shape[0]).index_add(0, email, torch.ones(ids.shape[0]))
        return self.linear(sums / counts.clamp(min=1.0)[:, None])               # an empty email: zeros, as EmbeddingBag


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
        with config.seeded(seed):  # seeded initial weights, without reseeding the caller's RNG
            self.embedding = nn.EmbeddingBag(num_buckets, embedding_dim, mode="mean")
            nn.init.uniform_(self.embedding.weight, -1.0 / embedding_dim, 1.0 / embedding_dim)
            self.linear = nn.Linear(embedding_dim, num_classes)
        self._hashes: dict[bytes, int] = {}

    # -- featurisation: vectorised where it counts ---------------------------
    def featurize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Bucket ids and offsets for ``nn.EmbeddingBag``: ``ids`` (total,), ``offsets`` (n,) (:func:`hashed_ngrams`)."""
        return hashed_ngrams(texts, self.num_buckets, self.bigrams, self._hashes)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """``student_logits``, shape ``(n, num_classes)``, from :meth:`featurize`'s output."""
        return self.linear(self.embedding(ids, offsets))

    # -- training and prediction ---------------------------------------------
    def fit(self, texts: Sequence[str], targets, epochs: int | None = None, progress: bool = True) -> "NgramStudent":
        """Train on int labels ``(n,)`` or on probability rows ``(n, num_classes)`` (soft targets).

        Hard labels use cross-entropy; probability rows use :func:`course_lib.losses.soft_label_loss`. No texts, or
        ``epochs`` (given or the student's own) below 1, is a ``ValueError``: either would return
        an untrained student as if trained.

        Training runs on one torch thread (``timing.pinned_threads(1)``, the caller's count restored
        after), so the same seed gives the same weights on any machine: the linear layer's weight
        gradient sums over the batch in an order that depends on the thread count (measured: the
        weights differ after one step at 2 threads, and the logits after 3 epochs).
        """
        texts = as_texts(texts)
        if not texts:
            raise ValueError("no texts to train on: fit needs at least one text and its target")
        epochs = self.epochs if epochs is None else epochs
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}: fit would return an untrained student")
        soft = as_targets(targets, len(texts), self.num_classes)
        y = torch.from_numpy(soft)
        ids, offsets = self.featurize(texts)
        ends = torch.cat([offsets[1:], torch.tensor([len(ids)])])
        per_doc = [ids[s:e] for s, e in zip(offsets.tolist(), ends.tolist())]
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        rng = np.random.default_rng(self.seed)
        loop = range(epochs)
        if progress:
            from tqdm.auto import tqdm
            loop = tqdm(loop, desc="student epochs", unit="epoch", leave=False)
        self.train()
        with pinned_threads(1):
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
        """``student_logits``, shape ``(n, num_classes)``, on the caller's threads (a measurement pins them).

        Unlike training, the forward pass gives the same logits on any thread count (measured: bit-identical at 1 and 2).
        """
        ids, offsets = self.featurize(texts)
        with torch.inference_mode():
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

    # -- model surgery (lesson 06) --------------------------------------------
    @torch.no_grad()
    def prune_dims(self, amount: float) -> "NgramStudent":
        """A smaller dense copy with the ``amount`` share of the embedding's dimensions removed (lesson 06).

        Structured pruning for this model (``compress.prune_structured`` calls it). Dimension d of
        every bucket's vector feeds column d of the linear layer; it is ranked by the L2 norm of its
        column of the table times that of its column of the linear layer (scaling one up and the other
        down computes the same logits, and leaves the product unchanged). The kept columns of both are
        copied into a new, narrower table and layer, so each kept dimension contributes exactly what it
        did before. Returns a new student (``embedding_dim`` updated); this one is not changed.

        Args:
            amount: share of the ``embedding_dim`` dimensions to remove, in [0, 1); at least one is kept.
        """
        if not 0.0 <= amount < 1.0:
            raise ValueError(f"amount must lie in [0, 1), got {amount!r}")
        table, weight = self.embedding.weight.detach(), self.linear.weight.detach()
        scores = table.T.norm(dim=1) * weight.norm(dim=0)
        n_keep = max(1, int(round(len(scores) * (1.0 - amount))))
        dims = scores.topk(n_keep).indices.sort().values
        small = copy.deepcopy(self)
        small.embedding = nn.EmbeddingBag(table.shape[0], len(dims), mode="mean").to(table.device)
        small.embedding.weight.copy_(table[:, dims])
        small.linear = nn.Linear(len(dims), weight.shape[0]).to(weight.device)
        small.linear.weight.copy_(weight[:, dims])
        small.linear.bias.copy_(self.linear.bias.detach())
        small.embedding_dim = len(dims)
        return small

    def as_flat_module(self) -> nn.Module:
        """This student as a module with a flat graph for ONNX export, sharing its weights (lesson 06).

        The returned module takes the same ``(ids, offsets)`` as :meth:`forward` and computes the same
        logits, writing ``nn.EmbeddingBag``'s mean as a gather and a scatter-add: exported as it is,
        ``nn.EmbeddingBag`` becomes an ONNX ``Loop`` with one iteration per email. CPU tensors.
        """
        return _FlatNgramStudent(self)

    # -- saving (safetensors + json: no pickle) -------------------------------
    def _config(self) -> dict:
        return {k: getattr(self, k) for k in ("num_classes", "num_buckets", "embedding_dim", "bigrams",
                                               "epochs", "batch_size", "lr", "weight_decay", "seed")}

    def save(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` (verified store: config, checksum) and ``config.json`` into ``directory``."""
        directory = Path(directory)
        config_ = self._config()
        cache.save_verified(directory / "model.safetensors", self.state_dict(), meta={"config": config_})
        cache.atomic_write(directory / "config.json", lambda tmp: tmp.write_text(json.dumps(config_, indent=1)))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "NgramStudent":
        """Load a student written by :meth:`save`; a ``ValueError`` names the file and what is wrong.

        The config is checked before anything is allocated (a file asking for ``2**30`` buckets
        would otherwise try a 51 GB table): every field's type and range (:data:`CONFIG_LIMITS`)
        and the table's size. The weights are read by :func:`course_lib.cache.load_verified`: a
        truncated file, a changed byte (checksum), or shapes other than the config's are refused,
        and so is a ``config.json`` other than the one saved with the weights.
        """
        directory = Path(directory)
        config_ = _read_config(directory / "config.json")
        weights = directory / "model.safetensors"
        expected = {k: (shape, torch.float32) for k, shape in _weight_shapes(config_).items()}
        try:
            state, meta = cache.load_verified(weights, expected=expected)
        except cache.CacheError as err:
            raise ValueError(f"{err}: {_LOAD_HINTS.get(err.reason, _LOAD_HINTS['unreadable'])}") from None
        if meta.get("config") != config_:
            saved = meta.get("config") if isinstance(meta.get("config"), dict) else {}
            fields = sorted(k for k in set(saved) | set(config_) if saved.get(k) != config_.get(k))
            raise ValueError(f"{directory / 'config.json'} does not belong with {weights}: the weights were saved "
                             f"with other settings ({', '.join(fields) or 'none recorded'}); re-save the student")
        student = cls(**config_)
        student.load_state_dict(state)
        return student.eval()

    def disk_bytes(self) -> int:
        """Bytes on disk of :meth:`save`'s output."""
        with tempfile.TemporaryDirectory() as tmp:
            self.save(tmp)
            return sum(p.stat().st_size for p in Path(tmp).iterdir())
