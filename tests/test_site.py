"""``make site`` (course_lib.site, issue 27): which executed lessons are reused, links, math, widget outputs,
the scan for anything fetched from outside, and one whole build of a two-lesson course."""
import base64
import json
import re

import nbformat
import pytest
from latex2mathml.converter import convert as tex_to_mathml
from nbconvert.filters.markdown_mistune import markdown2html_mistune

from course_lib import site
from course_lib.run_course import source_sha256

v4 = nbformat.v4
PNG = base64.b64encode(bytes.fromhex(  # a 1x1 PNG
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2218bd10000000049454e44ae426082")).decode()


def _lesson(path, *cells):
    nb = v4.new_notebook(cells=[v4.new_markdown_cell(c[3:]) if c.startswith("md:") else v4.new_code_cell(c)
                                for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def _executed(source, target, stamp=None, **changes):
    """A copy of ``source`` as run_course would write it, stamped (``stamp=False``: not stamped)."""
    nb = nbformat.read(str(source), as_version=4)
    if stamp is not False:
        nb.metadata["course_build"] = {"source_sha256": source_sha256(source), "mode": "FAST", "ok": True,
                                       "seconds": 3.0, "finished": "2026-01-02T03:04:05+00:00", **changes}
    nbformat.write(nb, str(target))
    return target


# --- staleness ---

def test_an_executed_lesson_is_reused_only_when_its_stamp_matches_the_source_and_the_run_went_fine(tmp_path):
    source = _lesson(tmp_path / "01_x.ipynb", "md:# One", "print(1)")
    build = tmp_path / "build"
    build.mkdir()
    executed = build / "01_x.ipynb"
    assert "no executed copy" in site.staleness(source, executed)
    _executed(source, executed)
    assert site.staleness(source, executed) is None
    _executed(source, executed, ok=False)
    assert "failed" in site.staleness(source, executed)
    _executed(source, executed)
    _lesson(source, "md:# One", "print(2)")  # the lesson changed since it ran
    assert "changed" in site.staleness(source, executed)


def test_an_unstamped_or_broken_copy_is_run_again_unless_unstamped_ones_are_asked_for(tmp_path):
    source = _lesson(tmp_path / "01_x.ipynb", "print(1)")
    executed = _executed(source, tmp_path / "copy.ipynb", stamp=False)
    assert "not stamped" in site.staleness(source, executed)
    assert site.staleness(source, executed, reuse_unstamped=True) is None
    executed.write_text('{"cells": [', encoding="utf-8")
    assert "unreadable" in site.staleness(source, executed, reuse_unstamped=True)


# --- links ---

PAGES = {"README.md": "index.md", "docs/guide.md": "docs/guide.md", "docs/results.md": "docs/results.md",
         "notebooks/01_soft.ipynb": "lessons/01_soft.ipynb"}


def test_links_to_lessons_and_guides_point_at_their_pages_and_other_links_become_plain_text():
    readme = ("Start [here](notebooks/01_soft.ipynb), read [the guide](docs/guide.md#faq), grade with "
              "[the grader](course_lib/grade/__init__.py) and [exercises](exercises/), see "
              "[the paper](https://arxiv.org/abs/1503.02531) or [below](#results). `[code](docs/guide.md)`")
    text, images = site.rewrite_links(readme, "README.md", "index.md", PAGES)
    assert text == ("Start [here](lessons/01_soft.ipynb), read [the guide](docs/guide.md#faq), grade with "
                    "the grader and exercises, see [the paper](https://arxiv.org/abs/1503.02531) or "
                    "[below](#results). `[code](docs/guide.md)`")
    assert images == set()
    # from a guide: relative to docs/; a link that resolves to no page (docs/results/x.md) is text, not a 404
    text, _ = site.rewrite_links("[map](guide.md), [README](../README.md), [card](results/model_card.md), "
                                 "[lesson](../notebooks/01_soft.ipynb)", "docs/results.md", "docs/results.md", PAGES)
    assert text == "[map](guide.md), [README](../index.md), card, [lesson](../lessons/01_soft.ipynb)"


def test_a_notebooks_links_point_at_the_built_pages_because_mkdocs_does_not_rewrite_them():
    """Found by the site's browser test: lesson 04's link to docs/router_tool.md was left as ../docs/router_tool.md."""
    pages = {**PAGES, "docs/router_tool.md": "docs/router_tool.md", "notebooks/02_kd.ipynb": "lessons/02_kd.ipynb"}
    text, _ = site.rewrite_links("[tool](../docs/router_tool.md#cli), [02](02_kd.ipynb), [home](../README.md), "
                                 "[code](../course_lib/site.py)", "notebooks/01_soft.ipynb", "lessons/01_soft.ipynb",
                                 pages, built=True)
    assert text == "[tool](../../docs/router_tool/#cli), [02](../02_kd/), [home](../../), code"


def test_an_image_a_guide_shows_is_kept_and_listed_for_copying_a_missing_one_becomes_its_alt_text():
    text, images = site.rewrite_links("![the curve](img/curve.png \"title\") and ![gone](img/gone.png)",
                                      "docs/guide.md", "docs/guide.md", PAGES, files={"docs/img/curve.png"})
    assert text == "![the curve](img/curve.png \"title\") and gone"
    assert images == {"docs/img/curve.png"}


# --- math ---

def test_latex_becomes_mathml_outside_code_and_dollar_amounts_stay_text():
    markdown = ("Entropy $H = -\\sum_i p_i$ bits.\n\n$$p_i(T) = \\frac{a}{b}$$\n\n"
                "Prices: $5 and $10, or $5-$10; escaped \\$x\\$. In code: `cost = $x$` and\n"
                "```python\nprint('$a$')\n```\n")
    out = site.convert_math(markdown)
    inline = tex_to_mathml("H = -\\sum_i p_i", display="inline")
    block = tex_to_mathml("p_i(T) = \\frac{a}{b}", display="block")
    assert inline.replace("_", "&#95;") in out and block in out
    assert "$H" not in out and "$$" not in out
    assert "Prices: $5 and $10, or $5-$10; escaped \\$x\\$." in out
    assert "`cost = $x$`" in out and "print('$a$')" in out


def test_the_mathml_survives_the_markdown_renderers_of_both_lessons_and_guides():
    import markdown

    out = site.convert_math("A $a_b * c_d$ and $[x](y) | z$ here.")
    for html in (markdown2html_mistune(out), markdown.markdown(out, extensions=["tables"])):
        assert html.count("<math") == 2 and "<em>" not in html and "<a " not in html
        assert re.search(r"<msub><mi>a</mi><mi>b</mi></msub>", html)


def test_math_that_latex2mathml_cannot_read_is_left_as_it_was(capsys):
    assert site.convert_math("bad $\\left( x$ end") == "bad $\\left( x$ end"
    assert "left as TeX" in capsys.readouterr().err


# --- widget outputs ---

def test_widget_views_give_way_to_their_fallbacks_and_a_bare_widget_goes():
    view = {"version_major": 2, "version_minor": 0, "model_id": "box"}
    state = {"box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}},
             "l": {"model_name": "HTMLModel", "state": {"value": "epochs:\u2007100%"}},
             "p": {"model_name": "FloatProgressModel", "state": {"value": 4.0, "max": 8.0}},
             "r": {"model_name": "HTMLModel", "state": {"value": "\u20074/8\u2007[00:01&lt;00:00]"}}}
    outputs = [
        v4.new_output("display_data", data={site.WIDGET_VIEW: view, "image/png": PNG, "text/plain": "explorer"}),
        v4.new_output("display_data", data={site.WIDGET_VIEW: view, "text/html": "<div>quiz</div>"}),
        v4.new_output("display_data", data={site.WIDGET_VIEW: {**view, "model_id": "gone"}}),
        v4.new_output("display_data", data={site.WIDGET_VIEW: view, "text/plain": "epochs:   0%|   | 0/8"}),
        v4.new_output("stream", text="plain text\n"),
    ]
    nb = v4.new_notebook(cells=[v4.new_code_cell("x", outputs=outputs)])
    nb.metadata["widgets"] = {site.WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}
    assert site.strip_widget_outputs(nb) == 1
    kept = nb.cells[0].outputs
    assert [sorted(o.get("data", {})) for o in kept] == [["image/png", "text/plain"], ["text/html"], ["text/plain"], []]
    assert kept[2].data["text/plain"] == "epochs: 100%|█████     | 4/8 [00:01<00:00]"  # the bar's end, not 0%
    assert kept[3].text == "plain text\n" and "widgets" not in nb.metadata


# --- the external-fetch scan ---

def test_the_scan_catches_cdn_scripts_styles_fonts_frames_and_imports_but_not_plain_links():
    page = """<html><head>
      <script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>
      <link rel="stylesheet" href="//fonts.googleapis.com/css?family=Roboto">
      <link rel="preconnect" href="https://fonts.gstatic.com">
      <link rel="canonical" href="https://example.org/course/">
      <style>@import url("https://fonts.googleapis.com/css2?family=Inter"); .a{background:url(/img/a.png)}</style>
      <script type="module">const m = await import("https://cdnjs.cloudflare.com/mermaid.mjs");</script>
      <script src="assets/local.js"></script></head><body>
      <img src="data:image/png;base64,AAAA"><img src="https://example.org/logo.png" alt="">
      <iframe src="https://www.youtube.com/embed/x"></iframe>
      <div style="background-image: url('http://example.org/bg.png')"></div>
      <a href="https://arxiv.org/abs/1503.02531">Hinton et al.</a></body></html>"""
    found = site.external_fetches(page, "html")
    joined = "\n".join(found)
    for fetched in ("mathjax@3", "fonts.googleapis.com/css?family", "fonts.gstatic.com", "css2?family=Inter",
                    "mermaid.mjs", "logo.png", "youtube.com", "bg.png"):
        assert fetched in joined, fetched
    assert len(found) == 8
    assert "arxiv" not in joined and "canonical" not in joined and "local.js" not in joined


def test_the_scan_reads_stylesheets_and_scripts_and_names_the_file(tmp_path):
    assert site.external_fetches("@import 'https://cdn.example/x.css';\nb{src:url(fonts/a.woff2)}", "css") == [
        "CSS @import https://cdn.example/x.css"]
    assert site.external_fetches('load("https://unpkg.com/lib.js")', "js") == ["JS https://unpkg.com/lib.js"]
    assert site.external_fetches('_t("https://unpkg.com/mermaid@11/dist/mermaid.min.js")', "js") == []
    with pytest.raises(ValueError, match="kind"):
        site.external_fetches("", "svg")
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<p>fine</p><a href="https://arxiv.org">paper</a>', encoding="utf-8")
    (tmp_path / "assets" / "extra.css").write_text("@import url(https://fonts.example/f.css);", encoding="utf-8")
    assert site.scan_site(tmp_path) == ["assets/extra.css: CSS @import https://fonts.example/f.css"]


# --- a whole build ---

def _small_course(tmp_path):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "docs" / "img").mkdir(parents=True)
    (repo / "docs" / "img" / "fig.png").write_bytes(base64.b64decode(PNG))
    (repo / "README.md").write_text(
        "# A small course\n\nLessons: [first](notebooks/00_first.ipynb), [second](notebooks/01_second.ipynb); "
        "the [guide](docs/guide.md); code in [the library](course_lib/x.py).\n", encoding="utf-8")
    (repo / "docs" / "guide.md").write_text("# How it works\n\n![a figure](img/fig.png)\n\nBack [home](../README.md).\n",
                                            encoding="utf-8")
    (repo / "docs" / "extra.md").write_text("# An extra page\n\nText.\n", encoding="utf-8")
    first = _lesson(repo / "notebooks" / "00_first.ipynb", "md:# 00 · First: the start", "print(6 * 7)")
    _lesson(repo / "notebooks" / "01_second.ipynb", "md:# 01 · Second\n\nSoft targets $p_i = e^{z_i/T}$.",
            "from IPython.display import Image, display\nimport base64\n"
            f"display(Image(data=base64.b64decode({PNG!r})))")
    build = tmp_path / "build"
    build.mkdir()
    _executed(first, build / "00_first.ipynb")  # current: reused; 01 is missing: run
    return repo, build


def test_make_site_reuses_current_lessons_runs_missing_ones_and_builds_an_offline_site(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    repo, build = _small_course(tmp_path)
    assert site.main(["--repo", str(repo), "--build", str(build)]) == 0
    out = capsys.readouterr().out
    assert "reuse  00_first.ipynb: FAST mode" in out and "run    01_second.ipynb: no executed copy" in out
    stamp = nbformat.read(str(build / "01_second.ipynb"), as_version=4).metadata["course_build"]
    assert stamp["ok"] is True and stamp["mode"] == "FAST"

    pages = build / "site"
    home = (pages / "index.html").read_text(encoding="utf-8")
    assert 'href="lessons/00_first/"' in home and 'href="lessons/01_second/"' in home
    assert 'href="docs/guide/"' in home and "the library" in home and "course_lib/x.py" not in home
    second = (pages / "lessons" / "01_second" / "index.html").read_text(encoding="utf-8")
    assert "Executed in FAST mode" in second and "make course" in second
    assert "<math" in second and "data:image/png;base64" in second and "mathjax" not in second.lower()
    guide = (pages / "docs" / "guide" / "index.html").read_text(encoding="utf-8")
    assert (pages / "docs" / "img" / "fig.png").exists() and 'src="../img/fig.png"' in guide
    menu = re.findall(r'class="md-nav__link[^"]*"[^>]*>\s*<span class="md-ellipsis">\s*([^<]+?)\s*</span>', home)
    assert menu[:4] == ["Home", "Lessons", "00 · First", "01 · Second"]  # short titles, up to the colon
    assert menu[4:] == ["Guides", "How the course works", "An extra page"]  # docs/'s own titles, unknown ones last
    assert site.scan_site(pages) == []
    config = (build / "site_src" / "mkdocs.yml").read_text(encoding="utf-8")
    assert "font: false" in config and "strict: true" in config


def test_a_lesson_that_fails_to_run_stops_the_build_with_a_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    repo, build = _small_course(tmp_path)
    _lesson(repo / "notebooks" / "01_second.ipynb", "raise RuntimeError('broken lesson')")
    assert site.main(["--repo", str(repo), "--build", str(build)]) == 1
    err = capsys.readouterr().err
    assert "01_second.ipynb (its last run failed)" in err and "not built" in err
    assert not (build / "site").exists()


def test_every_lesson_page_gets_a_banner_saying_how_it_ran(tmp_path):
    source = _lesson(tmp_path / "01_x.ipynb", "print(1)")
    for mode, words in (("FAST", "Executed in FAST mode** on 2026-01-02 03:04 UTC in 0.1 min"),
                        ("full", "Executed in full mode** on 2026-01-02 03:04 UTC")):
        executed = _executed(source, tmp_path / "e.ipynb", mode=mode, seconds=6.0)
        nb = site.prepare_notebook(executed, "notebooks/01_x.ipynb", "lessons/01_x.ipynb", {})
        assert words in nb.cells[0].source and nb.cells[1].source == "print(1)"
        assert ("make course" in nb.cells[0].source) == (mode == "FAST")
    unstamped = site.prepare_notebook(_executed(source, tmp_path / "u.ipynb", stamp=False), "n", "l", {})
    assert "mode not recorded" in unstamped.cells[0].source
    json.dumps(unstamped)  # still a plain notebook


def test_missing_site_tools_are_a_clear_error_before_any_lesson_runs(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mkdocs_jupyter" else real(name, *a))
    monkeypatch.setattr(site, "ensure_executed", lambda *a: pytest.fail("no lesson may run without the tools"))
    assert site.main(["--build", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "mkdocs-jupyter" in err and "requirements-site.txt" in err

