""""Check your understanding": the questions that end every lesson 01-08.

What lives here:

* :class:`Option` and :class:`Question`, the frozen records a bank (``course_lib/quizzes/lessonNN.py``,
  a list ``QUESTIONS``) is written in. Every ``prompt``, ``text`` and ``why`` is a ``str.format`` template over
  the measured results, so ``{lesson02[soft_target_errors][0]}`` reads ``results/lesson02.json`` and a question
  never quotes a stale number. An option's ``correct`` may be a callable of the same results, for a question
  whose right answer depends on what the last full-mode run measured.
* :func:`load_results` (the ``results/*.json`` files), :func:`render` (texts formatted, the right answer
  resolved, the bank checked), :func:`static_html` (answers folded in ``<details>``, for nbval, HTML exports
  and the site) and :func:`check_your_understanding`, the notebook call: a live ipywidgets quiz that carries the
  static HTML in its display data for front ends without widgets (the pattern of ``plots.temperature_explorer``).
"""
from __future__ import annotations

import html
import importlib
import json
import re
import string
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Union

import ipywidgets as widgets

from . import config

INTRO = "Check your understanding: click an option to see whether it is right, and why."
LETTERS = "ABCDEFGHIJ"
_RESULT_NAME = re.compile(r"lesson\d\d")


@dataclass(frozen=True)
class Option:
    """One answer to a :class:`Question`: its text, the paragraph saying why it is right or wrong, and whether it is right.

    ``correct`` is a bool or a callable taking the results dict (``{"lesson02": {...}, ...}``) and returning a bool.
    """

    text: str
    why: str
    correct: Union[bool, Callable[[dict], bool]] = False


@dataclass(frozen=True)
class Question:
    """A multiple-choice question: a ``prompt`` template and its options (exactly one right once resolved)."""

    prompt: str
    options: tuple


@dataclass(frozen=True)
class RenderedQuestion:
    """A question with its texts formatted from the results and its right option resolved (``answer``, 0-based)."""

    prompt: str
    options: tuple
    whys: tuple
    answer: int


def load_results(names: Optional[Iterable[str]] = None) -> dict:
    """The measured results, ``{"lesson02": parsed results/lesson02.json, ...}``.

    Args:
        names: which files to read (``"lesson02"``, ...); None reads every ``results/lessonNN.json`` present.
    Raises:
        ValueError: a named file is missing or not valid JSON (the message names it and ``make course``).
    """
    folder = config.results_dir()
    if names is None:
        names = _present()
    out = {}
    for name in names:
        if not isinstance(name, str) or not _RESULT_NAME.fullmatch(name):
            raise ValueError(f"results name {name!r} is not of the form 'lessonNN' (e.g. 'lesson02')")
        path = folder / f"{name}.json"
        try:
            out[name] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{path} is missing: the quiz quotes it; `make course` (a full-mode run) writes it") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} cannot be read ({err}); `make course` (a full-mode run) writes it again") from None
    return out


def _present() -> list:
    """The names (``lesson02``, ...) of the ``results/lessonNN.json`` files there are."""
    return sorted(p.stem for p in config.results_dir().glob("lesson*.json") if _RESULT_NAME.fullmatch(p.stem))


def _bank(lesson: str) -> list:
    """The ``QUESTIONS`` of ``course_lib/quizzes/lesson<lesson>.py``; ValueError for an unknown lesson."""
    if not isinstance(lesson, str) or not re.fullmatch(r"\d\d", lesson):
        raise ValueError(f"lesson must be two digits such as '02', got {lesson!r}")
    try:
        module = importlib.import_module(f"course_lib.quizzes.lesson{lesson}")
    except ModuleNotFoundError as err:
        if err.name != f"course_lib.quizzes.lesson{lesson}":
            raise
        raise ValueError(f"lesson {lesson} has no quiz (no course_lib/quizzes/lesson{lesson}.py)") from None
    questions = getattr(module, "QUESTIONS", None)
    if not isinstance(questions, (list, tuple)) or not questions:
        raise ValueError(f"course_lib/quizzes/lesson{lesson}.py must define QUESTIONS, a non-empty list of Question")
    return list(questions)


def _templates(question: Question) -> list:
    """(field name, template) for every text of a question, in order."""
    pairs = [("prompt", question.prompt)]
    for k, option in enumerate(question.options):
        pairs += [(f"option {LETTERS[k]} text", option.text), (f"option {LETTERS[k]} why", option.why)]
    return pairs


def _referenced(questions: list) -> set:
    """The results names (``lesson02``, ...) the banks' format fields read."""
    names = set()
    for question in questions:
        for _, template in _templates(question):
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
            except ValueError:
                continue  # a malformed template is reported, with its place, by _format
            names |= {re.split(r"[.\[]", f, maxsplit=1)[0] for f in fields}
    return {n for n in names if _RESULT_NAME.fullmatch(n)}


def _format(template, results: dict, where: str) -> str:
    """``template.format(**results)``, or a ValueError naming ``where`` and the field that did not resolve."""
    if not isinstance(template, str):
        raise ValueError(f"{where} must be a str, got {type(template).__name__}")
    try:
        return template.format(**results)
    except (KeyError, IndexError, AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: a format field does not resolve ({type(err).__name__}: {err}) in {template!r}; "
                         "fields read results/*.json like {lesson02[key][0]:.1f}, literal braces are doubled") from None


def _is_correct(option: Option, results: dict, where: str) -> bool:
    """An option's ``correct``, resolved against the results (a callable is called)."""
    if isinstance(option.correct, bool):
        return option.correct
    if not callable(option.correct):
        raise ValueError(f"{where}: correct must be a bool or a callable of the results, got {option.correct!r}")
    try:
        verdict = option.correct(results)
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: its correct(results) failed ({type(err).__name__}: {err})") from None
    if not isinstance(verdict, bool) and type(verdict).__name__ != "bool_":
        raise ValueError(f"{where}: correct(results) must return a bool, got {verdict!r}")
    return bool(verdict)


def _render_one(question, results: dict, where: str) -> RenderedQuestion:
    """One question rendered and checked (see :func:`render`)."""
    if not isinstance(question, Question):
        raise ValueError(f"{where} is a {type(question).__name__}, not a Question")
    options = tuple(question.options)
    if not 2 <= len(options) <= len(LETTERS) or not all(isinstance(o, Option) for o in options):
        raise ValueError(f"{where} must have 2 to {len(LETTERS)} options, each an Option")
    prompt = _format(question.prompt, results, f"{where}, prompt")
    texts, whys, right = [], [], []
    for k, option in enumerate(options):
        place = f"{where}, option {LETTERS[k]}"
        texts.append(_format(option.text, results, f"{place} text"))
        whys.append(_format(option.why, results, f"{place} why"))
        if not texts[-1].strip() or not whys[-1].strip():
            raise ValueError(f"{place}: its text and its why (why it is right or wrong) must not be empty")
        if _is_correct(option, results, place):
            right.append(k)
    if len(right) != 1:
        named = ", ".join(LETTERS[k] for k in right) or "none"
        raise ValueError(f"{where} must have exactly one right option, has {len(right)} ({named})")
    if len(set(texts)) != len(texts):
        raise ValueError(f"{where}: two options have the same text")
    return RenderedQuestion(prompt=prompt, options=tuple(texts), whys=tuple(whys), answer=right[0])


def render(lesson: str, results: Optional[dict] = None) -> list:
    """Lesson ``lesson``'s questions with their texts formatted and their right option resolved.

    Args:
        lesson: two digits, ``"01"`` ... ``"08"``.
        results: ``{"lesson02": {...}, ...}``; None reads every ``results/lessonNN.json`` (those the bank quotes must exist).
    Returns:
        a list of :class:`RenderedQuestion`.
    Raises:
        ValueError: unknown lesson, missing results file, a field that does not resolve, a question without
        exactly one right option, an empty ``why`` (the message names lesson, question number and field).
    """
    questions = _bank(lesson)
    if results is None:
        results = load_results(sorted(_referenced(questions) | set(_present())))
    if not isinstance(results, dict):
        raise ValueError(f"results must be a dict like {{'lesson02': {{...}}}}, got {type(results).__name__}")
    return [_render_one(q, results, f"lesson {lesson}, question {i}") for i, q in enumerate(questions, start=1)]


def static_html(lesson: str, results: Optional[dict] = None) -> str:
    """The quiz as static HTML, answers folded in ``<details>`` (no script, no external resource; texts escaped)."""
    return _markup(lesson, render(lesson, results))


def _markup(lesson: str, rendered: list) -> str:
    """:func:`static_html`'s markup for already rendered questions."""
    lines = [f'<div class="course-quiz" data-lesson="{html.escape(lesson)}">',
             f'  <p class="course-quiz-intro">{html.escape(INTRO)}</p>']
    for i, question in enumerate(rendered, start=1):
        lines += ['  <div class="course-quiz-question">',
                  f'    <p class="course-quiz-prompt"><b>{i}.</b> {html.escape(question.prompt)}</p>']
        for k, text in enumerate(question.options):
            lines += [f'    <details class="course-quiz-option"><summary>{LETTERS[k]}. {html.escape(text)}</summary>',
                      f'      <p class="course-quiz-verdict">{feedback_html(question, k)}</p></details>']
        lines.append("  </div>")
    lines.append("</div>")
    return "\n".join(lines) + "\n"


class _QuizBox(widgets.VBox):
    """A VBox whose display also carries the quiz as static HTML, for front ends that cannot show widgets."""

    def __init__(self, children, static: str, **kwargs):
        super().__init__(children, **kwargs)
        self._static_html = static

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/html"] = self._static_html
        bundle["text/plain"] = "Check your understanding (a quiz: live in a widget front end such as JupyterLab)"
        return bundle


def feedback_html(question: RenderedQuestion, chosen: int) -> str:
    """The feedback for option ``chosen`` (0-based): "<b>Right.</b> why" or "<b>Not quite.</b> why", escaped."""
    verdict = "Right." if chosen == question.answer else "Not quite."
    return f"<b>{verdict}</b> {html.escape(question.whys[chosen])}"


def _question_widgets(i: int, question: RenderedQuestion) -> widgets.VBox:
    """Prompt, radio buttons (nothing chosen at start) and a feedback line for one question."""
    prompt = widgets.HTML(f"<p><b>{i}.</b> {html.escape(question.prompt)}</p>")
    choice = widgets.RadioButtons(options=[(f"{LETTERS[k]}. {text}", k) for k, text in enumerate(question.options)],
                                  value=None, layout=widgets.Layout(width="auto"))
    feedback = widgets.HTML("")
    feedback.add_class("course-quiz-feedback")

    def show(change) -> None:
        feedback.value = "" if change["new"] is None else feedback_html(question, change["new"])

    choice.observe(show, names="value")
    box = widgets.VBox([prompt, choice, feedback])
    box.add_class("course-quiz-question")
    return box


# Long option texts wrap instead of being cut off at the radio box's edge.
_WIDGET_STYLE = ("<style>.course-quiz .widget-radio-box label, .course-quiz .jupyter-widget-radio-box label "
                 "{display: flex; align-items: flex-start; height: auto; line-height: 1.4; white-space: normal; "
                 "margin-bottom: 6px;} .course-quiz .widget-radio-box input, .course-quiz .jupyter-widget-radio-box "
                 "input {order: -1; float: none; flex: none; height: auto; margin: 3px 8px 0 1px;}</style>")


def check_your_understanding(lesson: str) -> widgets.VBox:
    """The quiz that ends lesson ``lesson``: make it a cell's last line.

    A widget front end (JupyterLab, Notebook 7, VS Code) shows a live quiz: choose an option and its
    feedback says "Right." or "Not quite." and why. One without widgets (nbval, an HTML export, the site)
    shows :func:`static_html`, answers folded. Numbers come from the last full-mode run's ``results/*.json``.
    """
    rendered = render(lesson)
    children = [widgets.HTML(_WIDGET_STYLE + f"<p>{html.escape(INTRO)}</p>")]
    children += [_question_widgets(i, q) for i, q in enumerate(rendered, start=1)]
    box = _QuizBox(children, _markup(lesson, rendered))
    box.add_class("course-quiz")
    return box
