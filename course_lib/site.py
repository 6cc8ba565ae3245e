"""The course as a static website (``make site``), built offline into ``build/site/``.

    python -m course_lib.site [--build DIR] [--out DIR] [--reuse-unstamped]

1. Every lesson ``notebooks/NN_*.ipynb`` needs an executed copy in ``build/`` whose ``course_build`` stamp
   (written by :mod:`course_lib.run_course`) matches the current source and says the run went fine; the
   missing or stale ones are run with ``course_lib.run_course`` in the current mode (``COURSE_FAST`` decides).
2. A MkDocs source folder ``build/site_src/``: ``index.md`` from README.md, the guides from ``docs/``, the
   executed lessons under ``lessons/`` (a first cell saying how and when they ran, widget outputs replaced
   by their static versions, LaTeX turned into MathML), links between them rewritten, ``mkdocs.yml``.
3. ``mkdocs build`` (Material theme without web fonts, mkdocs-jupyter for the lessons) into ``build/site/``.
4. A scan of every built page, stylesheet and script: anything the site would fetch from outside
   (a CDN script, a web font, an ``@import``) fails the build; plain links to papers are fine.

The pieces (:func:`staleness`, :func:`rewrite_links`, :func:`convert_math`, :func:`strip_widget_outputs`,
:func:`external_fetches`, :func:`scan_site`) are public so that tests pin them one by one.
"""
from __future__ import annotations

import argparse
import html
import posixpath
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import nbformat

from . import config
from .config import REPO_ROOT
from .run_course import LESSON_GLOB, lesson_sources, source_sha256

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
#: The guides in docs/, in the order of the site's menu, with their menu titles; other docs/*.md follow them.
GUIDES = (("teaching.md", "Teaching guide"), ("router_tool.md", "Your own router"),
          ("measurements.md", "Measurements"), ("results.md", "Results"), ("library.md", "The library map"),
          ("guide.md", "How the course works"))
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}


class SiteError(RuntimeError):
    """The site cannot be built (a lesson failed to run, a page would fetch from outside, mkdocs failed)."""


# --- 1. executed lessons --------------------------------------------------------------------------------------

def staleness(source: Path, executed: Path, reuse_unstamped: bool = False) -> str | None:
    """Why ``executed`` (a lesson's copy in build/) cannot be used for ``source``; None when it can.

    Usable: its ``course_build`` stamp has the source's current hash and ``ok`` true. ``reuse_unstamped``
    also accepts a copy without a stamp (written by run_course before it stamped), whose age cannot be told.
    """
    if not Path(executed).exists():
        return "no executed copy in build/"
    try:
        nb = nbformat.read(str(executed), as_version=4)
    except Exception as exc:  # a truncated or hand-broken file: run it again
        return f"the executed copy is unreadable ({type(exc).__name__})"
    stamp = nb.metadata.get("course_build")
    if not isinstance(stamp, dict):
        if reuse_unstamped:
            return None
        return "not stamped by run_course (an older build; --reuse-unstamped reuses it unchecked)"
    if stamp.get("source_sha256") != source_sha256(source):
        return "the lesson changed since it ran"
    if stamp.get("ok") is not True:
        return "its last run failed"
    return None


def ensure_executed(repo: Path, build: Path, reuse_unstamped: bool = False) -> list[Path]:
    """The executed copy of every lesson in ``build``: reused when current, run with run_course otherwise."""
    sources = lesson_sources(repo)
    if not sources:
        raise ValueError(f"no lessons ({LESSON_GLOB}) in {Path(repo) / 'notebooks'}")
    stale = {}
    for source in sources:
        executed = build / source.name
        reason = staleness(source, executed, reuse_unstamped)
        if reason is None:
            print(f"reuse  {source.name}: {_describe(_stamp_of(executed), executed)}")
        else:
            stale[source] = reason
            print(f"run    {source.name}: {reason}")
    if stale:
        mode = "FAST" if config.is_fast() else "full"
        print(f"running {len(stale)} lesson(s) in {mode} mode with course_lib.run_course "
              f"({'COURSE_FAST=1' if mode == 'FAST' else 'COURSE_FAST unset'})", flush=True)
        command = [sys.executable, "-m", "course_lib.run_course", *map(str, stale), "--out", str(build)]
        subprocess.run(command, check=False)
        failed = {s.name: r for s in stale if (r := staleness(s, build / s.name, reuse_unstamped))}
        if failed:
            listed = "; ".join(f"{name} ({reason})" for name, reason in failed.items())
            raise SiteError(f"these lessons did not run cleanly, so the site was not built: {listed}. The table "
                            "above shows the error; run the lesson in JupyterLab (make lab) to see it in place.")
    return [build / source.name for source in sources]


def _stamp_of(executed: Path) -> dict | None:
    stamp = nbformat.read(str(executed), as_version=4).metadata.get("course_build")
    return stamp if isinstance(stamp, dict) else None


def _when(stamp: dict | None, executed: Path) -> str:
    """The run's end as 'YYYY-MM-DD HH:MM UTC' (the file's time for an unstamped copy)."""
    from datetime import timezone

    try:
        moment = datetime.fromisoformat(stamp["finished"]) if stamp else None
    except (KeyError, TypeError, ValueError):
        moment = None
    if moment is None:
        moment = datetime.fromtimestamp(Path(executed).stat().st_mtime, tz=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _describe(stamp: dict | None, executed: Path) -> str:
    if stamp is None:
        return f"mode not recorded (unstamped), file written {_when(None, executed)}"
    return f"{stamp.get('mode', '?')} mode, finished {_when(stamp, executed)}"


# --- 2. the MkDocs source folder -------------------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)", re.S)


def _pieces(markdown: str) -> list[tuple[bool, str]]:
    """``markdown`` cut into ``(is_code, text)`` pieces: fenced code blocks and inline code spans are code."""
    blocks, prose, code, fence = [], [], [], None
    for line in markdown.splitlines(keepends=True):
        opening = _FENCE.match(line)
        if fence is None and opening:
            blocks.append((False, "".join(prose)))
            prose, code, fence = [], [line], opening.group(1)
        elif fence is not None:
            code.append(line)
            if re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", line):
                blocks.append((True, "".join(code)))
                code, fence = [], None
        else:
            prose.append(line)
    blocks += [(True, "".join(code))] if fence is not None else [(False, "".join(prose))]
    pieces = []
    for is_code, text in blocks:
        if is_code:
            pieces.append((True, text))
            continue
        start = 0
        for span in _CODE_SPAN.finditer(text):
            pieces += [(False, text[start:span.start()]), (True, span.group(0))]
            start = span.end()
        pieces.append((False, text[start:]))
    return [piece for piece in pieces if piece[1]]


def _on_prose(markdown: str, change) -> str:
    """Apply ``change`` to the parts of ``markdown`` outside code blocks and code spans."""
    return "".join(text if is_code else change(text) for is_code, text in _pieces(markdown))


_DISPLAY_MATH = re.compile(r"(?<!\\)\$\$(.+?)(?<!\\)\$\$", re.S)
# Pandoc's rule: the opening $ has a non-space on its right, the closing $ a non-space on its left and no digit
# after it; so "$5 and $10" stays text. No blank line inside.
_INLINE_MATH = re.compile(r"(?<![\\$\w])\$(?=[^\s$])((?:\\.|[^\\$\n]|\n(?![ \t]*\n))+?)(?<=[^\s\\])\$(?![\d$])")
# Characters Markdown would act on inside the MathML, written as character references.
_MD_SAFE = str.maketrans({c: f"&#{ord(c)};" for c in "*_\\`[]|$~"})


def convert_math(markdown: str) -> str:
    """LaTeX math in ``markdown`` (``$...$`` and ``$$...$$``, not in code, not dollar amounts) as MathML.

    The browser draws MathML itself, so the site needs no MathJax. A formula latex2mathml cannot read is left
    as it was, with a warning.
    """
    from latex2mathml.converter import convert

    def mathml(tex: str, display: str, original: str) -> str:
        try:
            return convert(tex.strip(), display=display).translate(_MD_SAFE)
        except Exception as exc:  # latex2mathml raises many types on TeX it does not know
            print(f"warning: left as TeX, latex2mathml could not convert {original!r}: {exc}", file=sys.stderr)
            return original

    def change(text: str) -> str:
        text = _DISPLAY_MATH.sub(lambda m: mathml(m.group(1), "block", m.group(0)), text)
        return _INLINE_MATH.sub(lambda m: mathml(m.group(1), "inline", m.group(0)), text)

    return _on_prose(markdown, change)


_LINK = re.compile(r"(?P<image>!?)\[(?P<text>(?:[^\[\]]|\[[^\[\]]*\])*)\]"
                   r"\(\s*(?P<target><[^>]*>|[^\s)]*)(?P<title>\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)


def _page_url(site_path: str) -> str:
    """The folder a source page is built into (``use_directory_urls``): ``lessons/01_x.ipynb`` -> ``lessons/01_x/``."""
    stem = posixpath.splitext(site_path)[0]
    if posixpath.basename(stem) == "index":
        stem = posixpath.dirname(stem)
    return f"{stem}/" if stem else ""


def rewrite_links(markdown: str, source: str, here: str, pages: dict[str, str],
                  files: set[str] | frozenset = frozenset(), built: bool = False) -> tuple[str, set[str]]:
    """Markdown links of a file at repo path ``source``, for its copy at site path ``here``.

    ``pages`` maps repo paths to site paths (``"notebooks/01_x.ipynb" -> "lessons/01_x.ipynb"``); a link to one
    becomes a relative link to its site page (MkDocs then checks it and points it at the built page). An image
    whose repo path is in ``files`` (existing files) keeps its path and is returned, to be copied. A link to
    anything else in the repository (code, results, folders) becomes plain text: the site has no broken links.
    Web links, ``mailto:`` and in-page anchors stay. Returns ``(markdown, images to copy)``.
    ``built=True`` (a notebook's cells, which MkDocs does not rewrite) links to the built page's URL instead.
    """
    images: set[str] = set()

    def one(match: re.Match) -> str:
        image, text, target = match["image"], match["text"], match["target"].strip("<>")
        if not target or _EXTERNAL.match(target) or target.startswith("#"):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), unquote(path)))
        if resolved in pages:
            if built:
                relative = posixpath.relpath(_page_url(pages[resolved]) or ".", _page_url(here) or ".") + "/"
            else:
                relative = posixpath.relpath(pages[resolved], posixpath.dirname(here) or ".")
            return f"{image}[{text}]({relative}{'#' + anchor if anchor else ''}{match['title'] or ''})"
        if image and resolved in files and posixpath.splitext(resolved)[1].lower() in IMAGE_SUFFIXES:
            images.add(resolved)
            relative = posixpath.relpath(resolved, posixpath.dirname(here) or ".")
            return f"![{text}]({relative}{match['title'] or ''})"
        return text  # not on the site: the words stay, the link goes

    return _on_prose(markdown, lambda prose: _LINK.sub(one, prose)), images


def _progress_text(state: dict, model_id: str) -> str | None:
    """A tqdm bar's final line (``"label: 100%|██████████| 94/94 [00:09<00:00]"``) from the saved widget state."""
    box = state.get(model_id, {})
    children = [state.get(child.removeprefix("IPY_MODEL_"), {}) for child in box.get("state", {}).get("children", [])]
    names = [child.get("model_name") for child in children]
    if box.get("model_name") != "HBoxModel" or names != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (child.get("state", {}) for child in children)
    full = bar.get("max") or 0
    filled = round(10 * min(max(bar.get("value", 0) / full, 0), 1)) if full else 0
    text = f"{html.unescape(left.get('value', ''))}|{'█' * filled}{' ' * (10 - filled)}|{html.unescape(right.get('value', ''))}"
    return text.replace("\u2007", " ")


def strip_widget_outputs(nb) -> int:
    """Widget views out of ``nb``'s outputs, in place; returns how many outputs were dropped.

    A widget output keeps its other representations (the explorers' and quizzes' image/png or text/html
    fallbacks); a progress bar's text is replaced by its final state when the notebook saved it (its
    text/plain is the bar at 0%); a widget with nothing else is dropped. The saved widget state goes too (the
    site runs no widget manager, and loading one would mean a CDN).
    """
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    dropped = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                view = data.pop(WIDGET_VIEW)
                bare = set(data) <= {"text/plain"}  # only a text repr, which for a progress bar is its start
                progress = _progress_text(state, view.get("model_id", "")) if bare and isinstance(view, dict) else None
                if progress is not None:
                    data["text/plain"] = progress
                if not data:
                    dropped += 1
                    continue
            kept.append(output)
        cell.outputs = kept
    nb.metadata.pop("widgets", None)
    return dropped


def _banner(stamp: dict | None, executed: Path) -> str:
    """The first cell of a lesson page: how and when it was executed."""
    when = _when(stamp, executed)
    widgets = ("A slider shows a picture of its starting position (to move it, open the notebook in JupyterLab: "
               "`make lab`); the questions at the end work here too: click an option.")
    if stamp is None:
        return (f"> **Executed by an older `make course`** (mode not recorded; file written {when}). Run `make "
                f"course`, then `make site`, for a page that says which mode it shows. {widgets}")
    seconds = stamp.get("seconds")
    took = f" in {seconds / 60:.1f} min" if isinstance(seconds, (int, float)) else ""
    if stamp.get("mode") == "FAST":
        return (f"> **Executed in FAST mode** on {when}{took}. FAST mode shrinks the lesson to a smoke test: its "
                "numbers can contradict the lesson's conclusions. For the real ones run `make course` (full mode), "
                f"then `make site`. {widgets}")
    return f"> **Executed in full mode** on {when}{took}: every number below comes from that run. {widgets}"


def prepare_notebook(executed: Path, source: str, here: str, pages: dict[str, str]) -> nbformat.NotebookNode:
    """The site's copy of an executed lesson: banner first, widgets static, math as MathML, links rewritten."""
    nb = nbformat.read(str(executed), as_version=4)
    stamp = nb.metadata.get("course_build")
    strip_widget_outputs(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = convert_math(rewrite_links(cell.source, source, here, pages, built=True)[0])
    banner = nbformat.v4.new_markdown_cell(_banner(stamp if isinstance(stamp, dict) else None, executed))
    banner.id = "course-site-banner"
    nb.cells.insert(0, banner)
    return nb


def _first_heading(text: str) -> str | None:
    found = re.search(r"^# +(.+?)\s*$", text, re.M)
    return found.group(1) if found else None


def _lesson_title(source: Path) -> str:
    """Menu title: the notebook's heading up to a colon, e.g. '01 · Soft targets'."""
    nb = nbformat.read(str(source), as_version=4)
    for cell in nb.cells:
        heading = _first_heading(cell.source) if cell.cell_type == "markdown" else None
        if heading:
            return heading.split(":")[0].replace("`", "").strip()
    return source.stem.replace("_", " ")


class _RepoFiles:
    """``"docs/x.png" in files``: whether the repository has that file (no walk over the whole tree)."""

    def __init__(self, repo: Path):
        self.repo = Path(repo)

    def __contains__(self, path: str) -> bool:
        return not path.startswith("../") and path != ".." and (self.repo / path).is_file()


def prepare_source(repo: Path, executed: list[Path], folder: Path, out: Path, cache: Path) -> Path:
    """Write the MkDocs source folder: ``folder/mkdocs.yml`` and the pages in ``folder/pages/``; returns the
    config's path."""
    import yaml

    repo, folder = Path(repo), Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    src = folder / "pages"
    (src / "lessons").mkdir(parents=True)
    (src / "docs").mkdir()
    docs = sorted((repo / "docs").glob("*.md"))
    pages = {"README.md": "index.md"}
    pages.update({f"docs/{doc.name}": f"docs/{doc.name}" for doc in docs})
    pages.update({f"notebooks/{nb.name}": f"lessons/{nb.name}" for nb in executed})
    files = _RepoFiles(repo)

    images: set[str] = set()
    for repo_path, site_path in pages.items():
        if site_path.startswith("lessons/"):
            continue
        text, found = rewrite_links((repo / repo_path).read_text(encoding="utf-8"), repo_path, site_path, pages, files)
        if repo_path == "README.md":  # the note on FAST-mode lessons goes under the title
            title = re.match(r"# .*\n+", text)
            cut = title.end() if title else 0
            text = text[:cut] + _home_note(executed) + text[cut:]
        (src / site_path).write_text(convert_math(text), encoding="utf-8")
        images |= found
    for image in images:
        (src / image).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / image, src / image)
    for path in executed:
        nb = prepare_notebook(path, f"notebooks/{path.name}", f"lessons/{path.name}", pages)
        nbformat.write(nb, str(src / "lessons" / path.name))
    (src / "assets").mkdir()
    (src / "assets" / "course.css").write_text(_CSS, encoding="utf-8")

    lessons = [{_lesson_title(repo / "notebooks" / path.name): f"lessons/{path.name}"} for path in executed]
    known = dict(GUIDES)
    order = [name for name, _ in GUIDES if (repo / "docs" / name).exists()]
    order += [doc.name for doc in docs if doc.name not in known]
    guides = [{known.get(name) or _first_heading((repo / "docs" / name).read_text(encoding="utf-8")) or name:
               f"docs/{name}"} for name in order]
    settings = {
        "site_name": "The Distillation Course",
        "docs_dir": str(src.resolve()),
        "site_dir": str(Path(out).resolve()),
        "use_directory_urls": True,
        "strict": True,
        "validation": {"omitted_files": "warn", "absolute_links": "warn", "unrecognized_links": "warn",
                       "anchors": "warn"},
        "theme": {"name": "material", "font": False,
                  "features": ["navigation.footer", "navigation.sections", "navigation.top", "content.code.copy"]},
        "extra_css": ["assets/course.css"],
        "markdown_extensions": ["tables", "admonition", "attr_list", {"toc": {"permalink": True}}],
        "plugins": ["search", {"mkdocs-jupyter": {
            "include": ["lessons/*.ipynb"], "execute": False, "include_requirejs": False,
            "ignore_h1_titles": True,  # the menu's short titles, not each notebook's long heading
            "cache_dir": str(Path(cache).resolve()), "toc_depth": 3}}],
        "nav": [{"Home": "index.md"}, {"Lessons": lessons}, {"Guides": guides}],
    }
    config_path = folder / "mkdocs.yml"  # beside the pages: MkDocs refuses a docs_dir holding its config
    config_path.write_text(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return config_path


def _home_note(executed: list[Path]) -> str:
    """A line for the top of the home page when some lessons show FAST-mode (or unrecorded) runs."""
    modes = {path.name[:2]: (_stamp_of(path) or {}).get("mode") for path in executed}
    notfull = [nn for nn, mode in modes.items() if mode != "full"]
    if not notfull:
        return ""
    return (f"!!! note \"This copy of the site\"\n    Lessons {', '.join(notfull)} show FAST-mode (smoke-test) runs "
            "or runs whose mode was not recorded; their numbers can contradict the lessons' conclusions. "
            "Run `make course` (full mode: the run-time table on the Results page says how long each lesson takes), "
            "then `make site`, for the real ones.\n\n")


_CSS = """\
/* The course site (course_lib/site.py): quizzes folded, MathML readable. No web fonts, no external files. */
.course-quiz { border-left: 4px solid var(--md-primary-fg-color); padding: 0.2em 1em; margin: 1em 0; }
.course-quiz-option { border: 1px solid var(--md-default-fg-color--lighter); border-radius: 4px;
  padding: 0.3em 0.8em; margin: 0.4em 0; }
.course-quiz-option summary { cursor: pointer; }
math[display="block"] { display: block; margin: 0.8em 0; overflow-x: auto; }
"""


# --- 3./4. build and scan --------------------------------------------------------------------------------------

# What mkdocs-jupyter's template writes into every lesson and the site must not have: the MathJax loader (an empty
# or CDN src, then its configuration) and a module script that imports Mermaid from cdnjs when a page has a diagram.
_LESSON_LOADERS = re.compile(r"<script[^>]*src=\"(?:[^\"]*mathjax[^\"]*)?\"[^>]*>\s*</script>"
                             r"|<!-- (?:Load mathjax|MathJax configuration|End of mathjax configuration) -->"
                             r"|<script type=\"text/x-mathjax-config\">.*?</script>"
                             r"|<script type=\"module\">(?:(?!</script>).)*?jp-Mermaid.*?</script>", re.S | re.I)


def _offline_plugin():
    """A MkDocs plugin that removes the MathJax and Mermaid loaders mkdocs-jupyter's template always writes into a
    lesson page (no option turns them off); the math is MathML already and the lessons have no Mermaid diagram."""
    from mkdocs.plugins import BasePlugin

    class OfflineLessons(BasePlugin):
        def on_page_content(self, content, page, config, files):
            return _LESSON_LOADERS.sub("", content)

    return OfflineLessons()


def build_site(config_path: Path) -> None:
    """``mkdocs build`` of ``config_path`` (strict), with the MathJax loader removed from lessons."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    import logging

    show = logging.StreamHandler(sys.stderr)  # MkDocs' own warnings (a broken link...), as its command line shows them
    show.setLevel(logging.WARNING)
    show.setFormatter(logging.Formatter("mkdocs %(levelname)s: %(message)s"))
    logger = logging.getLogger("mkdocs")
    logger.addHandler(show)
    try:
        settings = load_config(str(config_path))
        settings.plugins["course-site-offline"] = _offline_plugin()
        build(settings)
    except MkDocsException as exc:  # strict mode: a warning (a broken link, a missing page) stops the build
        raise SiteError(f"mkdocs build failed: {exc}") from exc
    finally:
        logger.removeHandler(show)


_FETCHING_RELS = {"stylesheet", "icon", "shortcut", "preload", "prefetch", "preconnect", "dns-prefetch",
                  "modulepreload", "manifest", "apple-touch-icon", "mask-icon"}
_FETCHING_ATTRS = {("script", "src"), ("img", "src"), ("img", "srcset"), ("iframe", "src"), ("source", "src"),
                   ("source", "srcset"), ("video", "src"), ("video", "poster"), ("audio", "src"), ("embed", "src"),
                   ("object", "data"), ("input", "src"), ("track", "src"), ("image", "href")}
_OUTSIDE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)
_CSS_URL = re.compile(r"(?P<imp>@import\s*)?(?:url\(\s*(?P<q>['\"]?)(?P<url>[^'\")]*)(?P=q)\s*\)"
                      r"|(?P<q2>['\"])(?P<str>[^'\"]*)(?P=q2))", re.I)
_JS_URL = re.compile(r"([\"'`])(https?://[^\"'`\s]*)")
_JS_IMPORT = re.compile(r"\bimport\s*(?:\(\s*|[\w{}*,\s]+from\s*)([\"'`])((?:https?:)?//[^\"'`]*)", re.I)
#: URLs written in Material's JavaScript bundle that it fetches only for a feature this site does not use.
MATERIAL_CONDITIONAL = {
    "https://unpkg.com/resize-observer-polyfill": "a polyfill for browsers without ResizeObserver (all current "
                                                  "ones have it)",
    "https://unpkg.com/mermaid@": "Mermaid, loaded only for a page with a mermaid diagram (checked: none here)",
    "https://api.github.com/": "repository facts, fetched only when mkdocs.yml sets repo_url (it does not)",
    "https://${": "repository facts from the host in repo_url (GitLab), which mkdocs.yml does not set",
    "https://bit.ly/": "a link in a console warning of the search worker, never fetched",
    "http://www.w3.org/": "XML namespace names, never fetched",
}


def _css_fetches(css: str) -> list[str]:
    found = []
    for match in _CSS_URL.finditer(css):
        url = match["url"] if match["url"] is not None else (match["str"] if match["imp"] else None)
        if url and _OUTSIDE.match(url):
            found.append(f"CSS {'@import' if match['imp'] else 'url()'} {url}")
    return found


class _PageScan(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        for name, value in attrs:
            if value and (tag, name) in _FETCHING_ATTRS and any(_OUTSIDE.match(part.strip().split(" ")[0])
                                                                for part in value.split(",")):
                self.found.append(f"<{tag} {name}=\"{value}\">")
        if tag == "link" and _OUTSIDE.match(values.get("href") or ""):
            rels = set((values.get("rel") or "").lower().split())
            if rels & _FETCHING_RELS:
                self.found.append(f"<link rel=\"{values.get('rel')}\" href=\"{values['href']}\">")
        if values.get("style"):
            self.found += _css_fetches(values["style"])
        self._in = tag if tag in ("style", "script") else None

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "style":
            self.found += _css_fetches(data)
        elif self._in == "script":
            self.found += [f"inline script: {what}" for what in external_fetches(data, "js")]


def external_fetches(text: str, kind: str) -> list[str]:
    """What ``text`` (``kind``: "html", "css" or "js") would fetch from outside the site.

    HTML: script/img/iframe/source/... ``src``, stylesheet/icon/preload ``<link>``s, inline CSS, inline
    ``import``s; a plain ``<a href>`` is not a fetch. CSS: ``url()`` and ``@import``. JavaScript: every absolute
    http(s) URL in a string (what a script could load), except Material's :data:`MATERIAL_CONDITIONAL`.
    """
    if kind == "html":
        scan = _PageScan()
        scan.feed(text)
        scan.close()
        return scan.found
    if kind == "css":
        return _css_fetches(text)
    if kind == "js":
        urls = [m.group(2) for m in _JS_URL.finditer(text)] + [m.group(2) for m in _JS_IMPORT.finditer(text)]
        return [f"JS {url}" for url in dict.fromkeys(urls) if not url.startswith(tuple(MATERIAL_CONDITIONAL))]
    raise ValueError(f"kind must be 'html', 'css' or 'js', not {kind!r}")


def scan_site(site: Path) -> list[str]:
    """Every outside fetch in the built site, as ``"path: what"``; [] for a site that works offline."""
    site = Path(site)
    found = []
    for path in sorted(site.rglob("*")):
        kind = {".html": "html", ".css": "css", ".js": "js"}.get(path.suffix)
        if kind is None or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.relative_to(site)}: {what}" for what in external_fetches(text, kind)]
        if kind == "html" and re.search(r"class=\"[^\"]*\bmermaid\b", text):
            found.append(f"{path.relative_to(site)}: a mermaid diagram (Material would load Mermaid from unpkg.com)")
    return found


#: The importable names of the pinned site tools (requirements-site.txt).
SITE_TOOLS = {"mkdocs": "mkdocs", "mkdocs_jupyter": "mkdocs-jupyter", "material": "mkdocs-material",
              "latex2mathml": "latex2mathml"}


def _check_tools() -> None:
    """A clear error, before any lesson runs, when the site tools are not installed."""
    import importlib.util

    missing = [package for module, package in SITE_TOOLS.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise SiteError(f"the site tools are not installed ({', '.join(missing)}): `make setup` installs them, or "
                        "`pip install -r requirements-site.txt`")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.site", description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, default=REPO_ROOT / "build",
                        help="where the executed lessons are (and missing ones are written); default build/")
    parser.add_argument("--out", type=Path, default=None, help="the site; default BUILD/site")
    parser.add_argument("--repo", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)  # tests: a small course
    parser.add_argument("--reuse-unstamped", action="store_true",
                        help="reuse executed lessons written before run_course stamped them (unchecked: they may "
                             "be stale)")
    args = parser.parse_args(argv)
    out = args.out or args.build / "site"
    start = time.perf_counter()
    try:
        _check_tools()
        executed = ensure_executed(args.repo, args.build, args.reuse_unstamped)
        config_path = prepare_source(args.repo, executed, args.build / "site_src", out, args.build / "site_cache")
        if out.exists():
            shutil.rmtree(out)
        build_site(config_path)
        outside = scan_site(out)
        if outside:
            raise SiteError("the site would fetch from outside (it must work without internet):\n  "
                            + "\n  ".join(outside))
    except (SiteError, ValueError) as exc:
        print(f"make site: {exc}", file=sys.stderr)
        return 1
    print(f"site: {out / 'index.html'} ({len(executed)} lessons, {time.perf_counter() - start:.0f} s); serve it "
          f"with `python -m http.server -d {out}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
