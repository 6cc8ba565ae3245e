"""The router tool (issue 24): ``python -m course_lib.router build|route`` on small synthetic CSV files.

Bad input is refused with a message naming the file and the row, before anything is written; a real
build writes every file the issue names, each valid; ``route`` answers well above chance; a build
killed during scoring resumes from its finished shards.
"""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from course_lib import compress, emails
from course_lib.config import REPO_ROOT
from course_lib.router import NgramStudent, TextTeacher, tool
from course_lib.router.__main__ import main


def write_csv(path, header, rows, encoding="utf-8"):
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def labelled_rows(n, seed=10):
    return [[e.text, e.queue] for e in emails.generate_emails(n, seed=seed, style="archive")]


def traffic_rows(n, seed=11):
    return [[i, e.text] for i, e in enumerate(emails.generate_emails(n, seed=seed))]


@pytest.fixture
def good_csvs(tmp_path):
    return (write_csv(tmp_path / "labelled.csv", ["text", "label"], labelled_rows(60)),
            write_csv(tmp_path / "traffic.csv", ["id", "text"], traffic_rows(20)))


def run_build(labelled, traffic, out, *extra):
    return main(["build", "--labelled", str(labelled), "--traffic", str(traffic), "--out", str(out), *extra])


# ----------------------------------------------------------------------------- refusals: clear, early, nothing written
def test_missing_column_is_refused_and_nothing_written(good_csvs, tmp_path, capsys):
    labelled, traffic = good_csvs
    out = tmp_path / "router"
    assert run_build(labelled, traffic, out, "--label-column", "queue") == 2
    assert "labelled.csv: no column 'queue'" in capsys.readouterr().err
    assert run_build(labelled, traffic, out, "--text-column", "body") == 2
    assert "no column 'body'" in capsys.readouterr().err
    assert not out.exists()


def test_one_class_only_is_refused(tmp_path, good_csvs, capsys):
    labelled = write_csv(tmp_path / "one.csv", ["text", "label"], [[f"email {i}", "billing"] for i in range(20)])
    out = tmp_path / "router"
    assert run_build(labelled, good_csvs[1], out) == 2
    err = capsys.readouterr().err
    assert "one.csv" in err and "at least two classes" in err and not out.exists()


def test_label_with_a_single_example_is_refused_naming_its_row(tmp_path, good_csvs, capsys):
    rows = labelled_rows(30)
    rows.insert(7, ["please cancel my gym membership", "gym"])  # data row 8
    labelled = write_csv(tmp_path / "single.csv", ["text", "label"], rows)
    out = tmp_path / "router"
    assert run_build(labelled, good_csvs[1], out) == 2
    err = capsys.readouterr().err
    assert "single.csv" in err and "'gym'" in err and "single example (row [8])" in err and not out.exists()


def test_empty_traffic_is_refused(tmp_path, good_csvs, capsys):
    traffic = write_csv(tmp_path / "empty.csv", ["text"], [])
    out = tmp_path / "router"
    assert run_build(good_csvs[0], traffic, out) == 2
    assert "empty.csv has a header but no data rows" in capsys.readouterr().err and not out.exists()


def test_non_utf8_traffic_is_refused_naming_the_row(tmp_path, good_csvs, capsys):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text\nhello\nwhere is my parcel\nCaf\u00e9 bill wrong\n".encode("latin-1"))
    out = tmp_path / "router"
    assert run_build(good_csvs[0], path, out) == 2
    err = capsys.readouterr().err
    assert re.search(r"latin1\.csv is not UTF-8: byte 0xe9 at file line 4 \(data row 3", err) and not out.exists()


def test_unquoted_comma_in_traffic_is_refused_naming_the_row(tmp_path, good_csvs, capsys):
    path = tmp_path / "comma.csv"
    path.write_text("text\nhello\nI was charged twice, please refund me\n", encoding="utf-8")
    out = tmp_path / "router"
    assert run_build(good_csvs[0], path, out) == 2
    err = capsys.readouterr().err
    assert "comma.csv, row 2 (file line 3) has 2 fields, expected 1: quote" in err and not out.exists()


def test_empty_text_in_labelled_file_names_the_row(tmp_path, good_csvs, capsys):
    rows = labelled_rows(20)
    rows[4][0] = "  "
    labelled = write_csv(tmp_path / "blank.csv", ["text", "label"], rows)
    assert run_build(labelled, good_csvs[1], tmp_path / "router") == 2
    # the emails span several lines each: the data row and the file line differ
    assert re.search(r"blank\.csv, row 5 \(file line \d+\): the 'text' column is empty", capsys.readouterr().err)


@pytest.mark.parametrize("args, words", [
    (["build", "--labelled", "a.csv", "--traffic", "b.csv"], "--out"),
    (["build", "--labelled", "a.csv", "--traffic", "b.csv", "--out", "d", "--teacher", "big"], "invalid choice"),
    (["build", "--labelled", "a.csv", "--traffic", "b.csv", "--out", "d", "--engine", "spark"], "invalid choice"),
    (["build", "--labelled", "a.csv", "--traffic", "b.csv", "--out", "d", "--workers", "0"], "must be an integer >= 1"),
    (["route", "d", "in.csv"], "--out"),
    (["train"], "invalid choice"),
])
def test_bad_arguments_are_argparse_errors(args, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and words in capsys.readouterr().err


def test_missing_file_and_a_folder_that_is_not_a_build(tmp_path, good_csvs, capsys):
    assert run_build(tmp_path / "nope.csv", good_csvs[1], tmp_path / "router") == 2
    assert "no such CSV file" in capsys.readouterr().err and not (tmp_path / "router").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert run_build(*good_csvs, tmp_path / "other") == 2
    assert "holding other files" in capsys.readouterr().err
    assert main(["route", str(tmp_path / "other"), str(good_csvs[1]), "--out", str(tmp_path / "o.csv")]) == 2
    assert "no report.json" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()


def test_split_is_stratified_seeded_and_disjoint():
    labels = np.repeat(np.arange(3), [10, 5, 2])
    split = tool.split_labelled(labels, seed=0)
    assert split.keys() == {"train", "validation", "test"}
    rows = np.concatenate(list(split.values()))
    assert sorted(rows.tolist()) == list(range(17))  # every row exactly once
    for name, share in tool.SPLIT.items():
        assert np.bincount(labels[split[name]], minlength=3)[0] == round(share * 10)  # each class split alike
    assert all(np.isin(np.arange(3), labels[split["train"]]))  # every class trains the teacher
    assert all((tool.split_labelled(labels, 0)[k] == split[k]).all() for k in split)
    assert any((tool.split_labelled(labels, 1)[k] != split[k]).any() for k in split)


# ----------------------------------------------------------------------------- end to end: build, route, route --cascade
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tool")
    labelled = write_csv(folder / "labelled.csv", ["text", "label"], labelled_rows(120))
    traffic = write_csv(folder / "traffic.csv", ["id", "text"], traffic_rows(300))
    test_emails = emails.generate_emails(200, seed=12)
    routed_in = write_csv(folder / "inbox.csv", ["id", "text", "true_queue"],
                          [[i, e.text, e.queue] for i, e in enumerate(test_emails)])
    out = folder / "router"
    assert run_build(labelled, traffic, out, "--teacher", "frozen", "--seed", "3") == 0
    return {"folder": folder, "out": out, "labelled": labelled, "inbox": routed_in}


REPORT_KEYS = {"labels": None, "traffic_rows": None,
               "teacher": {"kind", "validation_accuracy", "test_accuracy"},
               "student": {"validation_accuracy", "test_accuracy", "agreement_with_teacher"},
               "ece": {"teacher", "student", "student_scaled"},
               "cascade": {"threshold", "share_to_teacher", "validation_accuracy"}, "throughput_ratio": None}


def test_build_writes_every_file_the_issue_names(built):
    out = built["out"]
    report = json.loads((out / "report.json").read_text())
    for key, inner in REPORT_KEYS.items():
        assert key in report, key
        if inner:
            assert inner <= set(report[key]), (key, inner - set(report[key]))
    assert report["labels"] == sorted(emails.QUEUES) and report["traffic_rows"] == 300
    assert report["teacher"]["kind"] == "frozen" and report["split"] == {"train": 72, "validation": 24, "test": 24}
    for value in (report["teacher"]["test_accuracy"], report["student"]["test_accuracy"],
                  report["cascade"]["share_to_teacher"], report["ece"]["student_scaled"]):
        assert 0 <= value <= 1
    assert report["throughput_ratio"] > 10
    assert [row["name"] for row in report["per_class"]] == report["labels"]
    assert all(0 <= row["student_ci"][0] <= row["student_accuracy"] <= row["student_ci"][1] <= 1
               for row in report["per_class"])
    assert {"student_only_errors", "teacher_only_errors", "p_value"} <= set(report["mcnemar"])
    # report.md links only to PNGs that exist beside it; the model card is written from report.json
    markdown = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert set(links) == set(tool.FIGURES.values())
    for link in links:
        assert (out / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (out / "model_card.md").read_text()
    assert card.startswith("# Model card") and f"{100 * report['student']['test_accuracy']:.2f}%" in card
    assert not list(out.glob(".staging-*"))


def test_saved_student_onnx_and_scores_are_valid(built):
    out = built["out"]
    report = json.loads((out / "report.json").read_text())
    student = NgramStudent.load(out / "student")
    texts, labels, names = emails.load_labelled_csv(built["labelled"])
    test_texts = [texts[i] for i in tool.split_labelled(labels, seed=3)["test"]]
    onnx = compress.OnnxModel(out / "student.onnx")
    check = compress.equivalence(student.predict_logits(test_texts), onnx.run(*student.featurize(test_texts)))
    assert check["argmax_agreement"] >= 0.995 and report["onnx"]["precision"] in ("fp32", "int8")
    scores = pd.concat([pd.read_parquet(part) for part in sorted((out / "scores").glob("part-*.parquet"))])
    assert sorted(scores["row"]) == list(range(300))
    logits = np.stack(scores.sort_values("row")["logits"].to_numpy())
    assert logits.shape == (300, len(names)) and np.isfinite(logits).all()
    teacher = TextTeacher.load(out / "teacher")
    traffic = [e.text for e in emails.generate_emails(300, seed=11)]
    np.testing.assert_allclose(teacher.predict_logits(traffic[:5]), logits[:5], atol=1e-3)


def test_route_and_route_cascade(built, tmp_path):
    out, inbox = built["out"], built["inbox"]
    report = json.loads((out / "report.json").read_text())
    plain, cascaded = tmp_path / "routed.csv", tmp_path / "routed_cascade.csv"
    assert main(["route", str(out), str(inbox), "--out", str(plain)]) == 0
    assert main(["route", str(out), str(inbox), "--out", str(cascaded), "--cascade"]) == 0
    original = pd.read_csv(inbox)
    routed = pd.read_csv(plain)
    assert list(routed.columns) == ["id", "text", "true_queue", "label", "confidence", "escalate"]
    assert routed[["id", "text", "true_queue"]].equals(original)
    assert (routed["label"] == routed["true_queue"]).mean() > 0.5  # chance is 1/6
    assert routed["escalate"].equals(routed["confidence"] < report["cascade"]["threshold"])
    both = pd.read_csv(cascaded)
    assert list(both.columns) == list(routed.columns) + ["answered_by"]
    assert (both["answered_by"] == "teacher").equals(both["escalate"])
    kept = both["answered_by"] == "student"
    assert both.loc[kept, "label"].equals(routed.loc[kept, "label"])
    assert (both["label"] == both["true_queue"]).mean() >= (routed["label"] == routed["true_queue"]).mean() - 0.05


def test_route_in_chunks_gives_the_same_file(built, tmp_path):
    one, many = tmp_path / "one.csv", tmp_path / "many.csv"
    tool.route(built["out"], built["inbox"], one, progress=False, verbose=False)
    tool.route(built["out"], built["inbox"], many, chunk_rows=7, progress=False, verbose=False)
    assert one.read_bytes() == many.read_bytes()


def test_route_refuses_a_clashing_column_and_a_bad_row(built, tmp_path, capsys):
    clash = write_csv(tmp_path / "clash.csv", ["text", "label"], [["hi", "x"]])
    assert main(["route", str(built["out"]), str(clash), "--out", str(tmp_path / "o.csv")]) == 2
    assert "already has the column(s) ['label']" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("text\nhello\n" + "fine\n" * 3 + "one, two\n", encoding="utf-8")
    assert main(["route", str(built["out"]), str(bad), "--out", str(tmp_path / "o.csv")]) == 2
    assert "bad.csv, row 5 (file line 6) has 2 fields" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists() and not list(tmp_path.glob(".o.csv*"))


# ----------------------------------------------------------------------------- resume: kill a real build during scoring
def test_a_killed_build_resumes_from_its_finished_shards(tmp_path):
    labelled = write_csv(tmp_path / "labelled.csv", ["text", "label"], labelled_rows(60))
    traffic = write_csv(tmp_path / "traffic.csv", ["text"], [[r[1]] for r in traffic_rows(400, seed=21)])
    out = tmp_path / "router"
    env = {**os.environ, tool.SHARD_ROWS_ENV: "50", "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "course_lib.router", "build", "--labelled", str(labelled), "--traffic",
               str(traffic), "--out", str(out), "--teacher", "frozen"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (out / "scores" / "part-00000.parquet").exists():
            assert process.poll() is None, "the build ended before its first shard was written"
            assert time.monotonic() < deadline, "no shard after 240 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert not (out / "report.json").exists()
    finished = len(list((out / "scores").glob("part-*.parquet")))
    assert 1 <= finished < 8
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    resumed = [line for line in rerun.stdout.splitlines() if line.startswith("resumed:")]
    assert resumed and re.search(rf"\b{50 * finished}\b", resumed[0].replace(",", "")), resumed
    report = json.loads((out / "report.json").read_text())
    assert report["traffic_rows"] == 400 and len(list((out / "scores").glob("part-*.parquet"))) == 8


# ----------------------------------------------------------------------------- the readers and the saved teacher
def test_labelled_reader_takes_any_label_strings_and_traffic_reader_ignores_other_columns(tmp_path):
    path = write_csv(tmp_path / "l.csv", ["id", "text", "label"],
                     [[1, "where is it", "Versand"], [2, "pay me back", "Erstattung"], [3, "late", "Versand"],
                      [4, "refund", " Erstattung "], [5, "hello, there", "5"]])
    texts, labels, names = emails.load_labelled_csv(path)
    assert names == ["5", "Erstattung", "Versand"] and labels.tolist() == [2, 1, 2, 1, 0]
    assert texts[4] == "hello, there"
    assert emails.load_traffic_csv(path) == texts
    with pytest.raises(ValueError, match="no column 'body'"):
        emails.load_traffic_csv(path, text_column="body")


def test_saved_teacher_is_verified(built, tmp_path):
    import shutil
    copy = tmp_path / "teacher"
    shutil.copytree(built["out"] / "teacher", copy)
    data = bytearray((copy / "teacher.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (copy / "teacher.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="cannot load the teacher"):
        TextTeacher.load(copy)
