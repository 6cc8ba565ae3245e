"""The grader against hostile and careless submissions (issue 20): one test per attack, through the CLI.

One class is graded once (module fixture, ``--jobs 2``): honest students beside attackers. Each test
then reads the attacker's row and checks that the honest students kept full marks. Attacks that need
their own run (time limit, output flood, refusal without bubblewrap) grade a small class of their own.
The solutions folder is test_grade.py's: lesson 02's kd_loss (2 points) and choose_class_bias (1 point).
"""
import csv
import os
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest
import test_grade
from test_grade import BIAS, CHECK_BIAS, CHECK_KD, KD, SETUP, _notebook

from course_lib import cache, grade

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux's bubblewrap")

solutions = test_grade.solutions  # the same two-exercise solutions folder (a module-scoped fixture)
HONEST = tuple(f"honest_{i:02d}" for i in range(13))
STUB_KD = "def kd_loss(student_logits, teacher_logits, temperature=1.0):\n    pass\n"


def _write(path: Path, *sources) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(_notebook(*sources), str(path))
    return path


def _cli(*args) -> int:
    return grade.main([str(a) for a in args])


def _rows(book: Path) -> dict[str, dict]:
    return {row["student"]: row for row in csv.DictReader(open(book, encoding="utf-8"))}


class Class:
    """The graded class: paths, the gradebook's rows, what the grader printed, and the listeners' catch."""


@pytest.fixture(scope="module")
def graded(solutions, tmp_path_factory):
    """Grade one class of attackers and honest students through the CLI, with listeners on the host."""
    root = tmp_path_factory.mktemp("class")
    c = Class()
    c.root, c.book, c.feedback = root, root / "out" / "gradebook.csv", root / "out" / "feedback"
    c.marker = f"outlive-{uuid.uuid4().hex}"
    c.seed = grade.warm_cache("02", solutions)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    host = "127.0.0.1"
    later = root / "zz_later_student.ipynb"  # graded after the attackers
    detached = (f"import os, time\nfor _ in range(600):\n    time.sleep(0.5)\n    if os.path.isfile({str(c.book)!r}): break\n"
                f"time.sleep(1)\nopen({str(c.book)!r}, 'w').write('!forged')\n")
    subs = root / "subs"
    attacks = {
        # verdicts forged from inside the kernel
        "rebind_recorder": STUB_KD + (
            "import course_lib._sandbox as s, course_lib.losses as L\n"
            "real = s.make_recorder\n"
            "s.record = lambda check, fn, out: None\n"
            "def fake(namespace, checks, records, library):\n"
            "    namespace['kd_loss'] = getattr(L, 'kd_' + 'loss')\n"
            "    return real(namespace, checks, records, library)\n"
            "s.make_recorder = fake\n"),
        "swap_recorder_global": STUB_KD + (
            "import course_lib.losses as L\n"
            "for name, value in list(globals().items()):\n"
            "    if name.startswith('__gr' + 'ader') and callable(value):\n"
            "        def fake(k, fn_name, real=value):\n"
            "            globals()[fn_name] = vars(L)['kd_' + 'loss']\n"
            "            return real(k, fn_name)\n"
            "        globals()[name] = fake\n"),
        "zero_inputs": "import torch\ndef kd_loss(student_logits, teacher_logits, temperature=1.0):\n"
                       "    with torch.no_grad():\n        student_logits.zero_()\n        teacher_logits.zero_()\n"
                       "    return (student_logits * 0).sum()\n",
        "reads_solutions": (
            "import glob, json\nKEY = None\n"
            f"for path in glob.glob({str(solutions)!r} + '/*.ipynb') + glob.glob({str(grade.points.REPO_ROOT)!r} "
            "+ '/solutions/02_*.ipynb'):\n"
            "    cells = json.load(open(path))['cells']\n"
            "    KEY = ''.join(''.join(c['source']) for c in cells if 'def kd_loss' in ''.join(c['source']))\n"
            "    break\n"
            "exec((KEY or '').replace('def kd_loss', 'def _key'))\n"
            "def kd_loss(student_logits, teacher_logits, temperature=1.0):\n"
            "    return _key(student_logits, teacher_logits, temperature) if '_key' in globals() else None\n"),
        "reads_classmate": (
            f"import json\ntry:\n    cells = json.load(open({str(subs / 'honest_00.ipynb')!r}))['cells']\n"
            "    exec(''.join(''.join(c['source']) for c in cells if 'def kd_loss' in ''.join(c['source']))"
            ".replace('def kd_loss', 'def _key'))\n"
            "except OSError:\n    pass\n"
            "def kd_loss(student_logits, teacher_logits, temperature=1.0):\n"
            "    return _key(student_logits, teacher_logits, temperature) if '_key' in globals() else None\n"),
        "library_by_name": "import course_lib.losses as L\n"
                           "def kd_loss(student_logits, teacher_logits, temperature=1.0):\n"
                           "    return getattr(L, 'kd_' + 'loss')(student_logits, teacher_logits, temperature)\n",
        # one submission changing others' grades
        "detached_rewrite": STUB_KD + (
            "import subprocess, sys\n"
            f"code = {detached!r}\n"
            "subprocess.Popen([sys.executable, '-c', code], start_new_session=True)\n"),
        "kill_siblings": STUB_KD + (
            "import os, signal, time\n"
            "for _ in range(40):  # 10 s: whatever else is being graded meanwhile\n"
            "    for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
            "        try:\n"
            "            if int(pid) != os.getpid() and b'_sandbox' in open(f'/proc/{pid}/cmdline', 'rb').read():\n"
            "                os.kill(int(pid), signal.SIGKILL)\n"
            "        except OSError:\n            pass\n"
            "    time.sleep(0.25)\n"),
        "overwrite_and_plant": STUB_KD + (
            "import os\n"
            f"for path in [{str(later)!r}, {str(c.seed / 'planted.txt')!r}]:\n"
            "    try:\n        open(path, 'w').write('{}')\n    except OSError:\n        pass\n"
            f"try:\n    os.mkfifo({str(c.seed / 'pipe')!r})\n    os.symlink('/nowhere', {str(c.seed / 'link')!r})\n"
            "except OSError:\n    pass\n"
            f"try:\n    os.makedirs({str(c.book)!r})\nexcept OSError:\n    pass\n"),
        "ignores_sigterm": STUB_KD + (
            "import subprocess, sys\n"
            "code = 'import signal, time\\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\\nwhile True: time.sleep(0.2)'\n"
            f"subprocess.Popen([sys.executable, '-c', code, {c.marker!r}], start_new_session=True)\n"),
        "network": STUB_KD + (
            "import socket, _socket\nREACHED = []\n"
            f"s = socket.socket()\ns.settimeout(2)\nREACHED.append(s.connect_ex(({host!r}, {tcp.getsockname()[1]})))\n"
            f"r = _socket.socket()\ntry:\n    r.settimeout(2)\n    r.connect(({host!r}, {tcp.getsockname()[1]}))\n"
            "except OSError as e:\n    REACHED.append(str(e))\n"
            f"u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry:\n"
            f"    u.sendto(b'leak', ({host!r}, {udp.getsockname()[1]}))\nexcept OSError as e:\n    REACHED.append(str(e))\n"),
        # honest students hurt
        "answer_beside_check": None,  # written below: the answer and its check call in one cell
        "huge_return": "import torch\ndef kd_loss(student_logits, teacher_logits, temperature=1.0):\n"
                       "    return torch.zeros(100 * 2**20)  # 400 MB\n",
    }
    paths = []
    for name, source in attacks.items():  # under --jobs 2, each attacker is graded beside an honest student
        honest = f"honest_{len(paths) // 2:02d}"
        paths.append(_write(subs / f"{honest}.ipynb", SETUP, KD, CHECK_KD, BIAS, CHECK_BIAS))
        if source is None:
            paths.append(_write(subs / f"{name}.ipynb", SETUP, KD + "\n" + CHECK_KD + "\nprint('checked')", BIAS,
                                "x = 1; " + CHECK_BIAS + "; y = 2"))
        else:
            paths.append(_write(subs / f"{name}.ipynb", SETUP, source, BIAS, CHECK_BIAS))
    paths.append(_write(subs / "groupA" / "twin.ipynb", SETUP, KD, BIAS))
    paths.append(_write(subs / "groupB" / "twin.ipynb", SETUP, "def kd_loss(s, t, temperature=1.0):\n    return None",
                        BIAS))
    formula = _write(subs / "=HYPERLINK(1).ipynb", SETUP, KD, BIAS)
    malformed = subs / "malformed.ipynb"
    malformed.write_text('{"cells": [{"source": "x = 1", "metadata": {}}, {"cell_type": "code", "source": 42}], '
                         '"metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    paths += [formula, malformed]
    paths.append(_write(later, SETUP, KD, CHECK_KD, BIAS, CHECK_BIAS))
    start = time.perf_counter()
    c.code = _cli(*paths, "--csv", c.book, "--feedback", c.feedback, "--jobs", 2, "--timeout", 120,
                  "--solutions", solutions)
    c.seconds = time.perf_counter() - start
    time.sleep(3)  # what a detached process would do after the grader exits
    try:
        c.tcp_accepted = tcp.accept() is not None
    except BlockingIOError:
        c.tcp_accepted = False
    try:
        c.udp_received = udp.recv(100)
    except BlockingIOError:
        c.udp_received = b""
    tcp.close()
    udp.close()
    c.rows = _rows(c.book) if c.book.is_file() else {}
    return c


def _kd(c, student):
    return float(c.rows[student]["2.1 kd_loss"])


def _honest_full_marks(c):
    for name in HONEST + ("zz_later_student",):
        assert c.rows[name]["total"] == "3", (name, c.rows[name])


# ----------------------------------------------------------------------------- verdicts that cannot be forged
def test_rebinding_the_recorder_module_gains_nothing(graded):
    assert graded.code == 0 and _kd(graded, "rebind_recorder") == 0
    _honest_full_marks(graded)


def test_swapping_the_recorder_in_globals_runs_the_library_and_is_flagged(graded):
    row = graded.rows["swap_recorder_global"]
    assert _kd(graded, "swap_recorder_global") == 0 and "library answer: ran course_lib's kd_loss" in row["flags"]


def test_a_function_that_zeroes_its_inputs_fails_and_is_told_why(graded):
    assert _kd(graded, "zero_inputs") == 0
    assert "changed its inputs in place" in graded.rows["zero_inputs"]["flags"]
    feedback = (graded.feedback / "zero_inputs.md").read_text()
    assert "changed its input `student_logits`" in feedback and "clone" in feedback


def test_solutions_and_classmates_are_not_readable_from_the_kernel(graded):
    assert _kd(graded, "reads_solutions") == 0 and _kd(graded, "reads_classmate") == 0
    _honest_full_marks(graded)


def test_a_library_function_reached_by_a_name_built_at_run_time_is_flagged(graded):
    row = graded.rows["library_by_name"]
    assert _kd(graded, "library_by_name") == 0 and "library answer" in row["flags"]


# ----------------------------------------------------------------------------- one submission, others' grades
def test_a_detached_process_cannot_rewrite_the_gradebook(graded):
    text = graded.book.read_text()
    assert not text.startswith("!forged") and "honest_00" in text


def test_a_submission_cannot_kill_its_siblings_kernels(graded):
    _honest_full_marks(graded)  # graded beside it under --jobs 2
    assert graded.rows["kill_siblings"]["2.2 choose_class_bias"] == "1"


def test_no_submission_can_overwrite_another_or_plant_files_in_the_seed_cache(graded):
    _honest_full_marks(graded)  # the later student's notebook is intact
    assert graded.book.is_file()  # no folder was planted at the gradebook's path
    planted = [p.name for p in graded.seed.iterdir() if p.name in ("planted.txt", "pipe", "link")]
    assert planted == []
    cache.verify_sealed(graded.seed)  # its seal (every file's sha256) still matches


def test_no_process_outlives_the_grader(graded):
    survivors = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if graded.marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                survivors.append(pid)
        except OSError:
            continue
    assert survivors == []


def test_no_network_connection_leaves_the_sandbox(graded):
    assert not graded.tcp_accepted and graded.udp_received == b""
    assert graded.rows["network"]["2.2 choose_class_bias"] == "1"


# ----------------------------------------------------------------------------- honest students
def test_an_answer_in_the_same_cell_as_its_check_call_is_graded(graded):
    assert graded.rows["answer_beside_check"]["total"] == "3"


def test_a_malformed_notebook_is_its_own_row_with_a_reason(graded):
    row = graded.rows["malformed"]
    assert row["total"] == "0" and "cell 1 has cell_type None" in row["problem"]
    _honest_full_marks(graded)


def test_two_students_with_one_file_name_get_two_rows_and_two_feedback_files(graded):
    assert graded.rows["groupA/twin"]["total"] == "3" and graded.rows["groupB/twin"]["total"] == "1"
    files = {p.name for p in graded.feedback.glob("*twin*.md")}
    assert files == {"groupA_twin.md", "groupB_twin.md"}


def test_spreadsheet_formulas_in_names_are_escaped(graded):
    raw = graded.book.read_text()
    assert "'=HYPERLINK(1)" in raw and "\n=HYPERLINK" not in raw
    assert graded.rows["'=HYPERLINK(1)"]["total"] == "3"


def test_a_huge_return_value_is_refused_not_loaded(graded):
    assert _kd(graded, "huge_return") == 0
    text = (graded.feedback / "huge_return.md").read_text()
    assert "400 MB" in text and "the grader accepts" in text


# ----------------------------------------------------------------------------- runs of their own
def test_the_timeout_bounds_the_whole_submission(solutions, tmp_path):
    sleepy = _write(tmp_path / "sleepy.ipynb", SETUP, KD, BIAS, *["import time\ntime.sleep(6)"] * 10)
    start = time.perf_counter()
    assert _cli(sleepy, "--csv", tmp_path / "book.csv", "--timeout", 25, "--solutions", solutions) == 0
    seconds = time.perf_counter() - start
    row = _rows(tmp_path / "book.csv")["sleepy"]
    assert seconds < 25 + 20, seconds  # the bound, plus reading and judging
    assert "time limit" in row["problem"] and row["total"] == "0"


def test_output_written_to_the_file_descriptor_stays_out_of_the_graders_output(solutions, tmp_path, capfd):
    flood = _write(tmp_path / "flood.ipynb", SETUP, KD, BIAS, "import os\nfor _ in range(50):\n"
                   "    os.write(1, b'x' * 100_000)\n    os.write(2, b'y' * 100_000)")
    assert _cli(flood, "--csv", tmp_path / "book.csv", "--solutions", solutions) == 0
    out, err = capfd.readouterr()
    assert len(out) + len(err) < 50_000
    assert _rows(tmp_path / "book.csv")["flood"]["total"] == "3"


def test_without_bubblewrap_the_grader_refuses_and_says_how_to_fix_it(solutions, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(grade.sandbox, "BWRAP", "bwrap-not-installed-here")
    path = _write(tmp_path / "alice.ipynb", SETUP, KD, BIAS)
    assert _cli(path, "--csv", tmp_path / "book.csv", "--solutions", solutions) == 2
    err = capsys.readouterr().err
    assert "bubblewrap" in err and "apt-get install bubblewrap" in err and "--no-sandbox" in err
    assert not (tmp_path / "book.csv").exists()


def test_no_sandbox_marks_every_row(solutions, tmp_path):
    path = _write(tmp_path / "alice.ipynb", SETUP, KD, BIAS)
    assert _cli(path, "--csv", tmp_path / "book.csv", "--solutions", solutions, "--no-sandbox") == 0
    row = _rows(tmp_path / "book.csv")["alice"]
    assert row["total"] == "3" and "not sandboxed" in row["flags"]


def test_the_sandbox_hides_everything_but_the_submissions_folder(solutions, tmp_path):
    """Unit check of the filesystem view: run a command in the kernel's bwrap prefix."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    prefix = grade.sandbox.bwrap_command(workdir, {"HOME": str(workdir)}, None)
    probe = ("import os, pathlib; from course_lib.config import REPO_ROOT; "
             "print(sorted(p.name for p in REPO_ROOT.iterdir()), os.getpid(), "
             "os.access(str(REPO_ROOT / 'course_lib'), os.W_OK), os.access(os.getcwd(), os.W_OK))")
    done = subprocess.run(prefix + [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    names, pid, lib_writable, work_writable = done.stdout.rsplit(" ", 3)[0], *done.stdout.split()[-3:]
    assert "solutions" not in names and "exercises" not in names and "cache" not in names
    assert lib_writable == "False" and work_writable == "True"
    assert int(pid) < 10  # its own PID namespace: the grader's processes are not there


def test_the_feedback_and_gradebook_paths_are_checked_before_grading(solutions, tmp_path, capsys):
    path = _write(tmp_path / "alice.ipynb", SETUP, KD, BIAS)
    (tmp_path / "folder.csv").mkdir()
    assert _cli(path, "--csv", tmp_path / "folder.csv", "--solutions", solutions) == 2
    assert "is a folder" in capsys.readouterr().err
    assert stat.S_ISDIR((tmp_path / "folder.csv").stat().st_mode)


def test_judging_under_jobs_keeps_each_message_and_the_graders_stdout(tmp_path):
    """redirect_stdout swaps a process-wide stream: judgements in parallel threads must not mix or lose it."""
    from concurrent.futures import ThreadPoolExecutor

    import torch.nn.functional as F

    from course_lib import _sandbox
    from course_lib.config import REPO_ROOT
    from course_lib.grade.points import Exercise

    def kd_loss(student_logits, teacher_logits, temperature=1.0):
        log_q = F.log_softmax(student_logits / temperature, dim=-1)
        log_p = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
        return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * temperature**2

    exercise = Exercise("02", "2.1", "kd_loss", "course_lib.checks.lesson02:check_kd_loss")
    record = _sandbox.make_recorder({"kd_loss": kd_loss}, {"kd_loss": exercise.check}, str(tmp_path),
                                    str(REPO_ROOT / "course_lib"))
    record(0, "kd_loss")
    import json

    recorded = json.loads((tmp_path / "0.json").read_text())
    assert recorded["verdict"] == "passed" and recorded["calls"] and recorded["library"] == []
    stdout = sys.stdout
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: grade.judge(exercise, recorded), range(32)))
    assert sys.stdout is stdout
    assert all(r.status == "passed" and "kd_loss" in r.message for r in results), [r.message for r in results]


@pytest.mark.parametrize("mistake", ["teacher_logits.detach_()", "student_logits.mul_(1.0 + 1e-3)",
                                     "teacher_logits[0, 0] = 0.0"])
def test_the_recorder_sees_every_change_to_an_input_and_the_grader_fails_it(tmp_path, mistake):
    """In-place edits the grader's pristine inputs would never show: values, one element, requires_grad."""
    import json

    import torch
    import torch.nn.functional as F

    from course_lib import _sandbox
    from course_lib.config import REPO_ROOT
    from course_lib.grade.points import Exercise

    def kd_loss(student_logits, teacher_logits, temperature=1.0):
        with torch.no_grad():
            exec(mistake, {}, {"student_logits": student_logits, "teacher_logits": teacher_logits})
        log_q = F.log_softmax(student_logits / temperature, dim=-1)
        log_p = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
        return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * temperature**2

    exercise = Exercise("02", "2.1", "kd_loss", "course_lib.checks.lesson02:check_kd_loss")
    _sandbox.make_recorder({"kd_loss": kd_loss}, {"kd_loss": exercise.check}, str(tmp_path),
                           str(REPO_ROOT / "course_lib"))(0, "kd_loss")
    record = json.loads((tmp_path / "0.json").read_text())
    assert any(call.get("mutated") for call in record["calls"])
    result = grade.judge(exercise, record)
    assert result.status == "failed" and "changed its input" in result.message
    assert "changed its inputs in place" in result.flags


def test_the_private_tmp_comes_before_every_bind(tmp_path):
    """A checkout or venv under /tmp (as CI's may be) must stay visible: bwrap mounts in order, later over earlier."""
    prefix = grade.sandbox.bwrap_command(tmp_path, {}, tmp_path)
    tmpfs = prefix.index("--tmpfs")
    binds = [i for i, arg in enumerate(prefix) if arg in ("--ro-bind", "--bind", "--symlink")]
    assert prefix[tmpfs + 1] == "/tmp" and binds and tmpfs < min(binds)
