"""One real run of the router tool on the course's synthetic emails, timed: ``results/router_tool.json``.

    .venv/bin/python bench/router_tool.py [--labelled 300] [--traffic 4000] [--route 50000]
                                          [--engine local] [--workers 1] [--out build/router_tool]

Writes the CSVs an engineer would bring (labelled emails with their queue, unlabelled traffic, a
fresh batch to route whose queues are known only to this script), then runs the two commands as
an engineer would, in subprocesses, and times them:

1. ``python -m course_lib.router build --labelled labelled.csv --traffic traffic.csv --out DIR``;
2. ``python -m course_lib.router route DIR incoming.csv --out routed.csv`` on ``--route`` emails;
3. ``route --cascade`` on the first 2,000 of them.

Each command runs with an empty cache of its own (``OUT/cache``), so the build's time is a first build's.
The routed labels are then compared with the known queues. ``python -m course_lib.report`` renders
the result into README.md and docs/results.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from course_lib import emails
from course_lib.config import REPO_ROOT, results_dir

CASCADE_ROWS = 2_000


def write_csv(path: Path, rows: list[emails.Email], with_label: bool) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"] if with_label else ["text"])
        for email in rows:
            writer.writerow([email.text, emails.QUEUES[email.label]] if with_label else [email.text])


def run(command: list[str], cache: Path) -> float:
    """Run one command of the tool (its output shown) with its own empty cache, return its wall-clock seconds."""
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "course_lib.router", *command], check=True, cwd=REPO_ROOT,
                   env={**os.environ, "COURSE_CACHE_DIR": str(cache)})
    return time.perf_counter() - start


def routed_accuracy(path: Path, truth: list[emails.Email]) -> dict:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if len(rows) != len(truth):
        raise SystemExit(f"{path}: {len(rows)} rows routed for {len(truth)} emails")
    right = sum(row["label"] == emails.QUEUES[email.label] for row, email in zip(rows, truth))
    escalated = sum(row["escalate"].lower() == "true" for row in rows)
    by_teacher = sum(row.get("answered_by") == "teacher" for row in rows)
    return {"rows": len(rows), "accuracy": right / len(rows), "escalated_share": escalated / len(rows),
            "teacher_share": by_teacher / len(rows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelled", type=int, default=300)
    parser.add_argument("--traffic", type=int, default=4_000)
    parser.add_argument("--route", type=int, default=50_000)
    parser.add_argument("--engine", default="local", choices=("local", "ray"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "router_tool")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    built = args.out / "router"
    if built.exists() or (args.out / "cache").exists():
        raise SystemExit(f"{args.out} holds an earlier run: remove it (or pass another --out) for a fresh, timed build")
    labelled = emails.generate_emails(args.labelled, seed=6, style="traffic")
    traffic = emails.generate_emails(args.traffic, seed=1, style="traffic")
    incoming = emails.generate_emails(args.route, seed=11, style="traffic")
    write_csv(args.out / "labelled.csv", labelled, with_label=True)
    write_csv(args.out / "traffic.csv", traffic, with_label=False)
    write_csv(args.out / "incoming.csv", incoming, with_label=False)
    write_csv(args.out / "incoming_head.csv", incoming[:CASCADE_ROWS], with_label=False)

    engine = ["--engine", args.engine, "--workers", str(args.workers)]
    cache = args.out / "cache"  # empty: the time is a first build's (nothing fitted or embedded before)
    build_s = run(["build", "--labelled", str(args.out / "labelled.csv"), "--traffic", str(args.out / "traffic.csv"),
                   "--out", str(built), *engine], cache)
    route_s = run(["route", str(built), str(args.out / "incoming.csv"), "--out", str(args.out / "routed.csv")], cache)
    cascade_s = run(["route", str(built), str(args.out / "incoming_head.csv"), "--out",
                     str(args.out / "routed_cascade.csv"), "--cascade"], cache)
    report = json.loads((built / "report.json").read_text(encoding="utf-8"))
    summary = {
        "command": " ".join(["python bench/router_tool.py", *(argv if argv is not None else sys.argv[1:])]),
        "sizes": {"labelled": args.labelled, "traffic": args.traffic, "route": args.route, "cascade": CASCADE_ROWS},
        "engine": args.engine, "workers": args.workers, "cpus": os.cpu_count(), "machine": platform.machine(),
        "fast": os.environ.get("COURSE_FAST", "0"),
        "build_seconds": round(build_s, 1), "route_seconds": round(route_s, 1),
        "route_emails_per_s": args.route / route_s, "cascade_seconds": round(cascade_s, 1),
        "routed": routed_accuracy(args.out / "routed.csv", incoming),
        "routed_cascade": routed_accuracy(args.out / "routed_cascade.csv", incoming[:CASCADE_ROWS]),
        "report": {key: report[key] for key in ("teacher", "student", "ece", "cascade", "throughput_ratio", "split",
                                                "scoring") if key in report},
    }
    (results_dir() / "router_tool.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(json.dumps({k: summary[k] for k in ("build_seconds", "route_seconds", "routed", "routed_cascade")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
