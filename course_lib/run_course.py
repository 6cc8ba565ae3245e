"""Run every lesson headlessly into ``build/`` and print a time table (``make course``).

    python -m course_lib.run_course [notebooks ...]   # full mode unless COURSE_FAST=1
    python -m course_lib.run_course --strip-only      # strip outputs from committed notebooks

Each notebook runs in a fresh kernel from its own folder; the executed copy goes to
``build/<name>.ipynb`` and an HTML page to ``build/<name>.html``. A failing notebook
is reported and the others still run; the exit code says whether all passed. The kernel
talks to the runner over Unix sockets (Jupyter's ``ipc`` transport), not unencrypted TCP.
Ctrl-C or SIGTERM stops the whole run: the current kernel is shut down, the time table so
far is printed, and the exit code is 130 (Ctrl-C) or 143 (SIGTERM). A full-mode run ends by
re-rendering ``docs/results.md`` and README.md's summary from ``results/`` (``course_lib.report``).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from . import config
from .config import REPO_ROOT

LESSON_FOLDERS = ("notebooks",)
LESSON_GLOB = "[0-9][0-9]_*.ipynb"


#: Set by a stop signal: ``{"signum": ..., "km": the running kernel's manager}``.
_RUN: dict = {"signum": None, "km": None}


def _stop(signum, frame) -> None:
    """Ctrl-C or SIGTERM: remember it and end the running kernel, so its notebook returns at once."""
    _RUN["signum"] = signum
    process = getattr(getattr(_RUN["km"], "provisioner", None), "process", None)
    if process is not None and process.poll() is None:
        process.kill()


def _in_thread(work) -> None:
    """Run ``work()`` in a worker thread and re-raise what it raised.

    nbclient, run on the main thread, replaces SIGINT/SIGTERM handlers with its own, which only shut
    the current kernel down (and then resets them to the defaults); in a worker thread it leaves them
    alone, so :func:`_stop` sees the signal and the whole run stops.
    """
    import threading

    failure: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="course-notebook", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)  # short waits: the main thread runs signal handlers between them
    if failure:
        raise failure[0]


def strip_outputs(path: Path) -> bool:
    """Remove outputs and execution counts from a notebook in place; True if it changed."""
    nb = nbformat.read(str(path), as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count = [], None
            changed = True
    if "widgets" in nb.metadata:
        nb.metadata.pop("widgets")
        changed = True
    if changed:
        nbformat.write(nb, str(path))
    return changed


def execute(path: Path, out_dir: Path, timeout: int) -> tuple[bool, float, str]:
    """Execute one notebook; return (ok, seconds, error message)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from jupyter_client.manager import AsyncKernelManager

    nb = nbformat.read(str(path), as_version=4)
    start = time.perf_counter()
    error = ""
    with tempfile.TemporaryDirectory(prefix="course-kernel-") as sockets:
        km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "k"))
        km.connection_file = str(Path(sockets) / "connection.json")
        _RUN["km"] = km
        client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        try:
            _in_thread(client.execute)
        except CellExecutionError as exc:
            error = str(exc).strip().splitlines()[-1] if str(exc).strip() else "cell failed"
        except Exception as exc:  # a dead kernel, a timeout: report and go on with the next notebook
            error = f"{type(exc).__name__}: {exc}"
        finally:
            _RUN["km"] = None
    seconds = time.perf_counter() - start
    nb.metadata["course_build"] = build_stamp(nb, ok=not error, seconds=seconds)
    _write_outputs(nb, path, out_dir)
    return not error, seconds, error


def lesson_sources(repo: Path = REPO_ROOT) -> list[Path]:
    """The lessons, ``notebooks/NN_*.ipynb``, in order (what ``make course`` runs and ``make site`` shows)."""
    return sorted((Path(repo) / "notebooks").glob(LESSON_GLOB))


def source_sha256(nb) -> str:
    """SHA-256 of a notebook's cell types and sources only (outputs, ids and metadata do not count): what the
    site compares to tell whether an executed copy in ``build/`` is stale. ``nb``: a notebook node or a path."""
    import hashlib
    import json

    if not hasattr(nb, "cells"):
        nb = nbformat.read(str(nb), as_version=4)
    cells = [[cell.cell_type, cell.source] for cell in nb.cells]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode()).hexdigest()


def build_stamp(nb, ok: bool, seconds: float) -> dict:
    """The ``course_build`` metadata of an executed notebook: its source's hash, the mode, the outcome, when."""
    from datetime import datetime, timezone

    return {"source_sha256": source_sha256(nb), "mode": "FAST" if config.is_fast() else "full", "ok": bool(ok),
            "seconds": round(float(seconds), 1), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _write_outputs(nb, path: Path, out_dir: Path) -> None:
    from nbconvert import HTMLExporter

    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out_dir / path.name))
    body, _ = HTMLExporter().from_notebook_node(nb)
    (out_dir / path.with_suffix(".html").name).write_text(body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.run_course", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--strip-only", action="store_true")
    args = parser.parse_args(argv)

    if args.strip_only:
        for folder in ("notebooks", "solutions", "exercises"):
            for path in sorted((REPO_ROOT / folder).glob("*.ipynb")):
                if strip_outputs(path):
                    print(f"stripped {path.relative_to(REPO_ROOT)}")
        return 0

    from tqdm.auto import tqdm

    paths = args.notebooks or lesson_sources()
    mode = "FAST" if config.is_fast() else "full"
    rows, cache_states = [], {}
    _RUN["signum"] = None
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for path in tqdm(paths, desc=f"lessons ({mode} mode)"):
            before = _cache_files()
            ok, seconds, error = execute(path.resolve(), args.out, args.timeout)
            if _RUN["signum"] is not None:
                rows.append((path.name, False, seconds, f"stopped by {signal.Signals(_RUN['signum']).name}"))
                break
            rows.append((path.name, ok, seconds, error))
            cache_states[path.name] = cache_state(before, _cache_files())
            tqdm.write(f"{'ok  ' if ok else 'FAIL'} {path.name} {seconds:8.1f} s {error}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("\n| notebook | mode | result | seconds |\n|---|---|---|---:|")
    for name, ok, seconds, error in rows:
        print(f"| {name} | {mode} | {'ok' if ok else 'FAILED: ' + error} | {seconds:.1f} |")
    print(f"| total | {mode} | {sum(ok for _, ok, _, _ in rows)}/{len(rows)} ok | {sum(r[2] for r in rows):.1f} |")
    stopped = _RUN["signum"]
    if stopped is not None:
        print(f"stopped by {signal.Signals(stopped).name} after {len(rows)} of {len(paths)} notebooks; "
              "the timings of the finished ones are kept")
    record_timings(rows, mode, cache_states)
    if mode == "full" and config.results_dir() == REPO_ROOT / "results":
        from . import report

        report.main([])  # the full-mode results just written: re-render docs/results.md and README's summary
    if stopped is not None:
        return 128 + int(stopped)
    return 0 if all(ok for _, ok, _, _ in rows) else 1


def _cache_files() -> dict[str, tuple[int, int]]:
    """``{path: (size, mtime_ns)}`` of every file in the course's cache folder."""
    root = config.cache_dir()
    found = {}
    for path in root.rglob("*"):
        try:
            if path.is_file():
                stat = path.stat()
                found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
        except OSError:  # removed while we looked
            continue
    return found


def cache_state(before: dict, after: dict) -> str:
    """What a run did to the cache, measured: "warm (nothing built)" or "cold: N files (M MB) built in the run"."""
    built = [name for name, stat in after.items() if before.get(name) != stat and not name.endswith(".lock")]
    if not built:
        return "warm (nothing built)"
    megabytes = sum(after[name][0] for name in built) / 1e6
    return f"cold: {len(built)} cache file{'s' if len(built) != 1 else ''} ({megabytes:,.0f} MB) built in the run"


def record_timings(rows: list, mode: str, cache_states: dict | None = None) -> None:
    """Merge the measured seconds of notebooks that ran fine, the machine's CPU count and what each run did to
    the cache into ``results/course_timings.json``."""
    import json

    key = f"{mode.lower()}_{'gpu' if config.get_device().type == 'cuda' else 'cpu'}_s"
    path = config.results_dir() / "course_timings.json"
    timings = json.loads(path.read_text()) if path.exists() else {}
    for name, ok, seconds, _ in rows:
        if ok:
            timings.setdefault(name, {})[key] = round(seconds, 1)
            timings[name][key.removesuffix("_s") + "_cores"] = os.cpu_count()  # what "a 2-core CPU" is read from
            if cache_states and name in cache_states:
                timings[name][key.removesuffix("_s") + "_cache"] = cache_states[name]
    path.write_text(json.dumps(timings, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.exit(main())
