"""Issue 22's helpers behind lessons 04-06's claims: the CPU's int8 flags, and the README sentences built from results."""
import json

from course_lib import compress, config, report

CPUINFO = """processor\t: 0
model name\t: Example CPU @ 2.0GHz
flags\t\t: fpu sse2 avx2 avx512bw avx512_vnni
processor\t: 1
model name\t: Example CPU @ 2.0GHz
flags\t\t: fpu sse2 avx2 avx512bw avx512_vnni
"""


def test_cpu_int8_flags_reads_cpuinfo_and_never_guesses(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    found = compress.cpu_int8_flags(path)
    assert found["model"] == "Example CPU @ 2.0GHz"
    assert found["flags"] == {"avx512_vnni": True, "avx_vnni": False, "amx_int8": False, "avx512bw": True, "avx2": True}
    assert compress.cpu_int8_flags(tmp_path / "missing") == {"model": "unknown", "flags": {}}


def test_readme_lesson05_states_the_cascade_shares_and_no_flagging():
    recorded = json.loads((config.results_dir() / "lesson05.json").read_text())
    text = report.lesson05(recorded)
    cascade = recorded["router"]["cascade"]
    assert f"{100 * cascade['needs_person_share_to_teacher']:.1f}% of the emails that need a person" in text
    assert f"{100 * cascade['edge_share_to_teacher']:.1f}% of all edge cases" in text
    assert "lesson 02's setting" not in text and "a shorter schedule than lesson 02's" in text


def test_readme_lesson06_names_the_cpu_flags_when_recorded():
    recorded = json.loads((config.results_dir() / "lesson06.json").read_text())
    recorded["router"]["cpu"] = {"model": "Example CPU", "flags": {"avx512_vnni": False, "avx2": True}}
    text = report.lesson06(recorded)
    assert "on Example CPU with avx2 and without avx512_vnni" in text
    recorded["router"]["cpu"] = {"model": "unknown", "flags": {}}
    assert "flags were not readable" in report.lesson06(recorded)


def test_readme_lesson04_prints_the_verdict_over_seeds():
    recorded = json.loads((config.results_dir() / "lesson04.json").read_text())
    recorded["soft_vs_hard_over_seeds"] = {"rows": [{"seed": 0}, {"seed": 1}], "verdict": "no winner: (example)"}
    assert "over seeds [0, 1]: no winner: (example)" in report.lesson04(recorded)
