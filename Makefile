# The two commands of the README (plus the benchmark). Each one sets up what is missing.
PY := .venv/bin/python
HOUSEHOLDS ?= 2000

.PHONY: setup demo test bench lint

setup:
	@bash setup/setup.sh

demo: setup  ## the main job: a whole distribution cycle on real input, then serve the back office
	@$(PY) setup/demo.py --households $(HOUSEHOLDS) $(ARGS)

test: setup  ## all tests: every addon's with Odoo's runner, then tests/ with pytest
	@$(PY) setup/run_tests.py $(ARGS)

bench: setup  ## the benchmark at 10,000 and 100,000 beneficiaries
	@$(PY) setup/bench.py $(ARGS)

lint: setup
	@.venv/bin/pre-commit run --all-files
