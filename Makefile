# The two commands of the README: `make demo` (the main job) and `make test`; `make local` sets up local models.
# Both create .venv on first use and install the project from pyproject.toml with the pinned versions
# in constraints.txt.
VENV ?= .venv
PYTHON ?= python3
export LITELLM_LOCAL_MODEL_COST_MAP := True
# LiteLLM 1.108.7 otherwise downloads its Anthropic beta-header map on the first Anthropic call.
export LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS := true

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test,proxy]'
	touch $@

# The SDK tiers again on the newest LiteLLM in the supported range (pyproject.toml), in a second venv.
NEWEST_LITELLM ?= 1.110.2
$(VENV)-newest/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)-newest
	$(VENV)-newest/bin/pip install -q --upgrade pip
	grep -v '^litellm==' constraints.txt > $(VENV)-newest/constraints.txt
	$(VENV)-newest/bin/pip install -q -c $(VENV)-newest/constraints.txt -e '.[test]' 'litellm==$(NEWEST_LITELLM)'
	touch $@

# The local models: llama-cpp-python[server] (built from source the first time, a few minutes on 2 cores, then
# installed from pip's wheel cache; the multimodal library is not built) and the two GGUFs, assembled from
# the registry's part packages into ~/.cache/litellm-fusion/models and sha256-checked.
$(VENV)/.local-installed: $(VENV)/.installed
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(VENV)/bin/pip install -q -c constraints.txt -e '.[test,proxy,local,eval]'
	touch $@

.PHONY: install local demo test test-fast test-browser test-local test-newest
install: $(VENV)/.installed

# One command sets up the local models; `make demo` then runs a real fusion on them. It also builds llama.cpp's
# llama-server (parallel slots) from the llama-cpp-python sdist into ~/.cache/litellm-fusion/bin, once (about
# 10 min on 2 cores the first time, then nothing); without cmake or a C++ compiler (exit 2) the local server
# falls back to llama-cpp-python's, but a build that fails stops here.
local: $(VENV)/.local-installed
	$(VENV)/bin/litellm-fusion local setup
	$(VENV)/bin/litellm-fusion local build-server || [ $$? -eq 2 ]

# A real fusion on the local models when `make local` was run, else the scripted panel (instant).
demo: $(VENV)/.installed
	$(VENV)/bin/litellm-fusion demo

# Every tier, fastest first: unit and integration over HTTP, the proxy end-to-end tier, the pages in headless
# Chromium, then real models.
test: test-fast test-browser test-local

test-fast: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -m "not e2e and not local and not browser"
	$(VENV)/bin/python -m pytest -q -m e2e -rs

# Screenshots land in test-artifacts/ (gitignored).
test-browser: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -m browser -rs

test-local: local
	$(VENV)/bin/python -m pytest -q -m local -p no:cacheprovider

test-newest: $(VENV)-newest/.installed
	$(VENV)-newest/bin/python -m pytest -q -m "not e2e and not local and not browser" -p no:cacheprovider
