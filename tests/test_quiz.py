"""The "Check your understanding" quizzes: every lesson's bank against the committed results, the widget,
the static HTML, the notebooks' last cells, and bad input (course_lib.quiz, course_lib/quizzes/)."""
import html
import importlib
import json
import random
import sys
import types
from html.parser import HTMLParser
from pathlib import Path

import ipywidgets as widgets
import pytest

from course_lib import config, quiz
from course_lib.quiz import Option, Question

LESSONS = [f"{n:02d}" for n in range(1, 9)]
REPO = Path(__file__).resolve().parents[1]
MIN_WHY = 60  # characters: a paragraph, not "Wrong."


def bank(lesson):
    return importlib.import_module(f"course_lib.quizzes.lesson{lesson}").QUESTIONS


def resolve(option, results):
    """An option's correctness, computed here independently of quiz.render."""
    return bool(option.correct(results)) if callable(option.correct) else option.correct


# --- every lesson's bank, with the committed full-mode results ------------------------------------------------

@pytest.mark.parametrize("lesson", LESSONS)
def test_bank_has_three_to_five_questions(lesson):
    questions = bank(lesson)
    assert 3 <= len(questions) <= 5
    assert all(isinstance(q, Question) and all(isinstance(o, Option) for o in q.options) for q in questions)


@pytest.mark.parametrize("lesson", LESSONS)
def test_bank_renders_with_one_right_answer_and_a_why_per_option(lesson):
    results = quiz.load_results()
    rendered = quiz.render(lesson)
    assert len(rendered) == len(bank(lesson))
    for number, (question, shown) in enumerate(zip(bank(lesson), rendered), start=1):
        right = [k for k, option in enumerate(question.options) if resolve(option, results)]
        assert right == [shown.answer], f"question {number}: right options {right}"
        assert len(shown.options) == len(shown.whys) == len(question.options) >= 3, f"question {number}"
        assert len(set(shown.options)) == len(shown.options), f"question {number}: two options read the same"
        assert len(set(shown.whys)) == len(shown.whys), f"question {number}: two options share a why"
        assert all(len(why) >= MIN_WHY for why in shown.whys), f"question {number}: a why is not a paragraph"
        assert shown.prompt.strip() and all(text.strip() for text in shown.options)


@pytest.mark.parametrize("lesson", LESSONS)
def test_right_answers_sit_in_different_places(lesson):
    positions = {question.answer for question in quiz.render(lesson)}
    assert len(positions) >= 2, f"lesson {lesson}: every right answer is option {'ABCDE'[positions.pop()]}"


def _altered(value, rng):
    """``value`` with every number moved at random (ints too, so counts can cross 0) and bools flipped at random."""
    if isinstance(value, bool):
        return rng.random() < 0.5
    if isinstance(value, int):
        return max(0, round(value * rng.uniform(0.3, 2.0)) + rng.randint(-2, 2))
    if isinstance(value, float):
        return value * rng.uniform(0.3, 2.0)
    if isinstance(value, list):
        return [_altered(item, rng) for item in value]
    if isinstance(value, dict):
        return {key: _altered(item, rng) for key, item in value.items()}
    return value


def _has_computed_answers(lesson):
    return any(callable(o.correct) for q in bank(lesson) for o in q.options)


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_question_renders_on_other_results_and_fixed_answers_stay_put(lesson):
    """Another full-mode run (other numbers) still renders every text; an answer that is not computed never moves."""
    results, rng = quiz.load_results(), random.Random(1)
    fixed = [n for n, q in enumerate(bank(lesson)) if not any(callable(o.correct) for o in q.options)]
    committed = quiz.render(lesson)
    for _ in range(20):
        shown = quiz.render(lesson, _altered(results, rng))
        assert [shown[n].answer for n in fixed] == [committed[n].answer for n in fixed]


@pytest.mark.parametrize("lesson", [lesson for lesson in LESSONS if _has_computed_answers(lesson)])
def test_callable_answers_give_one_right_option_on_altered_results(lesson):
    """A question whose answer follows the measurements keeps exactly one right option whatever was measured."""
    questions = [(n, q) for n, q in enumerate(bank(lesson), start=1) if any(callable(o.correct) for o in q.options)]
    results, rng = quiz.load_results(), random.Random(0)
    seen = {n: set() for n, _ in questions}
    for _ in range(300):
        altered = _altered(results, rng)
        for n, question in questions:
            right = [k for k, option in enumerate(question.options) if resolve(option, altered)]
            assert len(right) == 1, f"question {n}: right options {right} on altered results"
            seen[n].add(right[0])
    # and the answer does follow the results: some alteration moves it
    assert all(len(answers) >= 2 for answers in seen.values()), f"answers never moved: {seen}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_notebook_ends_with_the_quiz(lesson):
    (path,) = sorted((REPO / "notebooks").glob(f"{lesson}_*.ipynb"))
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = [line.strip() for line in "".join(cells[-1]["source"]).splitlines() if line.strip()]
    assert cells[-1]["cell_type"] == "code"
    assert code == ["from course_lib import quiz", f'quiz.check_your_understanding("{lesson}")']
    assert cells[-2]["cell_type"] == "markdown"
    assert "".join(cells[-2]["source"]).startswith("## Check your understanding\n")
    assert "full-mode run" in "".join(cells[-2]["source"])


# --- a small bank of our own, for exact behaviour -------------------------------------------------------------

RESULTS = {"lesson02": {"errors": [76, 72], "name": "<b>bold</b> & co", "rate": 0.25, "by": {"0.5": 3}}}


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """Install ``course_lib.quizzes.lesson99`` with the questions given; results files in a temporary folder."""
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    (tmp_path / "lesson02.json").write_text(json.dumps(RESULTS["lesson02"]), encoding="utf-8")

    def install(*questions):
        module = types.ModuleType("course_lib.quizzes.lesson99")
        module.QUESTIONS = list(questions)
        monkeypatch.setitem(sys.modules, module.__name__, module)
        return module

    return install


def q(prompt="Which?", right=1, texts=("first", "second", "third"), whys=None, correct=None):
    whys = whys or [f"Why option {k} is what it is, at some length." for k in range(len(texts))]
    flags = correct or [k == right for k in range(len(texts))]
    return Question(prompt, tuple(Option(t, why=w, correct=c) for t, w, c in zip(texts, whys, flags)))


def test_render_formats_fields_and_resolves_callables(toy):
    toy(q("Errors {lesson02[errors][0]} and {lesson02[errors][1]}, rate {lesson02[rate]:.0%}, by {lesson02[by][0.5]}; "
          "{{literal}}",
          correct=[lambda r: r["lesson02"]["rate"] > 0.5, lambda r: r["lesson02"]["rate"] <= 0.5, False]))
    (shown,) = quiz.render("99")
    assert shown.prompt == "Errors 76 and 72, rate 25%, by 3; {literal}"
    assert shown.answer == 1
    assert shown.options == ("first", "second", "third")
    (shown,) = quiz.render("99", {"lesson02": dict(RESULTS["lesson02"], rate=0.75)})
    assert shown.answer == 0 and shown.prompt.startswith("Errors 76 and 72, rate 75%")


def test_callable_reads_results_the_texts_do_not_quote(toy):
    toy(q("No field here?", correct=[False, False, lambda r: r["lesson02"]["errors"] == [76, 72]]))
    assert quiz.render("99")[0].answer == 2


def _static(lesson, prompt, options, whys, answer):
    """The spec's markup, written out here independently of quiz.static_html."""
    out = (f'<div class="course-quiz" data-lesson="{lesson}">\n'
           '  <p class="course-quiz-intro">Check your understanding: click an option to see whether it is right, '
           'and why.</p>\n  <div class="course-quiz-question">\n'
           f'    <p class="course-quiz-prompt"><b>1.</b> {prompt}</p>\n')
    for k, (text, why) in enumerate(zip(options, whys)):
        verdict = "Right." if k == answer else "Not quite."
        out += (f'    <details class="course-quiz-option"><summary>{"ABC"[k]}. {text}</summary>\n'
                f'      <p class="course-quiz-verdict"><b>{verdict}</b> {why}</p></details>\n')
    return out + "  </div>\n</div>\n"


def test_static_html_has_the_markup_and_escapes_every_text(toy):
    toy(q("Is {lesson02[name]} <script>alert(1)</script> safe?", right=2,
          texts=("a < b", 'say "hi"', "R&D"), whys=[f"<img src=x onerror=alert({k})> is text here, not markup." for k in
                                                     range(3)]))
    got = quiz.static_html("99")
    expected = _static("99", "Is &lt;b&gt;bold&lt;/b&gt; &amp; co &lt;script&gt;alert(1)&lt;/script&gt; safe?",
                       ["a &lt; b", "say &quot;hi&quot;", "R&amp;D"],
                       [f"&lt;img src=x onerror=alert({k})&gt; is text here, not markup." for k in range(3)], 2)
    assert got == expected
    assert "<script" not in got and "<img" not in got and "http" not in got


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs).get("class")))


@pytest.mark.parametrize("lesson", LESSONS)
def test_static_html_of_each_lesson_is_well_formed(lesson):
    rendered = quiz.render(lesson)
    parser = _Tags()
    parser.feed(quiz.static_html(lesson))
    classes = [c for _, c in parser.tags]
    assert parser.tags[0] == ("div", "course-quiz")
    assert classes.count("course-quiz-question") == classes.count("course-quiz-prompt") == len(rendered)
    assert classes.count("course-quiz-option") == classes.count("course-quiz-verdict") == sum(
        len(r.options) for r in rendered)
    assert not {tag for tag, _ in parser.tags} - {"div", "p", "b", "details", "summary"}
    assert quiz.static_html(lesson).count("<b>Right.</b>") == len(rendered)


def test_widget_feedback_shows_the_chosen_options_why(toy):
    tricky = [f"Option {k}: <script>alert({k})</script> & a why long enough to count." for k in range(3)]
    toy(q("First <i>?</i>", right=2, whys=tricky), q("Second?", right=0, texts=("x & y", "z", "w")))
    box = quiz.check_your_understanding("99")
    assert isinstance(box, widgets.VBox) and "course-quiz" in box._dom_classes
    questions = [c for c in box.children if "course-quiz-question" in c._dom_classes]
    assert len(questions) == 2
    for number, (question, shown) in enumerate(zip(questions, quiz.render("99")), start=1):
        prompt, choice, feedback = question.children
        assert f"<b>{number}.</b> {html.escape(shown.prompt)}" in prompt.value
        assert isinstance(choice, widgets.RadioButtons) and choice.value is None
        assert list(choice.options) == [(f"{'ABC'[k]}. {text}", k) for k, text in enumerate(shown.options)]
        assert "course-quiz-feedback" in feedback._dom_classes and feedback.value == ""
        for k in (0, 1, 2):
            choice.value = k
            verdict = "Right." if k == shown.answer else "Not quite."
            assert feedback.value == f"<b>{verdict}</b> {html.escape(shown.whys[k])}"
            assert "<script" not in feedback.value
    assert "&lt;i&gt;?&lt;/i&gt;" in questions[0].children[0].value


def test_widget_display_carries_the_static_html(toy):
    toy(q(right=0))
    bundle = quiz.check_your_understanding("99")._repr_mimebundle_()
    assert bundle["text/html"] == quiz.static_html("99")
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] and "\n" not in bundle["text/plain"]


def test_load_results_reads_every_lesson_file():
    folder = config.results_dir()
    expected = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("lesson[0-9][0-9].json")}
    assert expected and quiz.load_results() == expected
    assert quiz.load_results(["lesson02"]) == {"lesson02": expected["lesson02"]}


# --- bad input: a clear ValueError --------------------------------------------------------------------------

@pytest.mark.parametrize("lesson", ["99", "1", 1, "ab", "001", None])
def test_unknown_lesson(lesson):
    with pytest.raises(ValueError, match="lesson"):
        quiz.render(lesson)


def test_missing_or_corrupt_results_file(toy, tmp_path):
    toy(q("{lesson03[x]}?"))
    with pytest.raises(ValueError, match=r"lesson03\.json is missing.*make course"):
        quiz.render("99")
    (tmp_path / "lesson03.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lesson03\.json cannot be read.*make course"):
        quiz.load_results(["lesson03"])
    with pytest.raises(ValueError, match="lessonNN"):
        quiz.load_results(["../secrets"])


@pytest.mark.parametrize("where, question", [
    ("question 1, prompt", q("{lesson02[erors][0]}?")),                       # a typo in a key
    ("question 1, prompt", q("{lesson02[errors][5]}?")),                      # past the end of a list
    ("question 1, prompt", q("{lesson02[rate]:d}?")),                          # a format that does not fit
    ("question 1, prompt", q("an unmatched { brace?")),
    ("question 1, option B why", q(whys=["A long enough why for option A here.", "{lesson02[nope]}",
                                         "A long enough why for option C here."])),
])
def test_broken_field_names_lesson_question_and_field(toy, where, question):
    toy(question)
    with pytest.raises(ValueError, match=f"lesson 99, {where}"):
        quiz.render("99", RESULTS)


@pytest.mark.parametrize("question, message", [
    (q(correct=[True, True, False]), r"question 2 must have exactly one right option, has 2 \(A, B\)"),
    (q(correct=[False, False, False]), r"question 2 must have exactly one right option, has 0"),
    (q(whys=["fine, at some length here", "   ", "fine, at some length too"]), "question 2, option B: .*why"),
    (q(texts=("same", "same", "other")), "question 2: two options have the same text"),
    (q(correct=[lambda r: r["lesson05"]["x"] > 1, False, False]), r"question 2, option A: .*KeyError"),
    (q(correct=[lambda r: "yes", False, False]), "question 2, option A: correct.*must return a bool"),
    (q(correct=["yes", False, False]), "question 2, option A: correct must be a bool or a callable"),
    (Question("Only one?", (Option("a", why="a long why for a lonely option"),)), "question 2 must have 2 to"),
    ("not a question", "question 2 is a str"),
])
def test_invalid_bank(toy, question, message):
    toy(q(), question)
    with pytest.raises(ValueError, match=message):
        quiz.render("99", RESULTS)


def test_bank_without_questions(toy):
    toy()
    with pytest.raises(ValueError, match="QUESTIONS"):
        quiz.render("99", RESULTS)


def test_results_must_be_a_dict(toy):
    toy(q())
    with pytest.raises(ValueError, match="results must be a dict"):
        quiz.render("99", [RESULTS])
