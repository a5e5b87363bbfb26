# hotswap's developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# The interpreter `cargo test` embeds (pyo3's auto-initialize needs a shared libpython, as pyenv and distro builds have).
export PYO3_PYTHON ?= $(shell $(PYTHON) -c 'import sys; print(sys.executable)')
VENV := .venv
# Interpreters the Python suites run on: "3.11" or "3.11 3.12"; default every one of 3.9 ... 3.13 found.
PYTHONS ?=

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: demo
demo: ## create .venv, build, and run the scripted demo of all three tiers (patch in place, broken save, warm restart)
	@scripts/venv.sh $(VENV) $(PYTHON) release
	$(VENV)/bin/python examples/demo.py

.PHONY: test
test: ## cargo test and every pytest suite on each CPython 3.9-3.13 here (3.11 required), built with Rust debug assertions
	scripts/test-pythons.sh --cargo-test dev $(PYTHONS)

.PHONY: test-release
test-release: ## the pytest suites on each interpreter against the release build (what `make wheel` ships)
	scripts/test-pythons.sh release $(PYTHONS)

.PHONY: test-debug
test-debug: ## the pytest suites on each interpreter against release optimisations with Rust debug assertions and overflow checks
	scripts/test-pythons.sh debug-checks $(PYTHONS)

BENCH_VENV := benches/.venv

.PHONY: wheel
wheel: ## build a wheel for each CPython 3.9-3.13 here and an sdist into dist/, and install each into a venv without Rust
	@scripts/venv.sh --no-build $(VENV) $(PYTHON)
	scripts/wheels.sh $(VENV)/bin/maturin dist $(PYTHONS)

.PHONY: bench
bench: ## run every benchmark in benches/ (comparison tools in benches/.venv), each figure beside its target, into benches/RESULTS.md
	@scripts/venv.sh $(BENCH_VENV) $(PYTHON) release
	$(BENCH_VENV)/bin/python -m pip install -q -r benches/requirements.txt
	$(BENCH_VENV)/bin/python benches/run_all.py

.PHONY: bench-readme
bench-readme: ## rewrite README.md's benchmark tables from benches/RESULTS.md (after `make bench` on a quiet machine)
	$(PYTHON) benches/run_all.py --readme-only

.PHONY: replay
replay: ## download consecutive releases of 5 packages (cached in benches/.cache), replay them through each reloader
	@scripts/venv.sh $(BENCH_VENV) $(PYTHON) release
	$(BENCH_VENV)/bin/python -m pip install -q -r benches/requirements.txt
	$(BENCH_VENV)/bin/python benches/replay.py

.PHONY: soak
soak: ## 10,000 reloads and 1,000 template execs: memory and file descriptors must stay flat
	@scripts/venv.sh $(VENV) $(PYTHON) release
	$(VENV)/bin/python tests/soak.py

.PHONY: lint
lint: ## rustfmt, clippy, ruff and mypy (the package ships py.typed)
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	@scripts/venv.sh $(VENV) $(PYTHON) release
	$(VENV)/bin/python -m pip install -q ruff mypy
	$(VENV)/bin/ruff check python tests benches examples pytest_plugin
	$(VENV)/bin/python -m mypy

.PHONY: clean
clean: ## remove build outputs and virtual environments
	rm -rf target .venv .venvs dist python/hotswap/*.so
