"""``python -m course_lib.run_course``: the kernel over Unix sockets, and a stop that stops the whole run (issue 23)."""
import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from course_lib.config import REPO_ROOT


def _notebook(path, *sources):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), str(path))
    return path


def _run(tmp_path, *notebooks):
    env = {**os.environ, "COURSE_FAST": "1", "COURSE_RESULTS_DIR": str(tmp_path / "results")}
    return subprocess.Popen([sys.executable, "-m", "course_lib.run_course", *map(str, notebooks),
                             "--out", str(tmp_path / "build")], cwd=REPO_ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_a_lesson_runs_over_ipc_without_the_tcp_warning(tmp_path):
    quick = _notebook(tmp_path / "quick.ipynb", "print(6 * 7)")
    process = _run(tmp_path, quick)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, out + err
    assert "without encryption" not in out + err
    assert "42" in (tmp_path / "build" / "quick.ipynb").read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_the_whole_run_with_the_table_so_far(tmp_path, signum):
    first = _notebook(tmp_path / "a_first.ipynb", "print('first done')")
    slow = _notebook(tmp_path / "b_slow.ipynb", "import time\nopen('started', 'w').close()\ntime.sleep(300)")
    never = _notebook(tmp_path / "c_never.ipynb", "open('ran', 'w').close()")
    process = _run(tmp_path, first, slow, never)
    deadline = time.monotonic() + 240
    while not (tmp_path / "started").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert (tmp_path / "started").exists(), process.communicate()
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, out + err
    assert "| a_first.ipynb | FAST | ok |" in out
    assert f"| b_slow.ipynb | FAST | FAILED: stopped by {signal.Signals(signum).name} |" in out
    assert "c_never.ipynb" not in out and not (tmp_path / "ran").exists()
    assert "stopped by" in out


def test_the_time_table_records_what_each_lesson_did_to_the_cache(tmp_path):
    """Cold or warm is measured (files the run wrote to the cache), never typed."""
    import json

    cache = tmp_path / "cache"
    builds = _notebook(tmp_path / "a_builds.ipynb", f"open({str(cache / 'teacher.bin')!r}, 'wb').write(b'x' * 10)")
    reads = _notebook(tmp_path / "b_reads.ipynb", "print('nothing built')")
    env = {**os.environ, "COURSE_FAST": "1", "COURSE_RESULTS_DIR": str(tmp_path / "results"),
           "COURSE_CACHE_DIR": str(cache)}
    cache.mkdir()
    done = subprocess.run([sys.executable, "-m", "course_lib.run_course", str(builds), str(reads), "--out",
                           str(tmp_path / "build")], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    timings = json.loads((tmp_path / "results" / "course_timings.json").read_text())
    assert timings["a_builds.ipynb"]["fast_cpu_cache"].startswith("cold: 1 cache file")
    assert timings["b_reads.ipynb"]["fast_cpu_cache"] == "warm (nothing built)"


def test_the_time_table_records_the_cpu_count_beside_each_time(tmp_path, monkeypatch):
    """"on a 2-core CPU" in each lesson's first cell is read from this, not typed."""
    import json

    from course_lib import run_course

    (tmp_path / "results").mkdir()
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    run_course.record_timings([("a.ipynb", True, 12.34, ""), ("b.ipynb", False, 5.0, "boom")], "FAST")
    timings = json.loads((tmp_path / "results" / "course_timings.json").read_text())
    assert timings == {"a.ipynb": {"fast_cpu_s": 12.3, "fast_cpu_cores": 7}}


def test_every_executed_notebook_is_stamped_with_its_source_hash_mode_and_outcome(tmp_path):
    """Issue 27: the site reuses build/<name>.ipynb only when its stamp matches the current source."""
    import hashlib
    import json
    from datetime import datetime

    good = _notebook(tmp_path / "a_good.ipynb", "print(6 * 7)")
    bad = _notebook(tmp_path / "b_bad.ipynb", "raise RuntimeError('boom')")
    process = _run(tmp_path, good, bad)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1, out + err
    for name, ok in (("a_good", True), ("b_bad", False)):
        stamp = nbformat.read(str(tmp_path / "build" / f"{name}.ipynb"), as_version=4).metadata["course_build"]
        source = json.loads((tmp_path / f"{name}.ipynb").read_text())
        cells = [[c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"]]
                 for c in source["cells"]]
        expected = hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode()).hexdigest()
        assert stamp["source_sha256"] == expected
        assert stamp["ok"] is ok and stamp["mode"] == "FAST"
        assert 0 < stamp["seconds"] < 300
        assert datetime.fromisoformat(stamp["finished"]).tzinfo is not None


def test_the_source_hash_counts_cell_types_and_sources_only():
    from course_lib.run_course import source_sha256

    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[v4.new_markdown_cell("# T"), v4.new_code_cell("x = 1")])
    same = v4.new_notebook(cells=[v4.new_markdown_cell("# T"), v4.new_code_cell("x = 1", execution_count=3,
                                                                               outputs=[v4.new_output("stream", text="1")])])
    same.metadata["course_build"] = {"ok": True}
    same.cells[0]["id"] = "another-id"
    assert source_sha256(nb) == source_sha256(same)
    edited = v4.new_notebook(cells=[v4.new_markdown_cell("# T"), v4.new_code_cell("x = 2")])
    retyped = v4.new_notebook(cells=[v4.new_code_cell("# T"), v4.new_code_cell("x = 1")])
    split = v4.new_notebook(cells=[v4.new_markdown_cell("# T"), v4.new_code_cell("x ="), v4.new_code_cell(" 1")])
    assert len({source_sha256(n) for n in (nb, edited, retyped, split)}) == 4
