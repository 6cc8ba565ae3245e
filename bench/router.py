"""Benchmark: the lesson 04 teacher (MiniLM + head) vs the n-gram student, in one run.

    .venv/bin/python bench/router.py [--texts 512] [--json results.json]

Both models are trained on the labelled archive (weights do not change speed), then
timed with ``router.benchmark_predict`` (warm-up, then the median of many calls) on the
same synthetic traffic emails, at batch 1 and batch 256, both on one CPU thread (the
teacher is also timed on all torch threads, for information). The teacher's embedding
cache is switched off so it does its real work. Also times the student's featurisation alone,
which is its bottleneck. The last lines are the ratios the lesson promises:
throughput at batch 256 (goal >= 300x), batch-1 latency, parameters (goal >= 100x).
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from course_lib import emails, router
from course_lib.config import seed_everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512, help="distinct test emails to cycle through")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    seed_everything(0)

    archive_texts, archive_labels = emails.texts_and_labels(emails.generate_emails(300, seed=0, style="archive"))
    texts, _ = emails.texts_and_labels(emails.generate_emails(args.texts, seed=2, style="traffic"))
    num_classes = len(emails.QUEUES)

    start = time.perf_counter()
    teacher = router.TextTeacher(num_classes, progress=False).fit(archive_texts, archive_labels)
    teacher.use_cache = False
    print(f"teacher loaded and fitted in {time.perf_counter() - start:.1f} s")
    student = router.NgramStudent(num_classes).fit(archive_texts, archive_labels, progress=False)

    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads; mean email length "
          f"{sum(len(t.split()) for t in texts) / len(texts):.0f} words")
    figures = {}
    # Headline: both models on one CPU thread (a fair per-core comparison, and stable when other
    # programs share the machine). Then the teacher on all torch threads, for information.
    plan = {  # name: (predict_fn, threads, {batch_size: (warmup, repeats)})
        "teacher": (teacher.predict_proba, 1, {1: (5, 30), 256: (2, 6)}),
        "student": (student.predict_proba, 1, {1: (20, 2000), 256: (5, 300)}),
        "student_featurize": (student.featurize, 1, {1: (20, 2000), 256: (5, 300)}),
        "teacher_all_threads": (teacher.predict_proba, torch.get_num_threads(), {1: (5, 30), 256: (2, 6)}),
    }
    for name, (fn, threads, batches) in plan.items():
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for batch_size, (warmup, repeats) in batches.items():
                stats = router.benchmark_predict(fn, texts, batch_size, warmup=warmup, repeats=repeats)
                figures[f"{name}@{batch_size}"] = stats
                print(f"{name:<20} {threads} thr, batch {batch_size:>3}: {stats['ms_per_email']:9.4f} ms/email "
                      f"{stats['emails_per_s']:>11,.0f} emails/s {stats['cpu_s_per_million']:>9,.0f} CPU-s/1M",
                      flush=True)
        finally:
            torch.set_num_threads(previous)

    figures["throughput_ratio"] = figures["student@256"]["emails_per_s"] / figures["teacher@256"]["emails_per_s"]
    figures["latency_ratio_batch1"] = figures["teacher@1"]["ms_per_email"] / figures["student@1"]["ms_per_email"]
    figures["param_ratio"] = teacher.num_parameters() / student.num_parameters()
    figures["params"] = {"teacher": teacher.num_parameters(), "student": student.num_parameters()}
    print(f"parameters: teacher {teacher.num_parameters():,}, student {student.num_parameters():,}")
    print(f"throughput ratio at batch 256: {figures['throughput_ratio']:,.0f}x (goal >= 300x)")
    print(f"latency ratio at batch 1:      {figures['latency_ratio_batch1']:,.0f}x")
    print(f"parameter ratio:               {figures['param_ratio']:,.0f}x (goal >= 100x)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
