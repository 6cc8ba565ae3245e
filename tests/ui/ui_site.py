"""The course website in a real browser, offline, in headless Chromium (`make ui-test`, after `make site`).

Serves the built site (``build/site/``) from a local HTTP server on 127.0.0.1 and opens every page in
headless Chromium with every other request blocked (the site must work without internet). Pages are the
``.html`` files under the site folder plus any page reached through an internal link. Fails on:

* a console error or an uncaught page error;
* a request that failed, was blocked (anything not to the local server) or got an HTTP status >= 400;
* an ``<img>`` that did not load (it does not decode, or has no size, once the page has loaded);
* an internal link (``a[href]`` to the local server, relative ones included) whose target does not
  answer 200, or whose ``#fragment`` is not an ``id`` or ``name`` on the target page as the browser
  renders it (``mailto:`` and external links are not followed);
* a lesson page (``lessons/NN_name/``) with no figure in its content: a loaded ``<img>`` of real size or
  an inline ``<svg>`` chart (icons are too small to count);
* a lesson page 01-08 without a ``.course-quiz`` block, or whose first question does not answer: its
  first option's verdict must be folded, and visible after a click on the option's ``<summary>``,
  starting with "Right." or "Not quite." (lesson 00 has no quiz);
* LaTeX left unrendered in a page's text (``$...$`` holding a backslash or ``^ _ = < >``, or ``$$...$$``;
  code and cell outputs aside);
* a lesson in ``notebooks/`` (``--lessons-from``; ``''`` skips this) with no page on the site.

Problems are printed per page, then a summary (pages, images, links, quizzes); exit status 1 if any.
Full-page screenshots go to ``build/ui/site/``: ``home.png`` and ``lesson_01.png`` (after its quiz's first
option was opened; the first lesson page's if there is no lesson 01).

``--self-test`` builds a small site of plain HTML pages with known faults in a temporary folder (a broken
image, a broken internal link, a bad fragment, a lesson without a figure, one without a quiz, a CDN
script, a JavaScript error, ...) and checks that each is reported and that the clean pages are not.

Not collected by pytest (the name does not start with ``test_``): it needs a browser.

    .venv/bin/python tests/ui/ui_site.py [--site build/site] [--chromium PATH] [--lessons-from notebooks]
    .venv/bin/python tests/ui/ui_site.py --self-test [--chromium PATH]
"""
from __future__ import annotations

import argparse
import base64
import functools
import http.server
import os
import re
import struct
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "build" / "ui" / "site"
LESSON_PAGE = re.compile(r"^/lessons/(\d\d)_[^/]+/(index\.html)?$")
SHOT_LESSON = "01"  # the lesson page whose screenshot is kept (falls back to the first lesson page)

# Gathers, once the page has loaded: every image (lazy ones made eager and awaited), whether the lesson
# content holds a figure, every link's resolved href and every id/name a #fragment may point at.
JS_INSPECT = r"""async () => {
  const images = Array.from(document.images);
  for (const img of images) img.loading = 'eager';
  const settle = (img) => new Promise((resolve) => {
    if (img.complete) return resolve();
    img.addEventListener('load', resolve); img.addEventListener('error', resolve); setTimeout(resolve, 10000);
  });
  await Promise.all(images.map(settle));
  const decoded = await Promise.all(images.map((img) => img.decode().then(() => true, () => false)));
  const content = document.querySelector('.jupyter-wrapper, .jp-Notebook, article, main') || document.body;
  const real = (el) => { const box = el.getBoundingClientRect(); return box.width >= 100 && box.height >= 60; };
  const imgs = images.map((img, i) => {
    const src = img.currentSrc || img.getAttribute('src') || '';
    const isSvg = /\.svg([?#]|$)|^data:image\/svg/i.test(src);
    const loaded = decoded[i] && (img.naturalWidth > 0 || isSvg);
    return {src: src.startsWith('data:') ? src.slice(0, 40) + '...' : src, loaded,
            figure: loaded && content.contains(img) && real(img)
              && (isSvg || Math.min(img.naturalWidth, img.naturalHeight) >= 60)};
  });
  const svgCharts = Array.from(content.querySelectorAll('svg')).filter((svg) => !svg.parentElement.closest('svg') && real(svg));
  const links = Array.from(document.querySelectorAll('a[href]')).map((a) => a.href);
  const anchors = Array.from(document.querySelectorAll('[id]')).map((el) => el.id)
    .concat(Array.from(document.querySelectorAll('a[name]')).map((el) => el.getAttribute('name')));
  const prose = (document.querySelector('article') || document.body).cloneNode(true);
  prose.querySelectorAll('pre, code, script, style, math, mjx-container, .jp-OutputArea').forEach((el) => el.remove());
  const latex = prose.textContent.match(/\$\$[^$]{1,160}\$\$|\$[^$\n]{0,80}[\\^_=<>][^$\n]{0,80}\$/g) || [];
  return {images: imgs, svgCharts: svgCharts.length, links, anchors, latex: latex.slice(0, 3)};
}"""


@dataclass
class Report:
    """What the run found: problems per page (site path) and counts for the summary."""

    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    pages: int = 0
    images: int = 0
    links: int = 0
    link_targets: int = 0
    quizzes: int = 0
    lesson_pages: list[str] = field(default_factory=list)

    def add(self, page: str, problem: str) -> None:
        if problem not in self.problems[page]:
            self.problems[page].append(problem)

    def print(self, seconds: float, label: str = "") -> None:
        for page in sorted(self.problems):
            if self.problems[page]:
                print(f"FAIL {page}")
                for problem in self.problems[page]:
                    print(f"       {problem}")
        failed = sum(1 for p in self.problems.values() if p)
        print(f"{label}{'FAILED' if failed else 'passed'}: {self.pages} pages visited ({len(self.lesson_pages)} lesson pages), "
              f"{self.images} images checked, {self.links} links checked ({self.link_targets} distinct targets), "
              f"{self.quizzes} quizzes answered; {failed} pages with problems; {seconds:.1f} s")


class _Handler(http.server.SimpleHTTPRequestHandler):
    """A static file server as a web host behaves: no directory listings (a folder without index.html is 404)."""

    def list_directory(self, path):
        self.send_error(404, "No index.html here")
        return None

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the browser closed a page mid-transfer: fine
            super().handle_error(request, client_address)


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serves ``site`` on 127.0.0.1 at a free port, in a daemon thread; returns (server, base URL)."""
    server = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def fetch_status(url: str) -> tuple[int, str]:
    """(HTTP status after redirects, content type) of a GET to the local server."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        return error.code, ""


def site_path(url: str, base: str) -> str:
    """The path part of a local URL, unquoted ('/lessons/01_x/'); the label pages are reported under."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url[len(base):] or "/").path) or "/"


def page_key(path: str) -> str:
    """One key per page: '/a/' and '/a/index.html' are the same page."""
    return path[: -len("index.html")] if path.endswith("/index.html") else path


def is_page(path: str) -> bool:
    return path.endswith(("/", ".html", ".htm"))


@dataclass
class Visit:
    """The state of one run over a site: where it is served, what was found so far."""

    base: str  # the local server's URL
    out: Path  # where screenshots go
    report: Report = field(default_factory=Report)
    anchors: dict[str, set[str]] = field(default_factory=dict)  # page key -> ids and names on it
    link_uses: list[tuple[str, str, str, str]] = field(default_factory=list)  # (page, href, target path, fragment)
    shots: dict[str, Path] = field(default_factory=dict)
    statuses: dict[str, tuple[int, str]] = field(default_factory=dict)  # target path -> (HTTP status, type)
    current: str = "/"  # the page being checked: whom the route blames for a blocked request


class _Watch:
    """Records a page's console errors, page errors and failed requests as problems of that page, until stopped."""

    def __init__(self, page, visit: Visit, path: str):
        self.visit, self.path, self.open, self.failed_urls = visit, path, True, set()
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.problem(f"page error: {error}"))
        page.on("requestfailed", self.on_failed)
        page.on("response", self.on_response)

    def problem(self, text: str) -> None:
        if self.open:  # what a page does while it is being closed is no fault of its own
            self.visit.report.add(self.path, text)

    def on_console(self, msg) -> None:
        url = (msg.location or {}).get("url", "")
        if msg.type != "error" or (msg.text.startswith("Failed to load resource") and url in self.failed_urls):
            return  # not an error, or already reported as the failed request itself
        self.problem(f"console error: {msg.text}" + (f" ({url})" if url else ""))

    def on_failed(self, request) -> None:
        self.failed_urls.add(request.url)
        if request.url.startswith(self.visit.base + "/"):  # others were blocked, and reported, by the route
            self.problem(f"request failed: {request.url} ({request.failure})")

    def on_response(self, response) -> None:
        if response.status >= 400:
            self.failed_urls.add(response.url)
            self.problem(f"HTTP {response.status}: {response.url}")


def check_page(context, visit: Visit, path: str) -> list[str]:
    """Opens one page, checks it, records its ids and links; returns the local paths its links lead to."""
    page = context.new_page()
    watch = _Watch(page, visit, path)
    visit.current = path
    try:
        page.goto(visit.base + path, wait_until="load", timeout=30_000)
        try:
            page.wait_for_load_state("networkidle", timeout=5_000)
        except PlaywrightTimeout:
            pass  # a page that keeps polling is not a fault by itself
        found = page.evaluate(JS_INSPECT)
    except PlaywrightError as error:
        watch.problem(f"could not load the page: {error.message.splitlines()[0]}")
        found = None
    if found is not None:
        visit.report.pages += 1
        visit.anchors[page_key(path)] = set(found["anchors"])
        check_content(page, visit.report, path, found, watch.problem)
        take_screenshots(page, visit, path)
        page.wait_for_timeout(100)  # late errors (timers, workers) still count for this page
    watch.open = False
    page.close()
    return record_links(visit, path, found["links"]) if found else []


def check_content(page, report: Report, path: str, found: dict, problem) -> None:
    """Images, raw LaTeX; on a lesson page its figure and its quiz."""
    report.images += len(found["images"])
    for img in found["images"]:
        if not img["loaded"]:
            problem(f"image did not load: {img['src'] or '(no src)'}")
    if found["latex"]:
        shown = [" ".join(tex.split())[:60] for tex in found["latex"]]
        problem(f"unrendered LaTeX in the text: {', '.join(shown)}")
    lesson = LESSON_PAGE.match(path)
    if lesson:
        report.lesson_pages.append(lesson.group(1))
        if not any(img["figure"] for img in found["images"]) and not found["svgCharts"]:
            problem("lesson page with no figure (no loaded <img> of real size, no inline <svg> chart in its content)")
        if lesson.group(1) != "00":
            check_quiz(page, problem, report)


def record_links(visit: Visit, path: str, hrefs: list[str]) -> list[str]:
    """Keeps the page's links to the local server for check_links; returns their target paths."""
    targets = []
    for href in hrefs:
        if not href.startswith(visit.base + "/") and href != visit.base:
            continue  # mailto:, javascript:, external links: not fetched
        visit.report.links += 1
        target, _, fragment = href.partition("#")
        targets.append(site_path(target, visit.base))
        visit.link_uses.append((path, href, targets[-1], urllib.parse.unquote(fragment)))
    return targets


def take_screenshots(page, visit: Visit, path: str) -> None:
    """Full-page screenshots of the home page and of lesson SHOT_LESSON (else the first lesson page)."""
    lesson = LESSON_PAGE.match(path)
    if lesson and (lesson.group(1) == SHOT_LESSON or "lesson" not in visit.shots):
        if "lesson" in visit.shots:
            visit.shots["lesson"].unlink()
        name, file = "lesson", visit.out / f"lesson_{lesson.group(1)}.png"
    elif page_key(path) == "/":
        name, file = "home", visit.out / "home.png"
    else:
        return
    page.evaluate("() => window.scrollTo(0, 0)")  # sticky headers are drawn where the page is scrolled to
    page.wait_for_timeout(200)
    page.screenshot(path=str(file), full_page=True)
    visit.shots[name] = file


def check_quiz(page, problem, report: Report) -> None:
    """The first question's first option: folded answer, then 'Right.'/'Not quite.' visible after a click."""
    quiz = page.locator(".course-quiz")
    if quiz.count() == 0:
        problem("lesson page without a .course-quiz block (Check your understanding)")
        return
    option = quiz.first.locator(".course-quiz-question").first.locator("details.course-quiz-option").first
    verdict = option.locator(".course-quiz-verdict")
    if option.count() == 0 or verdict.count() == 0:
        problem("quiz: no .course-quiz-question > details.course-quiz-option with a .course-quiz-verdict")
        return
    if verdict.is_visible():
        problem("quiz: the first option's verdict is visible before it is clicked (answers must be folded)")
    try:
        option.locator("summary").first.click(timeout=5_000)
        verdict.wait_for(state="visible", timeout=5_000)
    except PlaywrightError as error:
        problem(f"quiz: clicking the first option did not show its verdict ({error.message.splitlines()[0]})")
        return
    text = verdict.inner_text().strip()
    if not text.startswith(("Right.", "Not quite.")):
        problem(f"quiz: the verdict does not start with 'Right.' or 'Not quite.': {text[:80]!r}")
    else:
        report.quizzes += 1


def status_of(visit: Visit, target: str) -> tuple[int, str]:
    """(HTTP status, content type) of a local path, fetched once."""
    if target not in visit.statuses:
        visit.statuses[target] = fetch_status(visit.base + urllib.parse.quote(target))
    return visit.statuses[target]


def check_links(visit: Visit) -> None:
    """Every internal link's target answers 200 and holds its #fragment (HTML spec: '#top' is always fine)."""
    for source, href, target, fragment in visit.link_uses:
        status, content_type = status_of(visit, target)
        if status != 200:
            visit.report.add(source, f"broken link: {href} (HTTP {status})")
        elif fragment and fragment.lower() != "top" and not fragment.startswith(":~:") and content_type == "text/html":
            ids = visit.anchors.get(page_key(target))
            if ids is not None and fragment not in ids:
                visit.report.add(source, f"link to a missing #fragment: {href} (no id or name {fragment!r} on {target})")
    visit.report.link_targets = len({target for _, _, target, _ in visit.link_uses})


def expected_lessons(lessons_from: Path | None) -> list[str]:
    """'NN_name' of every lesson notebook in ``lessons_from`` (none if not given)."""
    if lessons_from is None:
        return []
    return sorted(p.stem for p in lessons_from.glob("[0-9][0-9]_*.ipynb"))


def check_site(site: Path, chromium: str, lessons_from: Path | None = None, out: Path = OUT,
               quiet: bool = False) -> Report:
    """Visits the whole site in one browser context; returns the report (problems per page, counts)."""
    report = Report()
    if not (site / "index.html").is_file():
        report.add("/", f"no home page: {site / 'index.html'} does not exist (run make site)")
        return report
    for name in expected_lessons(lessons_from):
        if not (site / "lessons" / name / "index.html").is_file():
            report.add(f"/lessons/{name}/", f"lesson {name} has no page on the site (expected lessons/{name}/index.html)")
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("lesson_*.png"), out / "home.png"]:
        old.unlink(missing_ok=True)  # no stale screenshot from an earlier run
    server, base = serve(site)
    visit = Visit(base, out, report)
    queue = sorted({page_key("/" + p.relative_to(site).as_posix()) for p in site.rglob("*.html")},
                   key=lambda p: (p != "/", p))  # the home page first
    seen = set(queue)
    try:
        with sync_playwright() as playwright:
            # Defence in depth: beyond the route below, no host name but the local server resolves.
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True,
                args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
            context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")

            def route(route_) -> None:
                url = route_.request.url
                if url.startswith(base + "/") or url == base:
                    route_.continue_()
                else:
                    report.add(visit.current,
                               f"external request blocked (the site must work offline): {url}")
                    route_.abort("blockedbyclient")

            context.route("**/*", route)
            while queue:
                path = queue.pop(0)
                if not quiet:
                    print(f"  {path}", flush=True)
                for target in check_page(context, visit, path):
                    if is_page(target) and page_key(target) not in seen:
                        seen.add(page_key(target))
                        if status_of(visit, target) == (200, "text/html"):  # a broken one is reported as a link
                            queue.append(target)
            browser.close()
        check_links(visit)
    finally:
        server.shutdown()
        server.server_close()
    if not quiet:
        for name, shot in sorted(visit.shots.items()):
            print(f"screenshot ({name}): {shot.relative_to(REPO) if shot.is_relative_to(REPO) else shot}")
    return report


# --- self-test: a small site with known faults --------------------------------------------------------------

def png(width: int, height: int) -> bytes:
    """A plain grey PNG of the given size (a stand-in figure), written without any imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


QUIZ = """<div class="course-quiz" data-lesson="{key}">
  <p class="course-quiz-intro">Check your understanding: click an option to see whether it is right, and why.</p>
  <div class="course-quiz-question">
    <p class="course-quiz-prompt"><b>1.</b> Why?</p>
    <details class="course-quiz-option"><summary>A. this</summary>
      <p class="course-quiz-verdict"><b>{verdict}</b> because.</p></details>
    <details class="course-quiz-option"><summary>B. that</summary>
      <p class="course-quiz-verdict"><b>Right.</b> because.</p></details>
  </div>
</div>"""
CHART = ('<svg width="400" height="250" viewBox="0 0 400 250">'
         '<polyline points="0,250 200,50 400,120" stroke="black" fill="none"/></svg>')
ICON = '<svg width="24" height="24" viewBox="0 0 24 24"><circle cx="12" cy="12" r="10"/></svg>'


def _html(title: str, body: str) -> str:
    return f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n<body>{body}</body></html>\n'


def broken_site(root: Path) -> dict[str, list[str]]:
    """Writes the self-test site under ``root``; returns {page: [text each expected problem contains]}.

    Pages not in the returned dict must come out clean (no false alarms): external and mailto links,
    '#top', relative links with good fragments, a lazy image, a data: image, an SVG file image, icons.
    """
    pages = {
        "index.html": ('<h1 id="intro">Home</h1><nav><a href="lessons/00_start/">00</a> <a href="lessons/01_good/#quiz">01</a>'
                       ' <a href="lessons/02_nofigure/">02</a> <a href="lessons/03_noquiz/index.html">03</a>'
                       ' <a href="lessons/04_badquiz/">04</a> <a href="broken.html">broken</a>'
                       ' <a href="https://example.com/x">external</a> <a href="mailto:a@b.c">mail</a>'
                       ' <a href="#top">top</a> <a href="only-linked/">orphan</a>' + ICON + '</nav>'
                       f'<img src="data:image/png;base64,{base64.b64encode(png(8, 8)).decode()}" alt="dot">'),
        "only-linked/index.htm": ('<p>Reached only by a link: <a href="../index.html#intro">home</a>'
                                   ' <img src="../gone.png" alt="x"></p>'),
        "lessons/00_start/index.html": ('<article><h1>Start</h1><p>Costs $5, <code>$ make a_b=1 $</code></p>'
                                        '<img src="../../fig.png" alt="figure" loading="lazy"'
                                        ' style="margin-top:3000px"></article>'),
        "lessons/01_good/index.html": ('<article><h1>Good</h1><img src="../../chart.svg" alt="chart" width="300" height="200">'
                                       f'<h2 id="quiz">Quiz</h2>{QUIZ.format(key="01", verdict="Not quite.")}'
                                       '<a href="../00_start/">prev</a> <a href="../../index.html#intro">home</a></article>'),
        "lessons/02_nofigure/index.html": (f'<header>{CHART}</header><article><h1>No figure</h1>{ICON}'
                                           '<img src="../../fig.png" alt="thumb" width="16" height="16">'
                                           f'{QUIZ.format(key="02", verdict="Right.")}</article>'),
        "lessons/03_noquiz/index.html": f"<article><h1>No quiz</h1>{CHART}<p>raw $p_i / p_j$ math</p></article>",
        "lessons/04_badquiz/index.html": f'<article>{CHART}{QUIZ.format(key="04", verdict="Maybe.")}</article>',
        "lessons/05_unfolded/index.html": ('<article>' + CHART + QUIZ.format(key="05", verdict="Right.").replace(
            "<details ", "<details open ") + '</article>'),
        "broken.html": ('<script src="https://cdn.example.com/lib.js"></script><h1 id="b">Broken</h1>'
                        '<img src="missing.png" alt="missing"> <a href="lessons/99_gone/">gone</a>'
                        ' <a href="index.html#nowhere">bad fragment</a> <a href="lessons/01_good/#quiz">ok</a>'
                        '<script>console.error("deliberate console error"); undefinedFunction();</script>'),
    }
    for name, body in pages.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(_html(name, body))
    (root / "fig.png").write_bytes(png(320, 200))
    (root / "chart.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 200">'
                                    '<rect width="300" height="200" fill="#ccc"/></svg>')
    return {
        "/lessons/02_nofigure/": ["no figure"],
        "/lessons/03_noquiz/": ["without a .course-quiz", "unrendered LaTeX in the text: $p_i / p_j$"],
        "/lessons/04_badquiz/": ["does not start with 'Right.' or 'Not quite.'"],
        "/lessons/05_unfolded/": ["visible before it is clicked"],
        "/only-linked/": ["image did not load: http", "HTTP 404"],
        "/broken.html": ["external request blocked", "https://cdn.example.com/lib.js", "image did not load",
                         "HTTP 404", "broken link", "lessons/99_gone/", "missing #fragment", "nowhere",
                         "page error", "undefinedFunction", "deliberate console error"],
        "/lessons/07_absent/": ["no page on the site"],
    }


def self_test(chromium: str) -> int:
    """Checks the checker: every planted fault reported on its page, nothing reported on the clean pages."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ui-site-selftest-") as tmp_name:
        root = Path(tmp_name) / "site"
        expected = broken_site(root)
        (Path(tmp_name) / "notebooks").mkdir()
        for name in ("00_start", "01_good", "07_absent"):
            (Path(tmp_name) / "notebooks" / f"{name}.ipynb").write_text("{}")
        report = check_site(root, chromium, lessons_from=Path(tmp_name) / "notebooks", out=Path(tmp_name) / "shots",
                            quiet=True)
    report.print(time.monotonic() - start, label="site with planted faults (expected to fail): ")
    failures = []
    for page, needles in expected.items():
        text = "\n".join(report.problems.get(page, []))
        failures += [f"{page}: expected a problem mentioning {needle!r}" for needle in needles if needle not in text]
    for page, problems in report.problems.items():
        if page not in expected and problems:
            failures.append(f"{page}: clean page reported: {problems}")
    if report.pages != 9:  # 8 .html files and only-linked/index.htm, which only a link leads to
        failures.append(f"expected 9 pages visited, got {report.pages}")
    if report.quizzes != 2:  # lessons 01 and 02 (04's verdict is wrong, 05's click folds it, 00 and 03 have none)
        failures.append(f"expected 2 quizzes answered, got {report.quizzes}")
    print(("self-test FAILED:\n  " + "\n  ".join(failures)) if failures
          else f"self-test passed: every planted fault reported, no false alarm ({time.monotonic() - start:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=os.environ.get("UI_CHROMIUM", "/usr/lib/chromium/chromium"))
    parser.add_argument("--site", type=Path, default=REPO / "build" / "site", help="the built site (default build/site)")
    parser.add_argument("--lessons-from", default=str(REPO / "notebooks"),
                        help="folder of lesson notebooks that must each have a page ('' to skip this check)")
    parser.add_argument("--self-test", action="store_true", help="check the checker on a site with planted faults")
    args = parser.parse_args()
    if not os.access(args.chromium, os.X_OK):
        sys.exit(f"no Chromium at {args.chromium} (apt-get install chromium, or pass --chromium PATH / UI_CHROMIUM)")
    if args.self_test:
        sys.exit(self_test(args.chromium))
    t0 = time.monotonic()
    result = check_site(args.site.resolve(), args.chromium, Path(args.lessons_from) if args.lessons_from else None)
    result.print(time.monotonic() - t0)
    sys.exit(1 if any(result.problems.values()) else 0)
