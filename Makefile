# Two commands do all set-up on a fresh machine:
#   make book   -> _build/html/index.html (every notebook executed headless by papermill)
#   make test   -> the whole test suite (unit, notebooks on the smoke profile, the book, a browser check)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= book

.PHONY: book test unit bench clean help

help:
	@echo "make book   build the book into _build/html (profile: $(PROFILE))"
	@echo "make test   run the whole test suite"
	@echo "make unit   the fast loop: the tests not marked slow (no subprocess, book or browser)"
	@echo "make bench  print the speed benchmarks"

# Re-install only when the project's requirements change.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[book,test]'
	@touch $@

book: $(STAMP)
	$(VENV)/bin/ssfer reproduce --profile $(PROFILE)

# The smoke profile executes every notebook (its build folder is removed first, so
# no notebook comes from an earlier run's outputs) and builds the book, strictly (a
# Sphinx warning, such as a glued key that renders nothing, fails it); the tests
# then check its pages (and a headless Chromium loads them). Last, nbval
# re-executes the smoke chapters and lab solutions with an empty run cache and
# checks that every output repeats exactly (tests/nbval_rerun.py). pytest prints its
# 25 slowest tests, so that a CI log shows where the time goes.
# Every kernel also checks each figure it shows for a legend over axis text
# (tests/figure_check_startup.py, read by tests/test_book.py).
FIGCHECK := SSFER_FIGURE_CHECK=$(CURDIR)/_build/smoke/figure_check.txt IPYTHONDIR=$(CURDIR)/_build/ipython
test: $(STAMP)
	rm -rf _build/smoke
	mkdir -p _build/smoke _build/ipython/profile_default/startup
	cp tests/figure_check_startup.py _build/ipython/profile_default/startup/00_figure_check.py
	$(FIGCHECK) $(VENV)/bin/ssfer reproduce --profile smoke --build-dir _build/smoke --strict
	SSFER_BOOK_HTML=_build/smoke/_build/html $(PY) -m pytest --durations=25
	$(FIGCHECK) $(PY) tests/nbval_rerun.py _build/smoke

# The edit-test loop: no notebook, book, browser, subprocess or long training.
unit: $(STAMP)
	$(PY) -m pytest -m "not slow"

bench: $(STAMP)
	$(VENV)/bin/ssfer bench

clean:
	rm -rf _build
