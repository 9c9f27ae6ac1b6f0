"""Fixtures for the suite-wide tests: the database that setup/run_tests.py prepared,
and an Odoo server started on a free localhost port when a test needs one."""

import os
import sys
from pathlib import Path

import pytest

from tests.odoo_server import OdooServer

# setup/ on sys.path, as the scripts there do: the tests share their XML-RPC client
# (setup/g2p_client.py). setup/ is not importable as a package under the Odoo
# virtualenv (Odoo's own setup.py shadows it).
SETUP_DIR = str(Path(__file__).resolve().parent.parent / "setup")
if SETUP_DIR not in sys.path:
    sys.path.insert(0, SETUP_DIR)


@pytest.fixture(scope="session")
def test_db():
    db = os.environ.get("G2P_TEST_DB")
    if not db:
        pytest.fail("G2P_TEST_DB is not set: run the tests with `make test` (setup/run_tests.py).")
    return db


@pytest.fixture(scope="session")
def odoo_server(test_db):
    server = OdooServer(test_db, workers=2)
    server.start()
    yield server
    server.stop()
