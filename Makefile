# The two front-door commands (see README): `make demo` and `make test`.
.PHONY: setup demo test test-fast bench bench-quick lint

setup:
	./scripts/setup.sh

demo: setup
	. .venv/bin/activate && agent-tokred demo

test: setup
	. .venv/bin/activate && python -m pytest

test-fast: setup
	. .venv/bin/activate && python -m pytest -m "not model and not server and not slow"

bench: setup
	. .venv/bin/activate && python -m bench

bench-quick: setup
	. .venv/bin/activate && python -m bench --quick

lint: setup
	. .venv/bin/activate && ruff check agent_tokred graphs memory tests bench demos && mypy
