"""Grade a class of 10 submissions of one lesson (FAST mode, as the grader runs them) and print the time.

    .venv/bin/python bench/grade.py [--lesson 02] [--jobs 2]

The class: 4 answer keys, 3 untouched exercise notebooks, and 3 answer keys with one mistake each
(T² dropped from kd_loss). The issue's goal: a whole class of 10 in under 3 minutes on the 2-core machine.
"""
import argparse
import shutil
import tempfile
import time
from pathlib import Path

from course_lib import grade
from course_lib.config import REPO_ROOT


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lesson", default="02")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    solution = next((REPO_ROOT / "solutions").glob(f"{args.lesson}_*.ipynb"))
    exercise = REPO_ROOT / "exercises" / solution.name
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(10):
            path = Path(tmp) / f"student{i:02d}.ipynb"
            if i < 4:
                shutil.copy(solution, path)
            elif i < 7:
                shutil.copy(exercise, path)
            else:
                path.write_text(solution.read_text().replace("return kl * temperature**2", "return kl"))
            paths.append(path)
        start = time.perf_counter()
        results = grade.grade(paths, lesson=args.lesson, jobs=args.jobs)
        seconds = time.perf_counter() - start
        book = grade.write_gradebook(results, Path(tmp) / "gradebook.csv")
        print(book.read_text())
    print(f"graded {len(paths)} submissions of lesson {args.lesson} with --jobs {args.jobs} in {seconds:.0f} s "
          f"({seconds / len(paths):.1f} s per submission)")


if __name__ == "__main__":
    main()
