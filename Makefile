# recstream — the two commands that matter are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast bench lint clean broker kafka system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## run: embedded Tansu broker + worker (:8082) + platform simulator (:8080), live
run: $(STAMP)
	$(BIN)/recstream run

## system-deps: Debian packages the tests need: promtool (prometheus) and headless chromium
SYSTEM_DEPS := prometheus chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@if command -v promtool >/dev/null 2>&1 && [ -x /usr/bin/chromium ]; then :; else \
	  echo "installing $(SYSTEM_DEPS) (apt-get)"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SYSTEM_DEPS); \
	fi

## test: unit, agent, web and real-broker integration tests (Tansu and Apache Kafka)
test: system-deps $(STAMP)
	deploy/kafka/kafka.sh fetch
	$(BIN)/python -m pytest -q --cov --cov-report=term --cov-report=xml

## test-fast: everything that needs no broker
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration"

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/ingest.py

broker: $(STAMP)
	$(BIN)/recstream broker

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .coverage coverage.xml var
