"""The lessons' sliders in a real JupyterLab, in headless Chromium (`make ui-test`).

Lesson 01's temperature explorer and lesson 05's cascade threshold slider. Starts JupyterLab on
localhost with its settings, HOME and runtime files in a temporary directory; for each lesson opens
the notebook, waits for the kernel, runs all cells (FAST mode) and checks what a learner sees:
no error output, no 'Error displaying widget', no stray repr, no blank or clipped figure, one
explorer picture (the live one, not also the static fallback), no browser console errors; then
moves the explorer's slider and checks that its readout and figure changed, and answers the first question of
the lesson's closing quiz (its feedback must say "Right." or "Not quite." and why). Screenshots go to build/ui/.

Lesson 05 reads lesson 04's FAST-mode teacher from the cache (``make test`` builds it first); on an
empty cache its Run All trains it, which takes minutes (see ``--run-all-timeout``).

Not collected by pytest (the name does not start with ``test_``): it needs a browser.

    .venv/bin/python tests/ui/ui_lessons.py [--lesson 01 05] [--settings default|course] [--chromium PATH]

``--settings default`` (the default) runs JupyterLab's own settings, where widget messages reach the
kernel on a subshell thread while cells run: the harder case, which the explorer must survive by itself.
``--settings course`` adds the settings ``make lab`` ships (jupyter/labconfig).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "build" / "ui"


@dataclass(frozen=True)
class Lesson:
    notebook: str
    explorer_call: str  # text in the source of the cell whose output is the explorer
    slider: str  # what the slider sets, for the messages


LESSONS = {
    "01": Lesson("notebooks/01_soft_targets.ipynb", "temperature_explorer(", "temperature"),
    "05": Lesson("notebooks/05_judging_a_student.ipynb", "cascade_explorer(", "cascade threshold"),
}
# Lab settings for the test: never save the notebook (its outputs must not reach the committed file),
# and no news or update checks (they would reach the internet).
TEST_OVERRIDES = {
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_lab(tmp: Path, settings: str) -> tuple[subprocess.Popen, str, str, Path]:
    """JupyterLab on localhost, everything it writes kept under ``tmp``; returns (process, base URL, token, log)."""
    config_dir = tmp / "config"
    (config_dir / "labconfig").mkdir(parents=True)
    (config_dir / "labconfig" / "default_setting_overrides.json").write_text(json.dumps(TEST_OVERRIDES))
    env = {**os.environ, "HOME": str(tmp / "home"), "JUPYTER_CONFIG_DIR": str(config_dir),
           "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "IPYTHONDIR": str(tmp / "ipython"),
           "MPLCONFIGDIR": str(tmp / "mpl"), "COURSE_FAST": "1"}
    env.pop("JUPYTER_CONFIG_PATH", None)
    if settings == "course":
        env["JUPYTER_CONFIG_PATH"] = str(REPO / "jupyter")
    (tmp / "home").mkdir()
    port, token = free_port(), secrets.token_hex(16)
    log = tmp / "lab.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO}", "--LabApp.expose_app_in_browser=True",
         f"--FileCheckpoints.root_dir={tmp / 'checkpoints'}",  # not notebooks/.ipynb_checkpoints
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                return process, url, token, log
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"JupyterLab did not answer within 60 s:\n{log.read_text()[-3000:]}")


# JavaScript run in the page; `app` is JupyterLab (exposed by --LabApp.expose_app_in_browser).
JS_KERNEL_READY = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.sessionContext) return false;
  await panel.sessionContext.ready;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""
JS_COMMS_SETTING = """async () => {
  const settings = await window.jupyterapp.serviceManager.settings.fetch('@jupyterlab/apputils-extension:kernels-settings');
  const user = settings.settings && settings.settings.commsOverSubshells;
  return user || settings.schema.properties.commsOverSubshells.default;
}"""
JS_NOTEBOOK = "() => window.jupyterapp.shell.currentWidget.context.model.toJSON()"
JS_IDLE = "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'"
JS_IMAGE_STATS = """(img) => {
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  if (!canvas.width || !canvas.height) return {width: 0, inked: 0, clipped: true};
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] < 600 && data[i + 3] > 0) inked++;
  // clipped: cut by any ancestor that hides or scrolls its overflow (up to the notebook), or shrunk below its width
  const box = img.getBoundingClientRect();
  let clipped = box.width < 0.5 * canvas.width;
  for (let el = img.parentElement; el && !el.classList.contains('jp-Notebook'); el = el.parentElement) {
    const style = getComputedStyle(el);
    if (style.overflowX === 'visible') continue;
    if (box.right > el.getBoundingClientRect().right + 1 || el.scrollWidth > el.clientWidth + 1) clipped = true;
  }
  return {width: canvas.width, inked: inked / (canvas.width * canvas.height), clipped};
}"""


def check(condition: bool, message: str, failures: list[str]) -> None:
    print(("ok   " if condition else "FAIL ") + message)
    if not condition:
        failures.append(message)


def wait_for_run_all(page, run_all_timeout: float, shot: Path) -> list[dict]:
    """Run All, then wait until every code cell has run and the kernel is idle; returns the code cells.

    Run All stops at an error, so an idle kernel with cells left unrun for 10 s also ends the wait
    (the caller's checks report it).
    """
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline, idle_since = time.monotonic() + run_all_timeout, None
    while True:
        cells = [c for c in page.evaluate(JS_NOTEBOOK)["cells"] if c["cell_type"] == "code"]
        idle = page.evaluate(JS_IDLE)
        idle_since = (idle_since or time.monotonic()) if idle else None
        if idle and all(c["execution_count"] for c in cells):
            return cells
        if idle_since and time.monotonic() - idle_since > 10:
            return cells
        if time.monotonic() > deadline:
            page.screenshot(path=str(shot))
            raise TimeoutError(f"Run All did not finish within {run_all_timeout} s")
        time.sleep(0.5)


def move_slider(page, explorer, widget_image, lesson: Lesson, key: str, failures: list[str]) -> None:
    """Three steps of the explorer's first slider with the keyboard (back, if it starts at its right end)."""
    before = widget_image.get_attribute("src")
    readout = explorer.locator(".widget-readout").first
    start_value = readout.inner_text()
    handle = explorer.locator(".noUi-handle").first
    handle.focus()
    for arrow in ("ArrowRight", "ArrowLeft"):
        for _ in range(3):
            handle.press(arrow)
        page.wait_for_timeout(500)
        if readout.inner_text() != start_value:
            break
    try:
        page.wait_for_function("([img, old]) => img.src !== old", arg=[widget_image.element_handle(), before],
                               timeout=20_000)
    except PlaywrightTimeout:
        pass  # reported below: the figure did not change
    page.wait_for_timeout(300)
    explorer.screenshot(path=str(OUT / f"lesson{key}_explorer_after.png"))
    after_value = readout.inner_text()
    stats = widget_image.evaluate(JS_IMAGE_STATS)
    check(widget_image.get_attribute("src") != before and after_value != start_value,
          f"slider moved the {lesson.slider} {start_value} -> {after_value} and the figure changed", failures)
    check(stats["inked"] > 0.01 and not stats["clipped"], "the redrawn figure is drawn and fits", failures)


def answer_quiz(page, key: str, failures: list[str]) -> None:
    """Pick option A of the lesson's quiz's first question: its feedback must say "Right." or "Not quite." and why."""
    index = next((i for i, c in enumerate(page.evaluate(JS_NOTEBOOK)["cells"])
                  if "check_your_understanding(" in "".join(c["source"])), None)
    if index is None:
        check(False, "the lesson ends with its quiz (check_your_understanding)", failures)
        return
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    check(cell.locator(".course-quiz").count() == 1 and cell.locator("details.course-quiz-option").count() == 0,
          "the quiz shows live, without its static fallback", failures)
    question = cell.locator(".course-quiz .course-quiz-question").first
    question.locator("input[type=radio]").first.check()
    feedback = question.locator(".course-quiz-feedback")
    try:
        page.wait_for_function("(el) => /^(Right|Not quite)\\.\\s+\\S/.test(el.innerText.trim())",
                               arg=feedback.element_handle(), timeout=10_000)
    except PlaywrightTimeout:
        pass  # reported below
    text = feedback.inner_text().strip()
    cell.screenshot(path=str(OUT / f"lesson{key}_quiz.png"))
    check(text.startswith(("Right.", "Not quite.")) and len(text) > 40,
          f"choosing option A of question 1 shows its verdict and why ({text[:60]!r}...)", failures)


def check_lesson(browser, base_url: str, token: str, settings: str, key: str, run_all_timeout: float) -> list[str]:
    """Open one lesson in its own JupyterLab workspace and page, Run All, check it; returns the failures."""
    lesson, failures, start = LESSONS[key], [], time.monotonic()
    print(f"--- lesson {key}: {lesson.notebook}")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.goto(f"{base_url}/lab/workspaces/ui-{key}/tree/{lesson.notebook}?token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function(JS_KERNEL_READY, timeout=60_000, polling=250)
    print(f"kernel connected after {time.monotonic() - start:.1f} s (settings: {settings})")
    comms = page.evaluate(JS_COMMS_SETTING)
    expected = "disabled" if settings == "course" else "perCommTarget"
    check(comms == expected, f"JupyterLab's commsOverSubshells is {comms!r} (expected {expected!r})", failures)

    cells = wait_for_run_all(page, run_all_timeout, OUT / f"lesson{key}_timeout.png")
    page.wait_for_timeout(1000)  # let the last outputs and widget views render
    print(f"Run All finished after {time.monotonic() - start:.1f} s")
    page.screenshot(path=str(OUT / f"lesson{key}_run_all.png"), full_page=True)

    unrun = sum(1 for c in cells if not c["execution_count"])
    check(unrun == 0, f"Run All ran every code cell ({unrun} of {len(cells)} not run)", failures)
    outputs = [o for c in cells for o in c["outputs"]]
    errors = [f"{o['ename']}: {o['evalue']}" for o in outputs if o["output_type"] == "error"]
    check(not errors, f"no error output {errors}", failures)
    texts = [json.dumps(o.get("data", {}).get("text/plain", "")) + "".join(o.get("text", "")) for o in outputs]
    check(not any("<function" in t for t in texts), "no stray <function ...> repr", failures)
    check(page.get_by_text("Error displaying widget").count() == 0, "no 'Error displaying widget'", failures)

    explorer_index = next(i for i, c in enumerate(page.evaluate(JS_NOTEBOOK)["cells"])
                          if lesson.explorer_call in "".join(c["source"]))
    explorer = page.locator(".jp-Notebook .jp-Cell").nth(explorer_index)
    explorer.scroll_into_view_if_needed()
    explorer.screenshot(path=str(OUT / f"lesson{key}_explorer_before.png"))
    widget_images = explorer.locator(".jp-OutputArea img.widget-image")
    all_images = explorer.locator(".jp-OutputArea img")
    check(widget_images.count() == 1 and all_images.count() == 1,
          f"explorer shows one live figure and no static fallback ({all_images.count()} images)", failures)
    for n, img in enumerate(page.locator(".jp-OutputArea img").all()):
        img.scroll_into_view_if_needed()
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=img.element_handle(),
                               timeout=10_000)
        stats = img.evaluate(JS_IMAGE_STATS)
        check(stats["inked"] > 0.01 and not stats["clipped"],
              f"figure {n} drawn and fits ({stats['inked']:.1%} of pixels inked, clipped: {stats['clipped']})",
              failures)

    if widget_images.count() == 0:
        check(False, "a live explorer figure to move the slider on", failures)
    else:
        move_slider(page, explorer, widget_images.first, lesson, key, failures)
    answer_quiz(page, key, failures)
    check(not console_errors, f"no browser console errors {console_errors}", failures)
    page.evaluate("() => window.jupyterapp.commands.execute('kernelmenu:shutdown')")  # frees the lesson's memory
    page.close()
    print(f"lesson {key}: {'FAILED' if failures else 'passed'} in {time.monotonic() - start:.1f} s")
    return [f"lesson {key}: {f}" for f in failures]


def run(chromium: str, settings: str, run_all_timeout: float, keys: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ui-lessons-") as tmp_name:
        lab, base_url, token, log = start_lab(Path(tmp_name), settings)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, headless=True)
                for key in keys:
                    failures += check_lesson(browser, base_url, token, settings, key, run_all_timeout)
                browser.close()
        except Exception:
            print(f"JupyterLab log (last lines):\n{log.read_text()[-3000:]}")
            raise
        finally:
            lab.terminate()
            try:
                lab.wait(timeout=20)
            except subprocess.TimeoutExpired:
                lab.kill()
        if failures:
            print(f"JupyterLab log (last lines):\n{log.read_text()[-3000:]}")
    print(f"{'FAILED' if failures else 'passed'}: lessons {', '.join(keys)} in JupyterLab + Chromium, "
          f"{time.monotonic() - start:.1f} s; screenshots in {OUT.relative_to(REPO)}/")
    for failure in failures:
        print(f"  {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=os.environ.get("UI_CHROMIUM", "/usr/lib/chromium/chromium"))
    parser.add_argument("--settings", choices=["default", "course"], default="default")
    parser.add_argument("--lesson", nargs="+", choices=sorted(LESSONS), default=sorted(LESSONS),
                        help="which lessons to open (default: all)")
    parser.add_argument("--run-all-timeout", type=float, default=600, help="seconds each lesson's Run All may take")
    args = parser.parse_args()
    sys.exit(run(args.chromium, args.settings, args.run_all_timeout, args.lesson))
