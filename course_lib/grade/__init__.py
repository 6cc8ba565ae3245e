"""Grade a class's exercise notebooks safely: ``python -m course_lib grade`` (for instructors).

The steps, one module each (nbgrader's preprocessors are the model):

1. :mod:`.points` - the **points table**, from ``solutions/`` only: each exercise is a
   ``### BEGIN SOLUTION`` block inside a function, and the check cell that calls
   ``check_<name>(<function>)`` after it; points from that cell's metadata ``{"course": {"points": 2}}``.
2. :mod:`.submissions` - **reading** a submission without running it: malformed notebooks become a
   row with a reason; the check calls are removed statement by statement (an answer in the same cell
   as its check call is kept); unique ids; code that reaches into the interpreter is flagged.
3. :mod:`.sandbox` - **running** it: a fresh kernel in a bubblewrap sandbox (no network, its own
   processes, only its own folder writable), a wall-clock deadline for the whole submission. The
   grader's first cell makes the recorder before the submission's code runs; after it, the recorder
   runs each check on the learner's function and writes the inputs' fingerprints, the outputs, the
   inputs changed in place and the course_lib code the function ran (:mod:`course_lib._sandbox`,
   the only grader code inside the kernel).
4. :mod:`.replay` - **judging** in this process: the same check, on the grader's own pristine
   inputs, against the recorded outputs. Checks that observe a call itself (:data:`KERNEL_JUDGED`)
   keep the kernel's verdict, flagged.
5. :mod:`.reports` - the **gradebook**, feedback and class report.

docs/teaching.md says what this defends against and what it does not; tests/test_grade.py and
tests/test_grade_attacks.py try each claim.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from ..config import REPO_ROOT
from .points import KERNEL_JUDGED, Exercise, exercises_from_solutions, points_table
from .replay import ExerciseResult, judge, ran_library_code
from .reports import (SubmissionResult, class_report, csv_cell, feedback_markdown, write_feedback,
                      write_gradebook)
from .sandbox import SandboxUnavailable, check_sandbox, run_in_kernel, warm_cache
from .submissions import (defined_functions, guess_lesson, library_answer, library_imports, read_submission,
                          student_id, student_ids, suspicious, without_check_calls)

__all__ = ["KERNEL_JUDGED", "Exercise", "ExerciseResult", "SandboxUnavailable", "SubmissionResult", "check_sandbox",
           "class_report", "csv_cell", "exercises_from_solutions", "feedback_markdown", "grade", "grade_submission",
           "guess_lesson", "judge", "library_answer", "main", "points_table", "read_submission", "student_id",
           "student_ids", "without_check_calls", "write_feedback", "write_gradebook"]


def grade_submission(path: Path, table: dict[str, list[Exercise]], lesson: Optional[str] = None,
                     timeout: float = 300.0, memory_mb: int = 16384, library_points: float = 0.0,
                     solutions: Optional[Path] = REPO_ROOT / "solutions", student: Optional[str] = None,
                     sandboxed: bool = True) -> SubmissionResult:
    """Grade one notebook; never raises. Every exercise of the lesson gets a row, with a reason when it earned nothing."""
    start = time.perf_counter()
    path = Path(path)
    sub = SubmissionResult(student or student_id(path), path, lesson)
    if not sandboxed:
        sub.flags.append("not sandboxed")
    try:
        nb = read_submission(path)
        sub.lesson = lesson or guess_lesson(nb, table)
    except ValueError as exc:
        nb, sub.problem = None, str(exc)
    if sub.lesson is None or sub.lesson not in table:
        sub.lesson = sub.lesson or (next(iter(table)) if len(table) == 1 else None)
        if not sub.problem:
            sub.problem = "no exercise of any lesson is defined in it"
    exercises = table.get(sub.lesson, [])
    if nb is None or sub.problem:
        sub.results = [ExerciseResult(e, "missing", sub.problem) for e in exercises]
        sub.seconds = time.perf_counter() - start
        return sub
    defined, imported = defined_functions(nb), library_imports(nb)
    sub.flags += [f"read by hand: {why}" for why in suspicious(nb)]
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        try:
            seed = warm_cache(sub.lesson, solutions, memory_mb=max(memory_mb, 16384),
                              sandboxed=sandboxed) if solutions else None
            records, problems, notes = run_in_kernel(nb, exercises, timeout, memory_mb, Path(tmp), seed, sandboxed)
        except Exception as exc:  # the grader's own machinery failed: report, never crash the class
            records, problems, notes = {}, {k: f"grading failed ({type(exc).__name__}: {exc})"
                                            for k in range(len(exercises))}, []
    sub.problem = "; ".join(notes)
    for k, exercise in enumerate(exercises):
        if exercise.function not in defined and imported.get(exercise.function) != exercise.function:
            result = ExerciseResult(exercise, "missing", f"`{exercise.function}` is not defined in the notebook")
        elif k in records:
            result = judge(exercise, records[k])
        else:
            result = ExerciseResult(exercise, "failed", problems.get(k, "not checked"))
        copied = (f"imports {exercise.function} from course_lib" if imported.get(exercise.function) == exercise.function
                  else library_answer(defined.get(exercise.function, ""), exercise.function)
                  or (ran_library_code(exercise, records[k]) if k in records else None))
        if copied:
            result.flags.append(f"library answer: {copied}")
        if result.status == "passed":
            result.points = exercise.points * (library_points if copied else 1.0)
        sub.results.append(result)
    sub.seconds = time.perf_counter() - start
    return sub


def grade(paths: Sequence[Path], lesson: Optional[str] = None, timeout: float = 300.0, memory_mb: int = 16384,
          library_points: float = 0.0, jobs: int = 1, solutions: Path = REPO_ROOT / "solutions",
          progress: bool = True, sandboxed: bool = True) -> list[SubmissionResult]:
    """Grade every submission (one fresh kernel each, ``jobs`` at a time), in the order given.

    Raises :class:`SandboxUnavailable` (saying how to fix it) when ``sandboxed`` and bubblewrap cannot be used.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    if sandboxed:
        check_sandbox()
    table = exercises_from_solutions(solutions)
    if lesson is not None:
        lesson = f"{int(lesson):02d}"
        if lesson not in table:
            raise ValueError(f"no exercises for lesson {lesson} in {solutions}")
        table = {lesson: table[lesson]}
    ids = student_ids(paths)

    def one(item):
        path, student = item
        return grade_submission(Path(path), table, lesson, timeout, memory_mb, library_points, solutions,
                                student, sandboxed)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(tqdm(pool.map(one, zip(paths, ids)), total=len(ids), desc="grading", unit="notebook",
                         disable=not progress))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m course_lib grade SUBMISSION.ipynb ... --csv gradebook.csv [--feedback DIR] ...``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_lib grade", description="Grade exercise notebooks safely.")
    parser.add_argument("submissions", nargs="*", type=Path)
    parser.add_argument("--csv", type=Path, help="the gradebook to write (required to grade)")
    parser.add_argument("--list", action="store_true", help="print the points table (from solutions/) and stop")
    parser.add_argument("--feedback", type=Path, help="folder for per-student feedback and the class report")
    parser.add_argument("--lesson", help="lesson number (default: guessed from each notebook's functions)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="wall-clock seconds per submission, everything included (default 300)")
    parser.add_argument("--memory-mb", type=int, default=16384,
                        help="virtual-memory limit of each kernel in MB (default 16384; torch reserves several GB)")
    parser.add_argument("--library-points", type=float, default=0.0,
                        help="share of the points for an answer that uses the library's own function (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="kernels at once (default 1)")
    parser.add_argument("--solutions", type=Path, default=REPO_ROOT / "solutions")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run kernels without bubblewrap (nothing is contained; every row is marked)")
    args = parser.parse_args(argv)
    if args.list:
        print(points_table(exercises_from_solutions(args.solutions)))
        return 0
    if not args.submissions or args.csv is None:
        parser.error("give the submissions to grade and --csv GRADEBOOK (or --list)")
    for folder, what in ((args.csv, "--csv"),):
        if folder.is_dir():
            print(f"error: {what} {folder} is a folder: give the gradebook a file name", file=sys.stderr)
            return 2
    if args.feedback is not None and args.feedback.exists() and not args.feedback.is_dir():
        print(f"error: --feedback {args.feedback} is a file: give a folder", file=sys.stderr)
        return 2
    try:
        results = grade(args.submissions, args.lesson, args.timeout, args.memory_mb, args.library_points, args.jobs,
                        args.solutions, sandboxed=not args.no_sandbox)
    except (ValueError, SandboxUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        write_gradebook(results, args.csv)
    except (OSError, ValueError) as exc:  # the folder vanished or became a file while grading
        fallback = Path(tempfile.mkdtemp(prefix="course-gradebook-")) / "gradebook.csv"
        write_gradebook(results, fallback)
        print(f"error: could not write {args.csv} ({exc}); the gradebook is in {fallback}", file=sys.stderr)
        return 1
    print(f"gradebook: {args.csv}")
    if args.feedback:
        write_feedback(results, args.feedback)
        print(f"feedback and class report: {class_report(results, args.feedback)}")
    for sub in results:
        best = sum(r.exercise.points for r in sub.results)
        print(f"{sub.student:<24} {sub.total:g}/{best:g}" + (f"  ({sub.problem})" if sub.problem else ""))
    return 0
