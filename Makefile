# The two commands of the README: `make demo` (the main job) and `make test`.
# Both create .venv on first use and install the project from pyproject.toml with the pinned versions
# in constraints.txt.
VENV ?= .venv
PYTHON ?= python3
export LITELLM_LOCAL_MODEL_COST_MAP := True

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test,proxy]'
	touch $@

.PHONY: install demo test
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/litellm-fusion demo

# Fast tiers first (unit, then integration over HTTP), then the proxy end-to-end tier.
test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -m "not e2e"
	$(VENV)/bin/python -m pytest -q -m e2e
