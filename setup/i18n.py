#!/usr/bin/env python3
"""Translation templates: ``<addon>/i18n/<addon>.pot`` for each of the suite's addons,
made by Odoo's own exporter (``odoo.tools.translate.trans_export``, what
``odoo-bin --i18n-export`` runs), and the check that the committed ones are current.

A template holds every translatable term of its addon: field labels and help, selection
values, views, menus, and the ``_()`` messages of its Python code. Translators make
``<lang>.po`` files from it (Odoo: *Settings > Translations > Import/Export*, or any PO
editor); Odoo loads ``i18n/<lang>.po`` when the language is installed.

Usage: .venv/bin/python setup/i18n.py [--db DB] [--check] [addon ...]      (make i18n)
  (default: all five addons)
  --db DB   export from DB, which has the addons installed (e.g. g2p_dev after
            ``make dev-db``); without it a fresh database is made and dropped
  --check   write nothing: exit 1 when a committed template differs from the export
            (the header's dates are ignored); ``make test`` runs it
"""

import argparse
import io
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))

from odoo_server import ADDONS, free_port, odoo_bin  # noqa: E402

# Header lines that change on every export.
VOLATILE = ('"POT-Creation-Date:', '"PO-Revision-Date:')


def pot_path(addon):
    return REPO / addon / "i18n" / f"{addon}.pot"


def comparable(text):
    """A template's text without the header's dates."""
    return "\n".join(line for line in text.splitlines() if not line.startswith(VOLATILE))


def export(db, addons):
    """Export each addon's template from ``db``, in one Odoo registry.

    :return: {addon: template text (str)}
    """
    sys.path.insert(0, (REPO / ".odoo-src-path").read_text().strip())
    import odoo  # noqa: PLC0415 - Odoo is only importable once its path is known

    odoo.tools.config.parse_config(["-c", str(REPO / "odoo.conf"), "-d", db, "--log-level=warn"])
    registry = odoo.modules.registry.Registry(db)
    templates = {}
    with registry.cursor() as cr:
        for addon in addons:
            buffer = io.BytesIO()
            odoo.tools.translate.trans_export(None, [addon], buffer, "po", cr)
            templates[addon] = buffer.getvalue().decode()
    return templates


def stale(templates):
    """The addons whose committed template is missing or differs from ``templates``."""
    return [
        addon
        for addon, text in templates.items()
        if not pot_path(addon).exists() or comparable(pot_path(addon).read_text()) != comparable(text)
    ]


def write(templates):
    for addon, text in templates.items():
        path = pot_path(addon)
        path.parent.mkdir(exist_ok=True)
        if path.exists() and comparable(path.read_text()) == comparable(text):
            continue  # unchanged: keep the committed dates
        path.write_text(text)
        print(f"[i18n] wrote {path.relative_to(REPO)}")


def fresh_db(addons):
    db = f"g2p_i18n_{time.strftime('%Y%m%d_%H%M%S')}"
    cmd = odoo_bin() + ["-d", db, "-i", ",".join(addons), "--stop-after-init", "--without-demo=all"]
    cmd += ["--workers=0", "--max-cron-threads=0", "--http-port", str(free_port()), "--log-level=warn"]
    print(f"[i18n] installing {', '.join(addons)} in {db}", flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    return db


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="a database with the addons installed (default: a fresh one)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a committed template is out of date")
    ap.add_argument("addons", nargs="*", help="default: the five")
    args = ap.parse_args()
    addons = args.addons or ADDONS
    unknown = sorted(set(addons) - set(ADDONS))
    if unknown:
        ap.error(f"not among the suite's addons: {', '.join(unknown)}")
    db = args.db or fresh_db(addons)
    try:
        templates = export(db, addons)
    finally:
        if not args.db:
            subprocess.run(["dropdb", "--if-exists", "--force", db], check=False)
            shutil.rmtree(REPO / "var" / "filestore" / db, ignore_errors=True)
    if args.check:
        out_of_date = stale(templates)
        if out_of_date:
            print(
                "[i18n] out of date: "
                + ", ".join(str(pot_path(a).relative_to(REPO)) for a in out_of_date)
                + ": run `make i18n` and commit the templates"
            )
            return 1
        print(f"[i18n] {len(templates)} templates current")
        return 0
    write(templates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
