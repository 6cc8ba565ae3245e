"""The email router's student: hashed word n-grams -> ``nn.EmbeddingBag`` -> linear (introduced in lesson 04).

fastText style: each word and each pair of neighbouring words is hashed into one of
``num_buckets`` rows of an embedding table; an email is the mean of its rows, then a
linear layer. It trains on int labels or on the teacher's probability rows.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from itertools import chain
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import config
from ._inputs import as_targets, as_texts
from .targets import soft_label_loss, soft_targets
from .timing import one_thread

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
    def _word_hashes(self, words: list[bytes]) -> np.ndarray:
        cache = self._hashes
        hashes = list(map(cache.get, words))
        if None in hashes:  # new words: hash each once
            if len(cache) > 2_000_000:
                cache.clear()
            for i, (w, h) in enumerate(zip(words, hashes)):
                if h is None:
                    h = cache[w] = word_hash(w)
                    hashes[i] = h
        return np.array(hashes, dtype=np.uint64)

    def featurize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Bucket ids and offsets for ``nn.EmbeddingBag``: ``ids`` (total,), ``offsets`` (n,).

        Words are runs of ASCII letters and digits (other scripts' bytes count as letters);
        splitting bytes through a translation table is about 3x faster than a regex.
        """
        texts = as_texts(texts)
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
            pair = bigram_hashes(h[:-1], h[1:]) % buckets
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
        texts = as_texts(texts)
        soft = as_targets(targets, len(texts), self.num_classes)
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
