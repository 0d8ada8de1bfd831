# Two set-up commands for a fresh machine: `make demo` and `make test`.
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# Install this exact torch first: a CPU build that pip finds on these machines' disk.  A plain `torch`
# would pull a multi-GB CUDA build; pyproject.toml only asks for torch>=2.3, which this satisfies.
TORCH   := torch==2.13.0

.PHONY: install browser demo test bench results lint clean

$(BIN)/python:
	python3 -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium for the report's browser test (Debian package; needs root or an existing install).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: install
	$(BIN)/stylesurv demo --out runs/demo

test: install browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: install
	$(BIN)/python bench/run_all.py

# Rerun every benchmark with JSON records into bench/results/, then regenerate docs/results.md from them.
results: install
	$(BIN)/python bench/run_all.py --json-dir bench/results
	$(BIN)/python bench/write_results.py

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) runs
