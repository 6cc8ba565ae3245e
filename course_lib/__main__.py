"""``python -m course_lib grade ...`` (grade a class's notebooks) and ``python -m course_lib nbgrader-export DIR``."""
import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"grade": "course_lib.grade", "nbgrader-export": "course_lib.nbgrader"}
    if not argv or argv[0] not in commands:
        print("usage: python -m course_lib {grade,nbgrader-export} ...  (add --help after a command)", file=sys.stderr)
        return 2
    import importlib

    return importlib.import_module(commands[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
