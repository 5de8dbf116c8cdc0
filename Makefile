# Two commands do all setup on a fresh Debian/Ubuntu machine (root, or sudo for `make test`):
#   make run    render + validate the whole platform from the embedded default inventory
#   make test   every test layer (ruff, pytest, cluster, ansible-lint, build, syntax, galaxy, molecule)
SHELL := /bin/bash
VENV ?= .venv
INVENTORY ?= inventories/local
export MLOPS_UPSTREAM_DIR ?= $(abspath ../shared/upstream)

.PHONY: run test setup host-deps lint clean

run: setup
	$(VENV)/bin/ansible-playbook site.yml -i $(INVENTORY) $(ARGS)

test: setup host-deps
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/test.sh

setup:
	bash scripts/setup.sh $(VENV)

host-deps:
	bash scripts/host-deps.sh

lint: setup
	$(VENV)/bin/ansible-lint

clean:
	rm -rf build researchops-mlops-*.tar.gz .pytest_cache
