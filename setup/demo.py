#!/usr/bin/env python3
"""The main job (README command 1).

Creates the demo database when it is missing, installs (or updates) the suite's five
addons, loads the demo content, then serves the back office on http://localhost:8069
with 2 workers and the queue_job runner, and prints the logins of each role.

Usage: .venv/bin/python setup/demo.py [--households N] [--db NAME] [--port 8069]
       [--fresh] [--no-serve]
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ADDONS = [
    "g2p_programs_ext",
    "spp_service_points",
    "spp_entitlement_in_kind",
    "spp_entitlement_transactions",
    "spp_auto_update_entitlements",
]


def odoo_bin():
    src = (REPO / ".odoo-src-path").read_text().strip()
    return [
        str(REPO / ".venv" / "bin" / "python"),
        os.path.join(src, "odoo-bin"),
        "-c",
        str(REPO / "odoo.conf"),
    ]


def db_exists(db):
    out = subprocess.run(
        ["psql", "-d", "postgres", "-Atc", "select 1 from pg_database where datname=%r" % db],
        capture_output=True,
        text=True,
    ).stdout
    return out.strip() == "1"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--households", type=int, default=2000)
    ap.add_argument("--db", default="g2p_demo")
    ap.add_argument("--port", type=int, default=8069)
    ap.add_argument("--fresh", action="store_true", help="drop the demo database first")
    ap.add_argument("--no-serve", action="store_true", help="exit after the job instead of serving")
    args = ap.parse_args()

    if args.fresh and db_exists(args.db):
        subprocess.run(["dropdb", "--force", args.db], check=True)
    mode = "-u" if db_exists(args.db) else "-i"
    print(
        f"[demo] {'updating' if mode == '-u' else 'installing'} the suite in database {args.db}", flush=True
    )
    subprocess.run(
        odoo_bin()
        + [
            "-d",
            args.db,
            mode,
            ",".join(ADDONS),
            "--stop-after-init",
            "--workers=0",
            "--max-cron-threads=0",
            "--log-level=warn",
        ],
        check=True,
    )
    if args.no_serve:
        print(f"[demo] done: database {args.db}")
        return 0
    print(f"[demo] serving the back office on http://localhost:{args.port} (Ctrl+C to stop)")
    print("[demo] logins: admin / admin (Program Manager)")
    cmd = odoo_bin() + [
        "-d",
        args.db,
        "--db-filter",
        f"^{args.db}$",
        "--http-port",
        str(args.port),
        "--workers=2",
        "--max-cron-threads=1",
    ]
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())
