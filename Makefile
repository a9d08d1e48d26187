# Set-up in two commands: `make run` and `make test`. Both create .venv on first use.
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= experiments/digits.yaml

.PHONY: run test test-fast install bench clean

$(BIN)/.installed: pyproject.toml requirements/lock.txt scripts/install.sh
	bash scripts/install.sh $(VENV) dev
	touch $@

install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/dlrun $(SPEC)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
