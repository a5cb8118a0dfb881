# Floodgate: everything from a fresh clone. `make test` builds .venv from requirements.lock
# (exact pins of the ranges in pyproject.toml) the first time, then lints, type-checks, tests.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
STACK ?= prod
CHROMIUM := /usr/bin/chromium
NODE_STAMP := node_modules/.installed
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
export PYTHONPATH := $(CURDIR)
# Bytecode is compiled when a module is first imported and kept under build/ (out of the tree),
# not for all of every package at install time: pip's compile step was most of the install.
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX := $(CURDIR)/build/pycache

.PHONY: install lint types unit test plan policy preflight plan-diff rehearse bench layer lock clean docs

# uv (pinned) installs the locked packages in seconds where pip took ~20 s: it downloads in
# parallel and, like pip --no-compile, writes no bytecode. pip stays for scripts/layer.py.
$(STAMP): requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python --upgrade "pip>=24" -r requirements.lock
	touch $(STAMP)

install: $(STAMP)

# The browser tests' own needs (tests/functions/test_pages.py): Debian's Chromium (Playwright
# downloads no browser here) and axe-core from npm (package-lock.json).
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $(NODE_STAMP)

# The settings reference, from the model's docstrings (a test fails when it is stale).
docs: install
	$(BIN)/python -m scripts.settings_doc

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/actionlint -shellcheck $(BIN)/shellcheck .github/workflows/*.yml

types: install
	$(BIN)/pyright

unit: install $(CHROMIUM) $(NODE_STAMP)
	$(BIN)/pytest -q -n auto --dist worksteal
	node --test tests/edge/

# Lint, types and tests side by side: pyright needs one core for ~50 s, which the install,
# moto round trips and the browser leave idle (measured: 37 s less). No output sync: make's
# syncing (target or line) holds a command's output until it ends, five minutes of silence
# for pytest; unsynced, its progress shows as it runs, with lint's few lines among it.
test:
	$(MAKE) --no-print-directory -j3 lint types unit

# The main job, offline: evaluate the stack under Pulumi's mocks, print it, write build/.
# NOW=2028-10-01T00:00:00Z plans as of that instant (sets FLOODGATE_NOW).
plan: install
	$(if $(NOW),FLOODGATE_NOW=$(NOW)) $(BIN)/python -m scripts.plan --stack $(STACK)

# The policy pack (policies/) over a stack's offline plan: one row per rule and resource.
# The same rules run in the engine: `pulumi preview --policy-pack policies`.
policy: install
	$(if $(NOW),FLOODGATE_NOW=$(NOW)) $(BIN)/python -m scripts.policy --stack $(STACK)

# Against the real account, with the operator's credentials (read-only calls): quotas,
# certificates and hosted zone for the stack and its planned events. Exit 0 ready, 1 not, 2 error.
preflight: install
	$(if $(NOW),FLOODGATE_NOW=$(NOW)) $(BIN)/python -m scripts.preflight --stack $(STACK)

# What the working tree changes, against the plan at a git ref (a temporary worktree), as the
# Markdown of a PR comment, also in build/plan-diff-<stack>.md. Succeeds whether or not anything
# changed (the script itself exits 0 same, 1 changed); fails on an error.
plan-diff: install
	@test -n "$(BASE)" || { echo "usage: make plan-diff BASE=<git ref> [STACK=prod]" >&2; exit 2; }
	$(if $(NOW),FLOODGATE_NOW=$(NOW)) $(BIN)/python -m scripts.plan_diff --stack $(STACK) \
		--base $(BASE) || test $$? -eq 1

# Play a night through the stack before it happens (README, Rehearsal; docs/rehearsal.md): every scenario under the
# configured, reactive, static-peak and floor policies; table, build/rehearsal-<stack>.json and a
# chart per scenario. EVENT= event name (default: the next one), SCENARIO= one scenario,
# CURVE= a CSV of a real night. Exit 0 within the settings' budget, 1 people fail or wait beyond it,
# 3 only its cost is over, 2 bad input.
rehearse: install
	$(if $(NOW),FLOODGATE_NOW=$(NOW)) $(BIN)/python -m scripts.rehearse --stack $(STACK) \
		$(if $(EVENT),--event $(EVENT)) $(if $(SCENARIO),--scenario $(SCENARIO)) \
		$(if $(CURVE),--curve $(CURVE))

bench: install
	$(BIN)/python -m tests.bench
	node tests/edge/bench.mjs

# The waiting room's Lambda layer (awscrt for SigV4A), for the arm64 python3.12 runtime. Needed
# before `pulumi preview` / `pulumi up` against a real account, not offline. Reproducible: see
# scripts/layer.py (no .pyc, whose build times would make every build a new layer version).
layer: install
	$(BIN)/python -m scripts.layer

# Re-resolve pins after editing pyproject.toml ranges.
lock:
	rm -rf /tmp/floodgate-lock && $(PYTHON) -m venv /tmp/floodgate-lock
	/tmp/floodgate-lock/bin/pip install --quiet ".[dev]"
	/tmp/floodgate-lock/bin/pip freeze --exclude-editable | grep -v -e '^pip==' -e '^floodgate' > requirements.lock

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis node_modules
