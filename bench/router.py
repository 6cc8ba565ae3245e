"""Benchmark: the lesson 04 teacher (MiniLM + head) vs the n-gram student, in one run.

    .venv/bin/python bench/router.py [--texts 512] [--json results.json]

Both models are trained on the labelled archive (weights do not change speed), then
timed with ``timing.benchmark_interleaved`` (warm-up, then the median and IQR of many calls,
teacher and student alternating on the same batches so their ratio is stable) on the
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

from course_lib import emails, router, timing
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
    # programs share the machine), timed interleaved on the same batches so background load hits
    # both alike and their ratio is stable. Then the teacher on all torch threads, for information.
    plan = {1: (5, 30), 256: (2, 6)}  # batch size: (warm-up, timed calls)
    with timing.pinned_threads(1):
        for batch_size, (warmup, repeats) in plan.items():
            fns = {"teacher": teacher.predict_proba, "student": student.predict_proba,
                   "student_featurize": student.featurize}
            stats = timing.benchmark_interleaved(fns, texts, batch_size, warmup=warmup, repeats=repeats,
                                                 baseline="teacher")
            for name, row in stats.items():
                figures[f"{name}@{batch_size}"] = row
                print(f"{name:<20} 1 thr, batch {batch_size:>3}: {row['ms_per_email']:9.4f} ms/email "
                      f"(IQR {row['ms_per_email_iqr']:.4f}) {row['emails_per_s']:>11,.0f} emails/s "
                      f"{row['cpu_s_per_million']:>9,.0f} CPU-s/1M", flush=True)
    for batch_size, (warmup, repeats) in plan.items():
        row = timing.benchmark_predict(teacher.predict_proba, texts, batch_size, warmup=warmup, repeats=repeats)
        figures[f"teacher_all_threads@{batch_size}"] = row
        print(f"{'teacher_all_threads':<20} {torch.get_num_threads()} thr, batch {batch_size:>3}: "
              f"{row['ms_per_email']:9.4f} ms/email {row['emails_per_s']:>11,.0f} emails/s", flush=True)

    speedup = figures["student@256"]["speedup"]
    figures["throughput_ratio"] = speedup["median"]
    figures["throughput_ratio_q1_q3"] = [speedup["q1"], speedup["q3"]]
    figures["latency_ratio_batch1"] = figures["student@1"]["speedup"]["median"]
    figures["param_ratio"] = teacher.num_parameters() / student.num_parameters()
    figures["params"] = {"teacher": teacher.num_parameters(), "student": student.num_parameters()}
    print(f"parameters: teacher {teacher.num_parameters():,}, student {student.num_parameters():,}")
    print(f"throughput ratio at batch 256: {figures['throughput_ratio']:,.0f}x "
          f"(quartiles over batches {speedup['q1']:,.0f}-{speedup['q3']:,.0f}x; goal >= 300x)")
    print(f"latency ratio at batch 1:      {figures['latency_ratio_batch1']:,.0f}x")
    print(f"parameter ratio:               {figures['param_ratio']:,.0f}x (goal >= 100x)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
