"""Render the course's results from ``results/*.json`` (no number typed by hand).

    python -m course_lib.report          # rewrite docs/results.md and README.md's summary table
    python -m course_lib.report --check  # exit 1 if either is not what the results give

The full-mode notebooks write ``results/lessonNN.json`` (and ``make course`` writes
``results/course_timings.json``). :func:`render` turns them into the full tables of
``docs/results.md``; :func:`summary` into the one-row-per-lesson table placed in README.md
between ``<!-- results:begin -->`` and ``<!-- results:end -->``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from . import evaluate
from .config import REPO_ROOT

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _load(name: str, root: Path) -> dict | None:
    path = root / "results" / name
    return json.loads(path.read_text()) if path.exists() else None


def format_mean_std(values, scale: float = 1.0, digits: int = 1) -> str:
    """``"mean ± std"`` of per-seed numbers times ``scale`` (:func:`course_lib.evaluate.mean_std`), or the single value."""
    values = [scale * float(v) for v in values]
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    mean, std = evaluate.mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def lesson02(r: dict) -> str:
    seeds = len(r["baseline_errors"])
    views = r.get("views", 1)
    schedule = (f"soft-target student and control: {r['epochs']} epochs over {views} jittered copies of the "
                f"transfer set; baseline: {r.get('baseline_epochs', '?')} epochs on the plain set" if views > 1
                else f"{r.get('epochs', '?')} epochs per student")
    alpha = f", alpha={r['alpha']:g}" if "alpha" in r else ""
    lines = [
        f"**Lesson 02, Hinton distillation on MNIST** (`results/lesson02.json`; test errors out of 10,000, "
        f"mean ± std over {seeds} seeds; {schedule}; notebook run time "
        f"{r['seconds'] / 60:.1f} min on {r.get('device_name', r.get('device', '?'))}):",
        "",
        "| model | ours | Hinton et al. 2015 |",
        "|---|---:|---:|",
        f"| teacher ({r.get('teacher_description', 'CNN')}) | {r['teacher_errors']} | 67 (1200-1200 MLP, dropout, jitter) |",
        f"| 800-800 baseline (hard labels, no teacher) | {format_mean_std(r['baseline_errors'])} | 146 |",
    ]
    if "control_errors" in r:
        seeds_note = ", seed 0" if len(r["control_errors"]) == 1 else ""
        lines.append(f"| 800-800 student, hard labels on the jittered copies (control{seeds_note}) | "
                     f"{format_mean_std(r['control_errors'])} | - |")
    lines.append(f"| 800-800 soft-target student, T={r['temperature']:g}{alpha} | "
                 f"{format_mean_std(r['soft_target_errors'])} | 74 |")
    if "chosen_temperature" in r:
        small = r["small_student_test_errors"]
        t_small = r["chosen_temperature"]["30-30"]
        lines += [
            "",
            f"T and alpha were chosen on the validation split (seed 0, {r.get('sweep_epochs', '?')} epochs per "
            f"setting): T={r['chosen_temperature']['800-800']:g} and alpha={r['alpha']:g} for the 800-800 student, "
            f"T={t_small:g} for the 30-30 student, which then made {small[str(t_small)]} test errors "
            f"(baseline: {small['baseline']}).",
        ]
    om = r.get("omitted3")
    if om:
        lines += [
            "",
            f"Omitted digit 3 (no 3 in the transfer set): {om['threes_right_before_pct']:.1f}% of test 3s right "
            f"before, {om['threes_right_after_pct']:.1f}% after raising the class-3 bias by {om['bias']:.2f} on average"
            + (f" (per seed {', '.join(f'{b:g}' for b in om['biases'])})" if "biases" in om else "")
            + "; the bias is chosen on the validation split (the paper's 3.5 was tuned on test: 98.6% of 3s right).",
        ]
    few = r.get("few_labels")
    if few:
        lines += [
            "",
            f"Few labels ({few['fraction'] * 100:g}% of the transfer set, {few['n']} images): baseline "
            f"{format_mean_std(few['baseline_errors'])} test errors, soft-target student "
            f"{format_mean_std(few['soft_target_errors'])}.",
        ]
    return "\n".join(lines)


def lesson04(r: dict) -> str:
    target_temperature = r.get("target_temperature", r.get("temperature", "?"))
    rows = [("teacher", r.get("teacher_label", "MiniLM teacher")), ("baseline", "baseline: labelled emails only"),
            ("hard_pseudo_labels", "hard pseudo-labels: the teacher's top queue on traffic"),
            ("soft_targets", f"soft targets: the teacher's probabilities on traffic (target temperature {target_temperature})")]
    sizes = r.get("sizes", {})
    labelled = sizes.get("archive", "?")
    if sizes.get("labelled_recent"):
        labelled = f"{sizes['archive']} archive + {sizes['labelled_recent']} recent"
    lines = [
        f"**Lesson 04, the email router** (`results/lesson04.json`; synthetic emails: {labelled} labelled, "
        f"{sizes.get('traffic', '?'):,} unlabelled traffic, {sizes.get('test', '?'):,} test; "
        "timings on one CPU thread: median (first-third quartile)):",
        "",
        "| model | test accuracy | paraphrased emails | agrees with teacher | parameters | ms/email, batch 1 "
        "| emails/s, batch 256 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    nan = float("nan")
    for key, label in rows:
        m = r.get(key)
        if m:
            lines.append(f"| {label} | {m['accuracy'] * 100:.1f}% | {m.get('accuracy_paraphrased', nan) * 100:.1f}% "
                         f"| {m.get('agreement_with_teacher', nan) * 100:.1f}% | {m['params']:,} "
                         f"| {_spread(m, 'ms_per_email_batch1', '.2f')} | {_spread(m, 'emails_per_s', ',.0f')} |")
    ratio = f"{r['throughput_ratio']:,.0f}x at batch 256"
    if "throughput_ratio_q1" in r:
        ratio = ("timed interleaved on the same batches: " + ratio
                 + f" (quartiles over batches {r['throughput_ratio_q1']:,.0f}-{r['throughput_ratio_q3']:,.0f}x)")
    lines += ["", f"Soft-target student's throughput / teacher's, {ratio}"
                  + (f", {r['latency_ratio_batch1']:,.0f}x lower latency at batch 1"
                     if "latency_ratio_batch1" in r else "")
                  + f"; teacher parameters / student's: {r['param_ratio']:,.0f}x."]
    seeds = r.get("soft_vs_hard_over_seeds")
    if seeds:
        lines += ["", f"Soft targets against hard pseudo-labels, paired McNemar test on the test emails over seeds "
                      f"{[row['seed'] for row in seeds['rows']]}: {seeds['verdict']}"]
    cal = r.get("teacher_calibration_validation")
    if cal:
        t = cal["fitted_temperature"]
        lines += ["", f"Teacher's calibration on validation ({cal['bins']} bins): mean top probability "
                      f"{cal['mean_confidence'] * 100:.1f}% against {cal['accuracy'] * 100:.1f}% accuracy, ECE "
                      f"{cal['ece']:.3f}, {cal['ece_after_fit']:.3f} after a fitted temperature of {t:.2f}: "
                      f"{evaluate.confidence_verdict(t)} by the log-loss it minimises."]
    curves = r.get("transfer_size_curves")
    if curves:
        sizes = curves["sizes"]
        hard = curves.get("hard pseudo-labels")
        lines += ["", "Test accuracy (%) by the number of traffic emails the student learns from "
                      "(`transfer_size_curves`):", "",
                  "| student | " + " | ".join(f"{n:,}" for n in sizes) + " |",
                  "|---|" + "---:|" * len(sizes)]
        for name, accs in curves.items():
            if name != "sizes":
                lines.append(f"| {name} | " + " | ".join(f"{100 * a:.1f}" for a in accs) + " |")
        for name, accs in curves.items():
            if hard and name.startswith("soft targets"):
                lines.append(f"| {name} minus hard pseudo-labels (points) | "
                             + " | ".join(f"{100 * (a - h):+.1f}" for a, h in zip(accs, hard)) + " |")
    return "\n".join(lines)


def _spread(m: dict, key: str, fmt: str) -> str:
    """``m[key]``, with its quartiles ``m[key + "_q1"]``-``m[key + "_q3"]`` where the record has them."""
    value = format(m.get(key, float("nan")), fmt)
    if f"{key}_q1" in m and f"{key}_q3" in m:
        value += f" ({format(m[key + '_q1'], fmt)}-{format(m[key + '_q3'], fmt)})"
    return value


#: Lesson 03's table order (the notebook's ``hidden.METHODS``).
LESSON03_ORDER = ["baseline", "soft targets", "hint+KD", "AT+KD", "cosine+KD", "RKD+KD"]


def _latency_ms(m: dict) -> str:
    """Median latency, with its interquartile range where the record has one."""
    iqr = m.get("latency_ms_iqr")
    return f"{m['latency_ms_per_batch']:.2f}" + (f" ({iqr[0]:.2f}-{iqr[1]:.2f})" if iqr else "")


def lesson03(r: dict) -> str:
    """Markdown for lesson 03: test and shifted-test accuracy per method, parameters and latency (median, IQR)."""
    regime, teacher = r["regime"], r["teacher"]
    seeds = len(r["seeds"])
    batch = r.get("latency_batch_size", 256)
    latency_device = r.get("latency", {}).get("device", "cpu").upper()
    latency_what = ", median (IQR)" if "latency_ms_iqr" in teacher else ""
    lines = [
        f"**Lesson 03, hidden-state distillation** (`results/lesson03.json`; {regime['description']}; "
        f"test accuracy in %, mean ± std over {seeds} seeds; {regime['epochs']} epochs per student, "
        f"T = {regime['temperature']:g}, alpha = {regime['alpha']:g}, hidden-state weights chosen on validation; "
        f"notebook run time {r['seconds'] / 60:.1f} min on {r.get('device_name', '?')}):",
        "",
        f"| model | test accuracy | shifted test accuracy (≤ {regime['max_shift_px']} px) | parameters | "
        f"{latency_device} ms / batch of {batch}{latency_what} |",
        "|---|---:|---:|---:|---:|",
        f"| teacher (CNN) | {100 * teacher['test_accuracy']:.2f} | {100 * teacher['shifted_test_accuracy']:.2f} | "
        f"{teacher['params']:,} | {_latency_ms(teacher)} |",
    ]
    for method in LESSON03_ORDER:
        m = r["methods"].get(method)
        if m is None:
            continue
        beta = f" (beta = {m['beta']:g})" if m.get("beta") is not None else ""
        lines.append(f"| student: {method}{beta} | {format_mean_std(m['test_accuracy'], 100, 2)} | "
                     f"{format_mean_std(m['shifted_test_accuracy'], 100, 2)} | "
                     f"{m['params']:,} | {_latency_ms(m)} |")
    return "\n".join(lines)


LESSON07_NAMES = {"student_ground_truth": "ground truth", "student_token_kd": "token KD",
                  "student_sequence_kd": "sequence KD", "student_sequence_kd_longer": "sequence KD, longer prompts",
                  "student_token_and_sequence_kd": "token + sequence KD", "student_on_policy_kd": "on-policy KD"}


def lesson07(r: dict) -> str:
    task, acc, per_seed = r["task"], r["accuracy_by_length"], r.get("accuracy_by_length_per_seed", {})
    train = task["train_lengths"]
    beyond = task.get("verdict_lengths") or [k for k in task["test_lengths"] if k > max(train)]
    untrained = task.get("beyond_every_training_length", [])
    shown = [k for k in (1, max(train), max(train) + 1, max(beyond), max(task["test_lengths"])) if k in task["test_lengths"]]
    shown = list(dict.fromkeys(shown))
    settings = {"student_token_kd": f" (T = {r['temperature']['chosen']:g})",
                "student_token_and_sequence_kd": f" (T = {r['temperature']['chosen']:g})"}
    if "beta" in r:
        settings["student_on_policy_kd"] = f" (beta = {r['beta']['chosen']:g})"
    names = {"teacher": "teacher", **{m: f"student: {n}{settings.get(m, '')}" for m, n in LESSON07_NAMES.items()}}

    def cell(model: str, keys) -> str:
        seeds = per_seed.get(model)
        if seeds:
            return format_mean_std([statistics.mean(seed[str(k)] for k in keys) for seed in seeds], scale=100)
        return f"{100 * statistics.mean(acc[model][str(k)] for k in keys):.1f}"

    params = r["parameters"]
    labelled = (f"{task['n_labelled']:,} labelled rows and {task['n_unlabelled_prompts']:,} unlabelled prompts per set"
                if "n_labelled" in task else f"{task['n_train']:,} rows")
    lines = [
        f"**Lesson 07, distilling a sequence model** (`results/lesson07.json`; {task['description']}; labelled "
        f"chains of {min(train)}-{max(train)} hops, {labelled}; test exact match in %, mean ± std over "
        f"{len(r['seeds'])} seeds; teacher {params['teacher']:,} parameters, students {params['student']:,} "
        f"({params['teacher'] / params['student']:.1f}x fewer); notebook run time {r['seconds'] / 60:.1f} min on "
        f"{r['device']} ({r['threads']} thread{'s' if r['threads'] != 1 else ''})):",
        "",
        "| model | " + " | ".join(f"k={k}" for k in shown) + f" | mean k={beyond[0]}-{beyond[-1]} |"
        + (f" mean k={untrained[0]}-{untrained[-1]} (longer than any training chain) |" if untrained else ""),
        "|---|" + "---:|" * (len(shown) + 1 + bool(untrained)),
    ]
    for model, name in names.items():
        if model in acc:
            lines.append(f"| {name} | " + " | ".join(cell(model, [k]) for k in shown) + f" | {cell(model, beyond)} |"
                         + (f" {cell(model, untrained)} |" if untrained else ""))
    if "verdict" in r:
        within = r["within_2_points_of_teacher"]
        lines += ["", f"Verdict (paired t-intervals over the seeds, k={beyond[0]}-{beyond[-1]}): {r['verdict']}. "
                  f"Teacher wrong on {100 * r['teacher_error_rate']['prompts_long']:.2f}% of the longer prompts. "
                  "Longest chain length within 2 points of the teacher: "
                  + ", ".join(f"{LESSON07_NAMES[m]} {k}" for m, k in within.items()) + "."]
    lat, tps = r["latency_ms_per_answer"], r["tokens_per_second"]
    lines += ["", f"Cost: {lat['student']['median']:.1f} ms per {lat['steps']}-step answer for a student against "
              f"{lat['teacher']['median']:.1f} ms for the teacher ({r['speedup']['latency']:.1f}x); "
              f"{tps['student']:,.0f} against {tps['teacher']:,.0f} tokens/s at batch {tps['batch']} "
              f"({r['speedup']['throughput']:.1f}x)."]
    return "\n".join(lines)


def lesson05(r: dict) -> str:
    router, mnist, cascade, ece = r["router"], r["mnist"], r["router"]["cascade"], r["router"]["ece"]
    mc = router["mcnemar"]
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    lines = [
        f"**Lesson 05, judging the student** (`results/lesson05.json`; the router's soft-target student against its "
        f"teacher on the test emails; notebook run time {r['seconds'] / 60:.1f} min with lesson 04's teacher and "
        "embeddings cached):",
        "",
        "| measure | value |",
        "|---|---|",
        f"| agreement with the teacher (top-2) | {pct(router['agreement'])} ({pct(router['topk_agreement']['2'])}) |",
        f"| McNemar: student-only vs teacher-only errors | {mc['student_only_errors']} vs {mc['teacher_only_errors']}, "
        f"p = {router['mcnemar_p']:.2g} |",
        f"| cascade, threshold {cascade['threshold']:.3f} chosen on validation | test accuracy {pct(cascade['accuracy'])} "
        f"(teacher {pct(cascade['teacher_accuracy'])}, student alone {pct(cascade['student_accuracy'])}); the teacher "
        f"reads {pct(cascade['share_to_teacher'])} of emails; {cascade['cpu_s_per_million']:,.0f} CPU-s per million |",
        f"| ECE ({ece['n_bins']} bins), before → after temperature scaling | teacher {ece['teacher']:.4f} → "
        f"{ece['teacher_scaled']:.4f}; soft-target student {ece['student']:.4f} → {ece['student_scaled']:.4f}; "
        f"hard-pseudo-label student {ece['hard_pseudo_labels']:.4f} → {ece['hard_pseudo_labels_scaled']:.4f} |",
        f"| escalation emails ({router['needs_person']['emails']}) flagged as needing a person | none: neither model "
        "has such an output |",
    ]
    if "needs_person_share_to_teacher" in cascade:
        lines.append(f"| sent to the teacher by the cascade | {pct(cascade['needs_person_share_to_teacher'])} of the "
                     f"emails that need a person, {pct(cascade['edge_share_to_teacher'])} of all edge cases "
                     f"(ordinary test emails: {pct(cascade['share_to_teacher'])}) |")
    lines.append(f"| MNIST (a shorter schedule than lesson 02's, {mnist['student_epochs']} epochs on the plain transfer "
                 f"set): test errors teacher / soft-target / baseline | {mnist['teacher_errors']} / "
                 f"{mnist['student_errors']} / {mnist['baseline_errors']} |")
    lines += ["", "The model card written from these numbers: [results/model_card_router.md](results/model_card_router.md)."]
    return "\n".join(lines)


def lesson06(r: dict) -> str:
    mnist, router = r["mnist"], r["router"]
    lines = [
        f"**Lesson 06, the optimisation stack** (`results/lesson06.json`; MNIST test set, latency per batch on "
        f"{r['threads']} CPU thread{'s' if r['threads'] != 1 else ''}, all models timed in the same run; notebook run "
        f"time {r['seconds'] / 60:.1f} min):",
        "",
        "| model | test errors | file (bytes) | gzip (bytes) | ms at batch 1 | ms at batch 256 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in mnist["rows"]:
        lines.append(f"| {row['model']} | {row['test_errors']} | {row['bytes']:,} | {row['gzip_bytes']:,} | "
                     f"{row['ms_batch1']:.3f} | {row['ms_batch256']:.2f} |")
    lines += ["", f"Chosen on validation: {mnist['chosen_on_validation']}. The fp32 student against its int8 copy: "
              f"{mnist['size_ratio']:.2f}x smaller, {mnist['accuracy_drop_points']:.2f} points of test accuracy lost. "
              f"Router: the int8 ONNX student gives the fp32 student's answer on {100 * router['int8_argmax_agreement']:.1f}% "
              f"of test emails at {router['throughput_ratio_model_only']:.2f}x PyTorch eager's throughput at batch 256 "
              f"(model only; {router['throughput_ratio_end_to_end']:.2f}x with featurisation)"
              + (_cpu_note(router["cpu"]) if "cpu" in router else "") + "."]
    if "student_params" in mnist:
        lines += ["", f"The MNIST student (lesson 02's 800-800 MLP) has {mnist['student_params']:,} parameters, its CNN "
                      f"teacher {mnist['teacher_params']:,} ({mnist['student_params'] / mnist['teacher_params']:.1f}x)."]
    return "\n".join(lines)


def _cpu_note(cpu: dict) -> str:
    """The CPU flags that decide whether int8 kernels can be fast, as recorded by lesson 06."""
    flags = cpu.get("flags", {})
    if not flags:
        return f", on a CPU whose flags were not readable ({cpu.get('model', 'unknown')})"
    have = [f for f, present in flags.items() if present]
    lacks = [f for f, present in flags.items() if not present]
    return (f", on {cpu.get('model', 'a CPU')} with {', '.join(have) or 'none of them'}"
            + (f" and without {', '.join(lacks)}" if lacks else ""))


def router_tool(r: dict) -> str:
    """The router tool's timed run on the course's synthetic emails (``bench/router_tool.py``)."""
    rep, sizes = r["report"], r["sizes"]
    t, s, c = rep["teacher"], rep["student"], rep["cascade"]
    engine = r["engine"] + (f", {r['workers']} workers" if r["engine"] == "ray" else "")
    return "\n".join([
        f"**The router tool** (`results/router_tool.json`, `{r['command']}`: {sizes['labelled']:,} labelled and "
        f"{sizes['traffic']:,} traffic emails written to CSV; {r['cpus']} CPU cores, scoring engine {engine}):", "",
        "| step | result |", "|---|---|",
        f"| `build` | {r['build_seconds'] / 60:.1f} min; {t['kind']} teacher, test accuracy "
        f"{100 * t['test_accuracy']:.1f}%; student {100 * s['test_accuracy']:.1f}% (agreement "
        f"{100 * s['agreement_with_teacher']:.1f}%), {rep['throughput_ratio']:,.0f}x the teacher's throughput |",
        f"| cascade threshold (chosen on validation) | {c['threshold']:.3f}: {100 * c['share_to_teacher']:.1f}% of the "
        "test emails go to the teacher |",
        f"| `route` {sizes['route']:,} new emails | {r['route_seconds']:.1f} s ({r['route_emails_per_s']:,.0f} emails/s), "
        f"{100 * r['routed']['accuracy']:.1f}% routed to their true queue |",
        f"| `route --cascade` on {sizes['cascade']:,} of them | {r['cascade_seconds']:.1f} s, "
        f"{100 * r['routed_cascade']['accuracy']:.1f}% right, {100 * r['routed_cascade']['teacher_share']:.1f}% "
        "answered by the teacher |",
    ] + _cascade_note(rep))


def _cascade_note(rep: dict) -> list[str]:
    """When the cascade escalates nothing, say why, from the numbers (validation against test)."""
    c, s, t, split = rep["cascade"], rep["student"], rep["teacher"], rep.get("split", {})
    if c["share_to_teacher"] > 0 or "target_accuracy" not in c:
        return []
    gap = 100 * (t["test_accuracy"] - s["test_accuracy"])
    note = (f"The cascade escalates nothing: on the {split.get('validation', '?')} validation emails the student alone "
            f"reached {100 * c['validation_accuracy']:.1f}%, not below the teacher's {100 * c['target_accuracy']:.1f}%")
    if gap <= 0:
        return ["", note + f", and on the {split.get('test', '?')} test emails it is not below the teacher either."]
    return ["", note + f", yet on the {split.get('test', '?')} test emails it is {gap:.1f} points below the teacher: "
                "a few dozen validation emails cannot set a threshold (label more, or choose the threshold by hand "
                "from the cascade curve in `report.md`)."]


LESSON08_NAMES = {"labels_only": "labels only", "embedding_regression": "embedding regression", "listwise_kd": "listwise KD"}


def lesson08(r: dict) -> str:
    teacher, students, seeds = r["teacher"], r["students"], r["seeds"]
    sizes = r["sizes"]

    def spread(s: dict, metric: str, scale: float = 100.0) -> str:
        return format_mean_std([scale * v for v in s[f"{metric}_per_seed"]], digits=1 if scale == 100 else 3)

    lines = [
        f"**Lesson 08, distilling a ranker** (`results/lesson08.json`; {sizes['test_queries']:,} test queries against a "
        f"held-out archive of {sizes['archive']:,} emails, students trained on {sizes['train']:,} emails; mean ± std over "
        f"{len(seeds)} seeds; listwise KD at T = {r['listwise']['temperature']:g} over lists of {r['listwise']['list_size']}, "
        f"chosen on validation; timings on one CPU thread; notebook run time {r['seconds'] / 60:.1f} min):",
        "",
        "| ranker | recall@10 same queue (%) | nDCG@10 vs teacher | top-10 overlap (%) | Spearman | emails/s | "
        f"query ms ({sizes['latency_archive']:,} archive) | index MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| teacher ({teacher['name']}) | {100 * teacher['recall_at_10']:.1f} | 1 | 100 | 1 | {teacher['emails_per_s']:,.0f} | "
        f"{teacher['query_ms']:.2f} | {teacher['index_bytes'] / 1e6:.1f} |",
    ]
    for key, name in LESSON08_NAMES.items():
        s = students[key]
        lines.append(f"| student: {name} | {spread(s, 'recall_at_10')} | {spread(s, 'ndcg_at_10', 1.0)} | "
                     f"{spread(s, 'topk_overlap_10')} | {spread(s, 'spearman', 1.0)} | {s['emails_per_s']:,.0f} | "
                     f"{s['query_ms']:.2f} | {s['index_bytes'] / 1e6:.1f} |")
    c = r["comparisons"]["recall_at_10: listwise_kd vs embedding_regression"]
    lines += ["", f"Best distilled student: {LESSON08_NAMES[r['best_distilled']]}, keeping "
              f"{100 * r['kept_share_of_teacher_recall']:.1f}% of the teacher's recall@10 at {r['speedup_throughput']:,.0f}x "
              f"its throughput. Listwise KD minus embedding regression on recall@10: {c['mean']:+.2f} points "
              f"[{c['low']:+.2f}, {c['high']:+.2f}], {'significant' if c['significant'] else 'not significant'} "
              f"(paired t-interval over the seeds)."]
    return "\n".join(lines)


RENDERERS = {"lesson02.json": lesson02, "lesson03.json": lesson03, "lesson04.json": lesson04,
             "lesson05.json": lesson05, "lesson06.json": lesson06, "lesson07.json": lesson07,
             "lesson08.json": lesson08, "router_tool.json": router_tool}


def goals(r: dict) -> str:
    """One line on a results file's ``goals`` ({goal: met}): how many were met, and each one missed by name."""
    missed = [goal for goal, met in r.get("goals", {}).items() if not met]
    line = f"Goals met in this run: {len(r['goals']) - len(missed)} of {len(r['goals'])}"
    return line + (f"; missed: {'; '.join(missed)}." if missed else ".")


def render(root: Path = REPO_ROOT) -> str:
    """The markdown of every lesson's full results (the body of ``docs/results.md``)."""
    parts = []
    for name, renderer in RENDERERS.items():
        result = _load(name, root)
        if result is not None:
            parts.append(renderer(result) + (f"\n\n{goals(result)}" if result.get("goals") else ""))
    if not parts:
        parts.append("No full-mode results yet: run `make course`.")
    timings = _load("course_timings.json", root)
    if timings:
        parts.append(run_times(timings))
    return "\n\n".join(parts)


def run_times(timings: dict) -> str:
    """Each lesson's last full-mode run time on the CPU (``make course``), with the cache state it ran with."""
    lines = ["**Lesson run times** (`results/course_timings.json`, written by `make course`: each lesson's last "
             "full-mode run on the CPU, kernel start included, with what the cache held):", "",
             "| notebook | run time | CPU cores | cache |", "|---|---:|---:|---|"]
    for name, t in timings.items():
        if "full_cpu_s" in t:
            s = t["full_cpu_s"]
            lines.append(f"| {name} | {f'{s / 60:.1f} min' if s >= 120 else f'{s:.0f} s'} "
                         f"| {t.get('full_cpu_cores', 'not recorded')} | {t.get('full_cpu_cache', 'not recorded')} |")
    return "\n".join(lines)


def _headline02(r: dict) -> str:
    return (f"test errors out of 10,000: soft-target student {format_mean_std(r['soft_target_errors'])}, baseline "
            f"{format_mean_std(r['baseline_errors'])}, teacher {r['teacher_errors']} (Hinton et al.: 74 and 146)")


def _headline03(r: dict) -> str:
    shifted = {m: statistics.mean(v["shifted_test_accuracy"]) for m, v in r["methods"].items()}
    best = max((m for m in shifted if m not in ("baseline", "soft targets")), key=shifted.get)
    params = r["methods"]["baseline"]["params"]
    return (f"shifted-digit test accuracy of a {params:,}-parameter student: baseline {100 * shifted['baseline']:.1f}%, "
            f"soft targets {100 * shifted['soft targets']:.1f}%, best hidden-state method ({best}) "
            f"{100 * shifted[best]:.1f}%")


def _headline04(r: dict) -> str:
    return (f"test accuracy: teacher {100 * r['teacher']['accuracy']:.1f}%, soft-target student "
            f"{100 * r['soft_targets']['accuracy']:.1f}%, baseline {100 * r['baseline']['accuracy']:.1f}%; the student "
            f"serves {r['throughput_ratio']:,.0f}x the teacher's emails/s")


def _headline05(r: dict) -> str:
    c = r["router"]["cascade"]
    return (f"a cascade (threshold chosen on validation) reaches {100 * c['accuracy']:.1f}% test accuracy (teacher "
            f"{100 * c['teacher_accuracy']:.1f}%, student {100 * c['student_accuracy']:.1f}%) with the teacher "
            f"reading {100 * c['share_to_teacher']:.1f}% of emails")


def _headline06(r: dict) -> str:
    rows = {row["model"]: row for row in r["mnist"]["rows"]}
    chosen, base = r["mnist"]["chosen_on_validation"], rows.get("student fp32")
    if chosen not in rows or base is None:
        return f"chosen on validation: {chosen}"
    c = rows[chosen]
    return (f"chosen on validation: {chosen}: {c['test_errors']} test errors in {c['bytes']:,} bytes "
            f"({base['bytes'] / c['bytes']:.1f}x smaller than the fp32 student, which makes {base['test_errors']})")


def _headline07(r: dict) -> str:
    task, acc = r["task"], r["accuracy_by_length"]
    beyond = task.get("verdict_lengths") or [k for k in task["test_lengths"] if k > max(task["train_lengths"])]
    means = [f"{name} {100 * statistics.mean(acc[m][str(k)] for k in beyond):.1f}%"
             for m, name in LESSON07_NAMES.items() if m in acc]
    return (f"exact match on chains longer than any labelled one (k={beyond[0]}-{beyond[-1]}), students trained on: "
            + ", ".join(means) + f" (teacher {100 * statistics.mean(acc['teacher'][str(k)] for k in beyond):.1f}%)")


def _headline08(r: dict) -> str:
    means = ", ".join(f"{name} {100 * r['students'][key]['recall_at_10']:.1f}%" for key, name in LESSON08_NAMES.items())
    return (f"recall@10 of same-queue emails: teacher {100 * r['teacher']['recall_at_10']:.1f}%, students: {means}; "
            f"best distilled at {r['speedup_throughput']:,.0f}x the teacher's throughput")


HEADLINES = {"lesson02.json": ("02", _headline02), "lesson03.json": ("03", _headline03),
             "lesson04.json": ("04", _headline04), "lesson05.json": ("05", _headline05),
             "lesson06.json": ("06", _headline06), "lesson07.json": ("07", _headline07),
             "lesson08.json": ("08", _headline08)}


def summary(root: Path = REPO_ROOT) -> str:
    """README's results table: one headline per lesson and how many of its goals it met."""
    lines = ["| lesson | headline result (full mode) | goals met |", "|---|---|---|"]
    for name, (number, headline) in HEADLINES.items():
        result = _load(name, root)
        if result is not None:
            met = result.get("goals", {})
            goal_cell = f"{sum(met.values())} of {len(met)}" if met else "-"
            lines.append(f"| {number} | {headline(result)} | {goal_cell} |")
    if len(lines) == 2:
        return "No full-mode results yet: run `make course`."
    return "\n".join(lines)


RESULTS_DOC = "docs/results.md"
RESULTS_HEADER = ("# Results\n\nEvery number below is rendered by `python -m course_lib.report` from the "
                  "`results/*.json` files that the lessons write in full mode (`make course`); a test fails when "
                  "this page is stale. FAST-mode runs (`COURSE_FAST=1`) never write here.\n\n")


ROUTER_BEGIN, ROUTER_END = "<!-- router:begin -->", "<!-- router:end -->"


def _between(text: str, begin: str, end: str, body: str) -> str:
    if begin not in text or end not in text:
        raise SystemExit(f"README.md has no {begin} ... {end} section")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def updated_readme(root: Path = REPO_ROOT) -> str:
    """README.md with its summary table (and the router tool's run, where it has markers for it) up to date."""
    text = _between((root / "README.md").read_text(encoding="utf-8"), BEGIN, END, summary(root))
    if ROUTER_BEGIN in text:
        run = _load("router_tool.json", root)
        text = _between(text, ROUTER_BEGIN, ROUTER_END,
                        router_tool(run) if run else "No run yet: `.venv/bin/python bench/router_tool.py`.")
    return text


def results_doc(root: Path = REPO_ROOT) -> str:
    """The whole of ``docs/results.md``."""
    return RESULTS_HEADER + render(root) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.report", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    targets = {REPO_ROOT / "README.md": updated_readme(), REPO_ROOT / RESULTS_DOC: results_doc()}
    stale = [path for path, new in targets.items()
             if not path.exists() or new != path.read_text(encoding="utf-8")]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(REPO_ROOT)} is stale: run `python -m course_lib.report`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(targets[path], encoding="utf-8")
    print("up to date: " + ", ".join(str(p.relative_to(REPO_ROOT)) for p in targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
