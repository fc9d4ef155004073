# zkpy — quick start: `make run` starts a standalone server on 127.0.0.1:2181,
# `make test` runs the whole suite (installing Apache ZooKeeper from Debian when root).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast lint clean apache-zookeeper

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/zkpy server

# Apache ZooKeeper 3.8 is the reference for differential and compatibility tests; iptables
# cuts ensemble members apart in the partition tests (both skip with a reason when missing).
apache-zookeeper:
	@if [ ! -f /usr/share/java/zookeeper.jar ] || [ ! -x /usr/lib/zookeeper/bin/cli_mt ] \
	    || ! command -v iptables >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -q zookeeper zookeeper-bin iptables >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q zookeeper zookeeper-bin iptables >/dev/null)) \
	     || echo "could not install Debian's zookeeper packages: Apache-dependent tests will skip"; \
	  else \
	    echo "not root: Debian's zookeeper packages are not installed; Apache-dependent tests will skip"; \
	  fi; \
	fi

test: $(STAMP) apache-zookeeper
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check zkpy tests

clean:
	rm -rf $(VENV) zkpy-data .pytest_cache .hypothesis
