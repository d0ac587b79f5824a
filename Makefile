# Two entry points for a fresh clone: `make demo` and `make test` (see README.md); `make test-fast`
# runs the tests not marked slow.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.aqa-installed
DEMO_OUT ?= demo_out

.PHONY: install demo test test-fast clean

$(STAMP): setup.cfg setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,blazepose]'
	$(BIN)/python -m pip install -q --no-deps mediapipe==0.10.14
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m aqa.pipelines.demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --timeout 900 tests

# The edit loop: every test not marked `slow` (setup.cfg lists the markers).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --timeout 300 -q -m "not slow" tests

clean:
	rm -rf $(DEMO_OUT) build *.egg-info
