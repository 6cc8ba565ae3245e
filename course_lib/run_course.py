"""Run every lesson headlessly into ``build/`` and print a time table (``make course``).

    python -m course_lib.run_course [notebooks ...]   # full mode unless COURSE_FAST=1
    python -m course_lib.run_course --strip-only      # strip outputs from committed notebooks

Each notebook runs in a fresh kernel from its own folder; the executed copy goes to
``build/<name>.ipynb`` and an HTML page to ``build/<name>.html``. A failing notebook
is reported and the others still run; the exit code says whether all passed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat

from . import config
from .config import REPO_ROOT

LESSON_FOLDERS = ("notebooks",)


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
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = ""
    try:
        client.execute()
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1] if str(exc).strip() else "cell failed"
    except Exception as exc:  # a dead kernel, a timeout: report and go on with the next notebook
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out_dir / path.name))
    body, _ = HTMLExporter().from_notebook_node(nb)
    (out_dir / path.with_suffix(".html").name).write_text(body, encoding="utf-8")
    return not error, seconds, error


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

    paths = args.notebooks or sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    mode = "FAST" if config.is_fast() else "full"
    rows = []
    for path in tqdm(paths, desc=f"lessons ({mode} mode)"):
        ok, seconds, error = execute(path.resolve(), args.out, args.timeout)
        rows.append((path.name, ok, seconds, error))
        tqdm.write(f"{'ok  ' if ok else 'FAIL'} {path.name} {seconds:8.1f} s {error}")
    print("\n| notebook | mode | result | seconds |\n|---|---|---|---:|")
    for name, ok, seconds, error in rows:
        print(f"| {name} | {mode} | {'ok' if ok else 'FAILED: ' + error} | {seconds:.1f} |")
    print(f"| total | {mode} | {sum(ok for _, ok, _, _ in rows)}/{len(rows)} ok | {sum(r[2] for r in rows):.1f} |")
    record_timings(rows, mode)
    return 0 if all(ok for _, ok, _, _ in rows) else 1


def record_timings(rows: list, mode: str) -> None:
    """Merge the measured seconds of notebooks that ran fine into ``results/course_timings.json``."""
    import json

    key = f"{mode.lower()}_{'gpu' if config.get_device().type == 'cuda' else 'cpu'}_s"
    path = config.results_dir() / "course_timings.json"
    timings = json.loads(path.read_text()) if path.exists() else {}
    for name, ok, seconds, _ in rows:
        if ok:
            timings.setdefault(name, {})[key] = round(seconds, 1)
    path.write_text(json.dumps(timings, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.exit(main())
