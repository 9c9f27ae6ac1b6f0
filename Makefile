# The two commands of the README (plus the benchmark). Each one sets up what is missing.
PY := .venv/bin/python
HOUSEHOLDS ?= 2000
DEV_DB ?= g2p_dev
ADDON ?= spp_service_points

.PHONY: setup demo test bench lint dev-db pytest-odoo i18n

setup:
	@bash setup/setup.sh

demo: setup  ## the main job: a whole distribution cycle on real input, then serve the back office
	@$(PY) setup/demo.py --households $(HOUSEHOLDS) $(ARGS)

test: setup  ## all tests: every addon's with Odoo's runner, then tests/ with pytest
	@$(PY) setup/run_tests.py $(ARGS)

bench: setup  ## the benchmark at 10,000 and 100,000 beneficiaries
	@$(PY) setup/bench.py $(ARGS)

dev-db: setup  ## a database to develop against: the five addons installed (run again: updated)
	@$(PY) setup/dev_db.py --db $(DEV_DB)

pytest-odoo: setup  ## one addon's tests with pytest-odoo in that database: make pytest-odoo ADDON=spp_service_points
	@$(PY) setup/dev_db.py --db $(DEV_DB) --test $(ADDON) $(ARGS)

i18n: setup  ## <addon>/i18n/<addon>.pot for every addon, by Odoo's exporter (fresh database; ARGS="--db g2p_dev" to reuse one)
	@$(PY) setup/i18n.py $(ARGS)

lint: setup
	@.venv/bin/pre-commit run --all-files
