"""Grade a class of FAST-mode submissions of one lesson in the sandbox, with the lesson's cache warm, and time it.

    .venv/bin/python bench/grade.py [--lesson 02] [--jobs 2] [--count 30]

The class repeats a pattern of ten: 4 answer keys, 3 untouched exercise notebooks, and 3 answer keys
with one mistake (T² dropped from kd_loss). The warm-up (the solution notebook run once to fill the
grader's cache) is timed apart. Writes ``results/grade_bench.json``. Goal (issue 20): 30 lesson-02
submissions with ``--jobs 2`` in under 5 minutes on the 2-core machine.
"""
import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from course_lib import grade
from course_lib.config import REPO_ROOT, results_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lesson", default="02")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--count", type=int, default=30)
    args = parser.parse_args()
    solution = next((REPO_ROOT / "solutions").glob(f"{args.lesson}_*.ipynb"))
    exercise = REPO_ROOT / "exercises" / solution.name
    start = time.perf_counter()
    grade.warm_cache(args.lesson, REPO_ROOT / "solutions")
    warm = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.count):
            path = Path(tmp) / f"student{i:02d}.ipynb"
            if i % 10 < 4:
                shutil.copy(solution, path)
            elif i % 10 < 7:
                shutil.copy(exercise, path)
            else:
                path.write_text(solution.read_text().replace("return kl * temperature**2", "return kl"))
            paths.append(path)
        start = time.perf_counter()
        results = grade.grade(paths, lesson=args.lesson, jobs=args.jobs)
        seconds = time.perf_counter() - start
        book = grade.write_gradebook(results, Path(tmp) / "gradebook.csv")
        print(book.read_text())
    summary = {"lesson": args.lesson, "jobs": args.jobs, "submissions": len(paths), "seconds": round(seconds, 1),
               "seconds_per_submission": round(seconds / len(paths), 2), "warm_up_seconds": round(warm, 1),
               "goal_seconds": 300, "goal_met": seconds < 300, "sandboxed": True, "cpus": os.cpu_count(),
               "machine": platform.machine(), "command": "make bench (bench/grade.py --lesson 02 --jobs 2 --count 30)"}
    (results_dir() / "grade_bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"graded {len(paths)} submissions of lesson {args.lesson} with --jobs {args.jobs} in {seconds:.0f} s "
          f"({seconds / len(paths):.1f} s per submission; warm-up {warm:.0f} s, not counted); goal under 300 s: "
          f"{'met' if seconds < 300 else 'MISSED'}")


if __name__ == "__main__":
    main()
