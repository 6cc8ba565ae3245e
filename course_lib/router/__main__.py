"""``python -m course_lib.router build|route``: the router tool's command line (the work is in :mod:`.tool`).

    python -m course_lib.router build --labelled LABELLED.csv --traffic TRAFFIC.csv --out DIR
           [--text-column text] [--label-column label] [--teacher auto|frozen|fine-tuned]
           [--engine local|ray] [--workers N] [--seed 0]
    python -m course_lib.router route DIR INPUT.csv --out OUTPUT.csv [--cascade] [--text-column text]

Bad input (a CSV error, a missing file, a folder that is not a build) prints one line ``error: ...`` and
exits with status 2, nothing written. ``COURSE_ROUTER_SHARD_ROWS`` sets the traffic rows per score shard
(default 1,000).
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def parser() -> argparse.ArgumentParser:
    """The two subcommands and exactly the issue's flags."""
    top = argparse.ArgumentParser(prog="python -m course_lib.router",
                                  description="Distil your own email router (build) and use it (route).")
    commands = top.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="teacher, traffic scores, student, report, model card into DIR")
    build.add_argument("--labelled", required=True, metavar="LABELLED.csv", help="CSV: a text and a label column")
    build.add_argument("--traffic", required=True, metavar="TRAFFIC.csv", help="CSV: a text column, unlabelled")
    build.add_argument("--out", required=True, metavar="DIR", help="folder to write (created)")
    build.add_argument("--text-column", default="text")
    build.add_argument("--label-column", default="label")
    build.add_argument("--teacher", choices=("auto", "frozen", "fine-tuned"), default="auto",
                       help="auto: both recipes fitted, the better on validation kept")
    build.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="how the teacher scores the traffic (ray: Ray Data; RAY_ADDRESS picks a cluster)")
    build.add_argument("--workers", type=_positive, default=1, metavar="N", help="scoring workers (Ray actors)")
    build.add_argument("--seed", type=int, default=0, help="seed of the train/validation/test split")
    route = commands.add_parser("route", help="answer a CSV of emails with the student built in DIR")
    route.add_argument("dir", metavar="DIR", help="a folder written by build")
    route.add_argument("input", metavar="INPUT.csv", help="CSV with a text column")
    route.add_argument("--out", required=True, metavar="OUTPUT.csv")
    route.add_argument("--cascade", action="store_true", help="the teacher answers the rows the student is unsure of")
    route.add_argument("--text-column", default="text")
    return top


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {raw!r}")
    return value


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one subcommand; a ``ValueError`` or missing file is one ``error:`` line and exit status 2."""
    args = parser().parse_args(argv)
    from . import tool

    try:
        if args.command == "build":
            tool.build(args.labelled, args.traffic, args.out, text_column=args.text_column,
                       label_column=args.label_column, teacher=args.teacher, engine=args.engine,
                       workers=args.workers, seed=args.seed)
        else:
            tool.route(args.dir, args.input, args.out, cascade=args.cascade, text_column=args.text_column)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
