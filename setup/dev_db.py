#!/usr/bin/env python3
"""A database to develop one addon against, and that addon's tests run with pytest-odoo.

pytest-odoo runs an addon's tests (``TransactionCase``: each test rolled back) in an
existing database; it does not install anything. This script makes that database:
the suite's five addons installed, without demo data; run again, it updates them (new
fields, views, access rules of the code being edited).

Usage: .venv/bin/python setup/dev_db.py [--db g2p_dev]
           create the database, or update the addons in it  (make dev-db)
       .venv/bin/python setup/dev_db.py [--db g2p_dev] --test ADDON [pytest args...]
           ADDON's tests with pytest-odoo in that database     (make pytest-odoo ADDON=...)

The second form runs ``.venv/bin/python -m pytest --odoo-config=odoo.conf
--odoo-database=g2p_dev ADDON/tests``: pytest's own options follow (``-k name``, ``-x``,
``ADDON/tests/test_x.py::TestY::test_z`` instead of the whole folder). Browser tests
(``HttpCase``) are skipped unless ``--odoo-http`` is given. Odoo's own runner
(``make test``) stays the authority; this is the quick loop.
"""

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))

from odoo_server import ADDONS, free_port, odoo_bin  # noqa: E402

DEFAULT_DB = "g2p_dev"


def db_exists(db):
    out = subprocess.run(
        ["psql", "-d", "postgres", "-Atc", "select 1 from pg_database where datname = %r" % db],
        capture_output=True,
        text=True,
    ).stdout
    return out.strip() == "1"


def make_db(db, addons=ADDONS):
    """Install ``addons`` in ``db`` (created when missing), or update them when it exists.

    :raises subprocess.CalledProcessError: when Odoo fails
    """
    cmd = odoo_bin() + [
        "-d",
        db,
        "-u" if db_exists(db) else "-i",
        ",".join(addons),
        "--stop-after-init",
        "--without-demo=all",
        "--workers=0",
        "--max-cron-threads=0",
        "--http-port",
        str(free_port()),
        "--log-level=warn",
    ]
    print("[dev-db] " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def pytest_odoo_command(db, addon, extra=()):
    """The command that runs ``addon``'s tests with pytest-odoo against ``db`` (which
    must have the addon installed). :return: argv, to run from the repository's root."""
    paths = [a for a in extra if a.startswith(f"{addon}/")]
    return [
        str(REPO / ".venv" / "bin" / "python"),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--odoo-config={REPO / 'odoo.conf'}",
        f"--odoo-database={db}",
        *([] if paths else [f"{addon}/tests"]),
        *extra,
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=DEFAULT_DB)
    ap.add_argument("--test", metavar="ADDON", help="run ADDON's tests with pytest-odoo in the database")
    args, extra = ap.parse_known_args()
    if not args.test:
        if extra:
            ap.error(f"unknown arguments: {' '.join(extra)}")
        make_db(args.db)
        print(f"[dev-db] {args.db} ready: make pytest-odoo ADDON=<addon> (DEV_DB={args.db})")
        return 0
    if args.test not in ADDONS:
        ap.error(f"{args.test} is not one of the suite's addons: {', '.join(ADDONS)}")
    if not db_exists(args.db):
        ap.error(f"no database {args.db}: make it first with `make dev-db` (DEV_DB={args.db})")
    cmd = pytest_odoo_command(args.db, args.test, extra)
    print("[pytest-odoo] " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=REPO).returncode


if __name__ == "__main__":
    sys.exit(main())
