# The two commands of the README: `make demo` (the main job) and `make test`.
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

.PHONY: install demo test test-newest
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/litellm-fusion demo

# Fast tiers first (unit, then integration over HTTP), then the proxy end-to-end tier.
test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -m "not e2e"
	$(VENV)/bin/python -m pytest -q -m e2e

test-newest: $(VENV)-newest/.installed
	$(VENV)-newest/bin/python -m pytest -q -m "not e2e" -p no:cacheprovider
