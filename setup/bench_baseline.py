#!/usr/bin/env python3
"""The per-entitlement approach to in-kind approval (OpenSPP 17's), for setup/bench.py to
compare with: one procurement and one stock move per in-kind entitlement, confirmed and
reserved, on ``--count`` pending entitlements of ``--cycle``. Runs in-process (Odoo as the
superuser, the suite's own helpers for the customers' location and the delivery route)
and ROLLS BACK: the database is left as it was. Prints one JSON line
``{"entitlements": n, "moves": m, "seconds": s}``.

Usage: .venv/bin/python setup/bench_baseline.py --db DB --cycle ID --count N
"""

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--cycle", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    args = ap.parse_args()
    sys.path.insert(0, (REPO / ".odoo-src-path").read_text().strip())
    import odoo  # noqa: PLC0415
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    odoo.tools.config.parse_config(["-c", str(REPO / "odoo.conf"), "-d", args.db, "--log-level=warn"])
    registry = odoo.modules.registry.Registry(args.db)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        cr.execute(
            "SELECT id FROM g2p_entitlement_inkind WHERE cycle_id = %s AND state = 'pending_validation' "
            "ORDER BY id LIMIT %s",
            [args.cycle, args.count],
        )
        entitlements = env["g2p.entitlement.inkind"].browse([row[0] for row in cr.fetchall()])
        Stock = env["g2p.inkind.allocation"]
        customers = Stock._customer_location()
        t0 = time.perf_counter()
        Procurement = env["procurement.group"].Procurement
        group = env["procurement.group"].create({"name": "Bench per-entitlement", "move_type": "direct"})
        procurements = []
        for entitlement in entitlements:
            warehouse = entitlement.service_point_id.warehouse_id or entitlement.warehouse_id
            values = {
                "group_id": group,
                "warehouse_id": warehouse,
                "route_ids": Stock._delivery_rule(warehouse).route_id,
                "date_planned": time.strftime("%Y-%m-%d %H:%M:%S"),
                "company_id": warehouse.company_id,
                # a distinct description keeps Odoo from merging the moves
                "product_description_variants": f"\n{entitlement.id}",
            }
            procurements.append(
                Procurement(
                    entitlement.product_id,
                    entitlement.quantity,
                    entitlement.uom_id,
                    customers,
                    str(entitlement.id),
                    entitlement.cycle_id.name,
                    warehouse.company_id,
                    values,
                )
            )
        env["procurement.group"].run(procurements)
        moves = env["stock.move"].search([("group_id", "=", group.id)])
        moves._action_assign()
        env.flush_all()
        seconds = time.perf_counter() - t0
        result = {"entitlements": len(entitlements), "moves": len(moves), "seconds": seconds}
        cr.rollback()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
