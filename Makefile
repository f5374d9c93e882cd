# The Makefile only wraps the README's commands; tools/setup.sh does all set-up, idempotently.
VENV   ?= .venv
BIN    := $(VENV)/bin
MODEL  ?= models/digits-mlp.tnn.json
DEMO_ARGS ?= --data digits --vectors 360 --target ice40-up5k
OUT    ?= out

.PHONY: setup demo test test-all lint bench clean

setup:
	@bash tools/setup.sh

demo: setup
	@PATH="$(abspath $(BIN)):$$PATH" $(BIN)/tnngen flow $(MODEL) $(DEMO_ARGS)

test: setup
	@PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

test-all: setup
	@PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q --run-slow

lint: setup
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(OUT) .pytest_cache
