# nmfsep — every target installs what is missing first (idempotent `make install`).
# Installs into a project-local virtual environment (.venv); set VENV=... to use another.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.nmfsep-installed
# The runtime alone (make demo); the dev install above is a superset and satisfies it too.
RUNTIME_STAMP := $(VENV)/.nmfsep-runtime
# One tiny separation after installing: compiles nmfsep's numba kernels into the user's cache
# once, so that no later command pauses to compile (cli._numba_cache_dir picks the cache).
WARMUP = tmp=$$(mktemp -d) && $(BIN)/nmfsep separate sample_audio/mix.wav --duration 1 -o "$$tmp" -q; \
	status=$$?; rm -rf "$$tmp"; test $$status -eq 0

.PHONY: install install-runtime test lint bench demo clean

install: $(STAMP)

install-runtime: $(RUNTIME_STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@$(WARMUP)
	@touch $(RUNTIME_STAMP) $(STAMP)

# Runtime only: numpy, scipy, librosa, soundfile, typer, rich, numba, threadpoolctl (no extras).
# Skipped when the dev install is already there and up to date.
$(RUNTIME_STAMP): pyproject.toml
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then touch $@; else \
	  test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	  $(BIN)/python -m pip install --quiet --upgrade pip; \
	  $(BIN)/python -m pip install --quiet -e . && { $(WARMUP); } && touch $@; fi

lint: install
	$(BIN)/ruff check nmfsep tests bench
	$(BIN)/ruff format --check nmfsep tests bench
	$(BIN)/mypy nmfsep

test: lint
	$(BIN)/python -m pytest -q

# Benchmarks (a few minutes each; ../shared/data is used when present, else sample_audio/).
bench: install
	$(BIN)/python bench/nmf_speed.py
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/generalise.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/soak.py

demo: install-runtime
	$(BIN)/nmfsep separate sample_audio/mix.wav -o separated --overwrite
	@echo "Separated sources written under separated/mix/ (one WAV per source)."

clean:
	rm -rf separated .pytest_cache .mypy_cache .ruff_cache
