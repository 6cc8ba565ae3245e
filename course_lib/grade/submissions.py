"""Reading a submission: a notebook checked cell by cell, what it defines, and what the grader runs of it.

Nothing here runs the submission's code: it is read as JSON and parsed with :mod:`ast`.
"""
from __future__ import annotations

import ast
import json
import re
import textwrap
from pathlib import Path
from typing import Optional, Sequence

from .points import Exercise

#: Largest notebook file read (bytes): a larger one gets a row saying so.
MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
_CHECK_NAME = re.compile(r"^check_\w+$")


def student_id(path: Path) -> str:
    """The student id is the file name without ``.ipynb`` (e.g. ``alice.ipynb`` -> ``alice``)."""
    return Path(path).name.removesuffix(".ipynb")


def student_ids(paths: Sequence[Path]) -> list[str]:
    """One id per path, never two alike: the file name, or with its folders when two files share a name.

    ``groupA/alice.ipynb`` and ``groupB/alice.ipynb`` become ``groupA/alice`` and ``groupB/alice``;
    the same path given twice gets ``alice`` and ``alice (2)``.
    """
    parts = [(*Path(p).resolve().parent.parts, student_id(p)) for p in paths]
    ids = []
    for mine in parts:
        depth = 1  # the shortest tail of folders that no other file with the same name shares
        while depth < len(mine) and any(other[-depth:] == mine[-depth:] and other != mine for other in parts):
            depth += 1
        ids.append("/".join(mine[-depth:]))
    seen: dict[str, int] = {}
    unique = []
    for name in ids:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def _check_cells(data) -> None:
    """Raise ``ValueError`` naming the first cell that is not a well-formed notebook cell."""
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError("not a valid notebook (no list of cells)")
    for number, cell in enumerate(data["cells"], start=1):
        if not isinstance(cell, dict):
            raise ValueError(f"not a valid notebook (cell {number} is not an object)")
        kind = cell.get("cell_type")
        if kind not in ("code", "markdown", "raw"):
            raise ValueError(f"not a valid notebook (cell {number} has cell_type {kind!r})")
        source = cell.get("source", "")
        if not (isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
            raise ValueError(f"not a valid notebook (cell {number}'s source is a {type(source).__name__}, "
                             "not text)")
        if not isinstance(cell.get("metadata", {}), dict):
            raise ValueError(f"not a valid notebook (cell {number}'s metadata is not an object)")


def read_submission(path: Path):
    """The notebook at ``path``, or a ``ValueError`` saying why it cannot be read."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise ValueError("the file is missing" if not path.exists() else "it is not a file")
    size = path.stat().st_size
    if size == 0:
        raise ValueError("the file is empty")
    if size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"the file is {size / 2**20:.0f} MB; the grader reads notebooks up to "
                         f"{MAX_NOTEBOOK_BYTES / 2**20:.0f} MB (clear its outputs)")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not a valid notebook ({type(exc).__name__}: {str(exc)[:200]})") from None
    _check_cells(data)
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # not a notebook, a wrong format version
        raise ValueError(f"not a valid notebook ({type(exc).__name__}: {str(exc)[:200]})") from None
    return nb


def strip_magics(source: str) -> str:
    """``source`` with IPython magics and shell lines blanked (same line numbers), so :mod:`ast` can parse it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _top_level(nb):
    """``(statement, cell source)`` for every top-level statement of the notebook's parsable code cells."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = strip_magics(cell.source)
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            yield node, source


def defined_functions(nb) -> dict[str, str]:
    """``{name: source of the function}`` for every top-level function the notebook's code cells define."""
    return {node.name: ast.get_source_segment(source, node) or "" for node, source in _top_level(nb)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def library_imports(nb) -> dict[str, str]:
    """Names the notebook imports from course_lib at top level: ``{local name: original name}``."""
    return {alias.asname or alias.name: alias.name for node, _ in _top_level(nb)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_lib") for alias in node.names}


def guess_lesson(nb, table: dict[str, list[Exercise]]) -> Optional[str]:
    """The lesson whose exercise functions the notebook defines most of (None if none)."""
    defined = set(defined_functions(nb))
    scores = {lesson: len(defined & {e.function for e in exercises}) for lesson, exercises in table.items()}
    best = max(scores, key=scores.get, default=None)
    return best if best is not None and scores[best] > 0 else None


# ----------------------------------------------------------------------------- what the grader runs
def _calls_a_check(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            name = sub.func.attr if isinstance(sub.func, ast.Attribute) else getattr(sub.func, "id", "")
            if _CHECK_NAME.match(name or ""):
                return True
    return False


def _check_statements(body: list[ast.stmt]):
    """Statements in ``body`` (and in the bodies of its if/for/with/try blocks) that call a check."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue  # the learner's own functions are graded as written
        blocks = [getattr(node, name, None) for name in ("body", "orelse", "finalbody")]
        blocks += [h.body for h in getattr(node, "handlers", [])]
        blocks = [b for b in blocks if isinstance(b, list) and b and isinstance(b[0], ast.stmt)]
        if blocks:
            header = [getattr(node, name) for name in ("test", "iter", "items", "subject") if hasattr(node, name)]
            if any(_calls_a_check(h) if isinstance(h, ast.AST) else any(_calls_a_check(i) for i in h)
                   for h in header):
                yield node
            else:
                for block in blocks:
                    yield from _check_statements(block)
        elif _calls_a_check(node):
            yield node


def without_check_calls(source: str) -> str:
    """``source`` with every statement that calls a ``check_*`` function replaced by ``pass``.

    Only those statements go: an answer written in the same cell as its check call is kept. A
    cell that does not parse is returned unchanged (it will fail when run, costing what it breaks).
    """
    try:
        tree = ast.parse(strip_magics(source))
    except (SyntaxError, ValueError):
        return source
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def position(lineno: int, col: int) -> int:  # ast columns are UTF-8 byte offsets
        line = lines[lineno - 1] if lineno - 1 < len(lines) else ""
        return offsets[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8", errors="ignore"))

    spans = sorted(((position(n.lineno, n.col_offset), position(n.end_lineno, n.end_col_offset))
                    for n in _check_statements(tree.body)), reverse=True)
    for start, end in spans:
        source = source[:start] + "pass" + source[end:]
    return source


# ----------------------------------------------------------------------------- what the instructor should read
_SUSPICIOUS = {
    "sys._getframe": "inspects the interpreter's stack frames", "f_back": "inspects the interpreter's stack frames",
    "f_locals": "inspects the interpreter's stack frames", "currentframe": "inspects the interpreter's stack frames",
    "gc.get_objects": "searches the interpreter's memory", "get_referrers": "searches the interpreter's memory",
    "ctypes": "uses ctypes", "setprofile": "installs a profiler or tracer", "settrace": "installs a profiler or tracer",
    "__grader": "names the grader's recorder", "_sandbox": "names the grader's sandbox module",
    "course_lib.answers": "names the answer keys",
}


def suspicious(nb) -> list[str]:
    """Reasons to read a submission by hand: code that reaches into the interpreter or the grader."""
    text = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    return sorted({why for needle, why in _SUSPICIOUS.items() if needle in text})


# ----------------------------------------------------------------------------- answers copied from the library
def library_function(name: str):
    """The course_lib function of that name, if the library implements the exercise itself."""
    import importlib

    for module in ("losses", "evaluate", "distill", "hidden", "router.targets", "timing", "sequence",
                   "compress"):
        try:
            found = getattr(importlib.import_module(f"course_lib.{module}"), name, None)
        except ImportError:
            continue
        if callable(found):
            return found
    return None


def _normalised_body(source: str) -> str:
    """The function's body as an AST dump, without docstring, names of the function and its arguments."""
    try:
        node = ast.parse(textwrap.dedent(source)).body[0]
    except (SyntaxError, IndexError, ValueError):
        return ""
    body = node.body[1:] if (node.body and isinstance(node.body[0], ast.Expr)
                             and isinstance(node.body[0].value, ast.Constant)) else node.body
    return ast.dump(ast.Module(body=body, type_ignores=[]), annotate_fields=False)


def library_answer(source: str, function: str) -> Optional[str]:
    """Why the learner's ``source`` for ``function`` is the library's own answer, read from its text (or None).

    The sandbox also records, by identity, whether the function ran the library's code while it was
    checked (:func:`course_lib._sandbox.make_recorder`); this reading catches what is visible in the text.
    """
    import inspect

    reference = library_function(function)
    if reference is None or not source:
        return None
    try:
        tree = ast.parse(textwrap.dedent(source))
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_lib"):
            if any(alias.name == function for alias in node.names):
                return f"imports {function} from {node.module}"
        if isinstance(node, ast.Attribute) and node.attr == function:
            return f"calls the library's {function}"
    try:
        if _normalised_body(inspect.getsource(reference)) == _normalised_body(source):
            return f"is a copy of course_lib's {function}"
    except (OSError, TypeError):
        pass
    return None
