#!/usr/bin/env python3
"""Generation as make bench runs it, in process: the cash manager of a ``bench_cel.py
--keep-db`` database (the demo's three items) plus a six-item in-kind basket (one item
with the demo's condition ``members.exists(m, m.is_pregnant || m.age < 5)``, multiplier
``household_size``), prepared by batches of the job size as the jobs do, with the counts
over the members read from the household summary and (context ``cel_grouped_pass``) by
the grouped pass, alternately; each against the raw ``INSERT`` of the same rows
(``bench_probe.raw_insert_seconds``'s method: copied aside, deleted, inserted back) in
the same transaction. Everything is rolled back and the entitlement tables vacuumed
(and analyzed: empty, as before a first generation) before each run.

Usage: .venv/bin/python setup/bench_gen_batches.py [--db g2p_bench_cel] [--rounds 2] [--batch 5000]
(after ``.venv/bin/python setup/bench_cel.py --sizes 100000 --keep-db``)
"""

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench


def raw_insert(cr, table, cycle_id):
    """Seconds of a raw INSERT of the rows of ``table`` of the cycle (inside the transaction)."""
    cr.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND column_name <> 'id' "
        "ORDER BY ordinal_position",
        [table],
    )
    cols = ", ".join('"%s"' % row[0] for row in cr.fetchall())
    cr.execute("DROP TABLE IF EXISTS bench_rows")
    cr.execute(f"CREATE TEMP TABLE bench_rows AS SELECT {cols} FROM {table} WHERE cycle_id = %s", [cycle_id])
    cr.execute(f"DELETE FROM {table} WHERE cycle_id = %s", [cycle_id])
    t0 = time.perf_counter()
    cr.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM bench_rows")
    return cr.rowcount, time.perf_counter() - t0


def vacuum(db):
    conn = psycopg2.connect(dbname=db)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM (ANALYZE) g2p_entitlement, g2p_entitlement_inkind")
    conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="g2p_bench_cel")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=5000)
    args = ap.parse_args()
    odoo = bench.odoo_env(args.db)
    registry = odoo.modules.registry.Registry(args.db)
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        cycle = env["g2p.cycle"].search([], order="id desc", limit=1)
        program = cycle.program_id
        if not env["g2p.program.entitlement.manager.inkind"].search([("program_id", "=", program.id)]):
            kg = env.ref("uom.product_uom_kgm")
            products = env["product.product"].create(
                [
                    {"name": "Basket %d" % i, "detailed_type": "product", "uom_id": kg.id, "uom_po_id": kg.id}
                    for i in range(6)
                ]
            )
            items = [
                {
                    "product_id": product.id,
                    "quantity": 12.0,
                    "uom_id": kg.id,
                    "multiplier_field": "household_size",
                    "max_multiplier": 8,
                    "condition_expression": "members.exists(m, m.is_pregnant || m.age < 5)"
                    if i == 5
                    else False,
                }
                for i, product in enumerate(products)
            ]
            env["g2p.program.entitlement.manager.inkind"].create(
                {
                    "program_id": program.id,
                    "warehouse_id": env["stock.warehouse"].search([], limit=1).id,
                    "item_ids": [(0, 0, vals) for vals in items],
                }
            )
        cr.execute("DELETE FROM g2p_entitlement WHERE cycle_id = %s", [cycle.id])
        cr.execute("DELETE FROM g2p_entitlement_inkind WHERE cycle_id = %s", [cycle.id])
        cr.commit()
        cycle_id = cycle.id
    bench.say("load before: %.2f %.2f %.2f" % os.getloadavg())
    order = []
    for r in range(args.rounds):
        order += [False, True] if r % 2 == 0 else [True, False]
    for grouped in order:
        vacuum(args.db)
        with registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {"cel_grouped_pass": grouped})
            cycle = env["g2p.cycle"].browse(cycle_id)
            pids = cycle._member_ids()
            t0 = time.perf_counter()
            created = skipped = 0
            for i in range(0, len(pids), args.batch):
                batch_created, batch_skipped = cycle._prepare_entitlements_for(pids[i : i + args.batch])
                created += batch_created
                skipped += batch_skipped
            seconds = time.perf_counter() - t0
            rows_c, raw_c = raw_insert(cr, "g2p_entitlement", cycle_id)
            rows_k, raw_k = raw_insert(cr, "g2p_entitlement_inkind", cycle_id)
            bench.say(
                "%-12s %d beneficiaries, batches of %d: created %d (cash %d, in-kind %d), skipped %d: %.2f s; "
                "raw INSERT %.2f s (cash %.2f, in-kind %.2f): %.2fx"
                % (
                    "grouped pass" if grouped else "summary",
                    len(pids),
                    args.batch,
                    created,
                    rows_c,
                    rows_k,
                    skipped,
                    seconds,
                    raw_c + raw_k,
                    raw_c,
                    raw_k,
                    seconds / (raw_c + raw_k),
                )
            )
            cr.rollback()
    vacuum(args.db)
    bench.say("load after: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
