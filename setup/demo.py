#!/usr/bin/env python3
"""The main job (README command 1): a whole distribution cycle on real input.

1. Generates the real input (a seeded Philippine registry and the WFP ration basket,
   see setup/demo_data/README.md) as CSV files, kept in var/demo-input/<N>/.
2. Creates the database (``--fresh`` drops it first), installs the suite's five addons.
3. Starts Odoo with 2 workers and the queue_job runner, and over XML-RPC, as the
   users of each role would: imports the CSVs with Odoo's standard import (``load``),
   sets up warehouses, service points, agents with API keys, initial stock (one product
   short on purpose), the program (in-kind basket + cash top-up), then runs the cycle:
   enroll -> new cycle -> prepare entitlements (jobs) -> submit -> approve the cycle ->
   validate (refused: short product) -> a receipt arrives -> validate -> agents redeem
   over XML-RPC (most in full, some in part, some never; one device's day uploaded
   offline) -> deliveries posted -> the cycle's end date passes -> the scheduled action
   closes it.
4. Prints the report (counts per state; per warehouse and product: approved, handed
   out, released, left; invariants; the time of each step), writes it as JSON, then
   keeps serving the back office and prints the logins (``--no-serve`` exits).

Usage: .venv/bin/python setup/demo.py [--households N] [--db NAME] [--port 8069]
       [--fresh] [--no-serve] [--seed 42] [--report FILE]
"""

import argparse
import csv
import json
import math
import random
import signal
import subprocess
import sys
import threading
import time
import xmlrpc.client
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))

from demo_data import RATION, generate, quantity_per_person, write_csv  # noqa: E402
from demo_data.goods import HOUSEHOLD_SIZE_CAP  # noqa: E402
from fast_import import fast_import  # noqa: E402
from g2p_client import Client  # noqa: E402
from odoo_server import ADDONS, OdooServer, odoo_bin  # noqa: E402

PASSWORD = "demo"  # the demo users' password (printed at the end)
HANDOUT_PATH = "/web#action=spp_entitlement_transactions.spp_handout_action"  # agents' screen (issue 20)
ROLES = {
    "officer": ("Program Officer", "g2p_programs_ext.group_program_officer"),
    "validator": ("Entitlement Validator", "g2p_programs_ext.group_program_validator"),
    "approver": ("Cycle Approver", "g2p_programs_ext.group_cycle_approver"),
    "manager": ("Program Manager", "g2p_programs_ext.group_program_manager"),
}
SHORT_PRODUCT = "GFD-SCEREAL"  # stocked short on purpose in the first warehouse
IMPORT_BATCH = 2000


# ----------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------
def say(message):
    print(f"[demo] {message}", flush=True)


def progress(label, done, total, started):
    width = 30
    filled = int(width * done / total) if total else width
    rate = done / max(time.time() - started, 1e-6)
    sys.stdout.write(
        f"\r[demo]   {label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({rate:,.0f}/s)"
    )
    if done >= total:
        sys.stdout.write("\n")
    sys.stdout.flush()


class Steps:
    """Times each step of the job, for the report."""

    def __init__(self):
        self.times = []

    def __call__(self, name):
        steps = self

        class _Step:
            def __enter__(self):
                say(name + " ...")
                self.t0 = time.time()
                return self

            def __exit__(self, exc_type, exc, tb):
                if exc_type is None:
                    seconds = time.time() - self.t0
                    steps.times.append((name, round(seconds, 2)))
                    say(f"{name}: {seconds:.1f} s")

        return _Step()


def load_csv(client, model, path, batch=IMPORT_BATCH, label=None):
    """Odoo's standard import (``load``) of a CSV file, in batches, with a progress bar."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    t0 = time.time()
    for start in range(0, len(rows), batch):
        result = client.call(model, "load", header, rows[start : start + batch])
        errors = [m for m in result.get("messages", []) if m.get("type") == "error"]
        if errors:
            raise RuntimeError(f"import of {path.name} failed: {errors[:3]}")
        progress(label or path.name, min(start + batch, len(rows)), len(rows), t0)
    return len(rows)


# ----------------------------------------------------------------------------------
# The job
# ----------------------------------------------------------------------------------
def db_exists(db):
    out = subprocess.run(
        ["psql", "-d", "postgres", "-Atc", "select 1 from pg_database where datname = %r" % db],
        capture_output=True,
        text=True,
    ).stdout
    return out.strip() == "1"


def install(db, fresh):
    if fresh and db_exists(db):
        subprocess.run(["dropdb", "--force", db], check=True)
        subprocess.run(["rm", "-rf", str(REPO / "var" / "filestore" / db)], check=False)
    cmd = odoo_bin() + [
        "-d",
        db,
        "-i",
        ",".join(ADDONS),
        "--stop-after-init",
        "--workers=0",
        "--max-cron-threads=0",
    ]
    cmd += ["--log-level=warn", "--without-demo=all"]
    subprocess.run(cmd, check=True)


def make_users(admin, service_points):
    """One user per back-office role, and one agent (with a device API key) per service point."""
    users = {}
    for key, (title, group) in ROLES.items():
        uid = admin.call(
            "res.users",
            "create",
            {
                "name": f"Demo {title}",
                "login": f"demo_{key}",
                "email": f"demo_{key}@example.org",
                "password": PASSWORD,
                "groups_id": [(6, 0, [admin.ref(group)])],
            },
        )
        users[key] = uid
    agents = {}
    agent_group = admin.ref("spp_service_points.group_service_point_agent")
    for sp in service_points:
        login = f"agent_{sp['code'].lower()}"
        uid = admin.call(
            "res.users",
            "create",
            {
                "name": f"Agent at {sp['name']}",
                "login": login,
                "email": f"{login}@example.org",
                "password": PASSWORD,
                "groups_id": [(6, 0, [agent_group])],
                "service_point_ids": [(6, 0, [sp["id"]])],
            },
        )
        key = admin.call("res.users", "action_generate_api_key_for_device", [uid], f"Tablet at {sp['code']}")
        agents[sp["id"]] = {"uid": uid, "login": login, "api_key": key}
    return users, agents


def setup_places(admin, registry, household_ids):
    """Warehouses and service points in the municipalities with the most households."""
    by_area = defaultdict(list)
    for hh in registry.households:
        by_area[hh.area_code].append(household_ids[hh.xmlid])
    area_names = {a.code: a.name for a in registry.areas}
    ranked = sorted(by_area, key=lambda code: -len(by_area[code]))
    n_points = min(4, len(ranked))
    company = admin.call("res.users", "read", [admin.uid], ["company_id"])[0]["company_id"][0]
    warehouses = []
    for i in range(min(2, n_points)):
        code = ranked[i]
        wid = admin.call(
            "stock.warehouse",
            "create",
            {"name": f"{area_names[code]} warehouse", "code": f"WH{i + 1}", "company_id": company},
        )
        warehouses.append({"id": wid, "name": f"{area_names[code]} warehouse", "area": code})
    area_ids = {}
    for code in ranked[:n_points]:
        found = admin.call("spp.area", "search_read", [("code", "=", code)], fields=["id"])
        area_ids[code] = found[0]["id"] if found else False
    points = []
    for i, code in enumerate(ranked[:n_points]):
        wh = warehouses[i % len(warehouses)]
        sid = admin.call(
            "spp.service.point",
            "create",
            {
                "name": f"{area_names[code]} distribution site",
                "code": f"SP{i + 1:02d}",
                "area_id": area_ids[code],
                "warehouse_id": wh["id"],
                "phone": f"+63 2 8{random.Random(i).randint(100, 999)} {random.Random(i + 9).randint(1000, 9999)}",
            },
        )
        points.append(
            {
                "id": sid,
                "name": f"{area_names[code]} distribution site",
                "code": f"SP{i + 1:02d}",
                "warehouse_id": wh["id"],
            }
        )
    # Households of the 4 largest areas go to their own point; the others to a point by turn.
    assignment = defaultdict(list)
    for code, ids in by_area.items():
        idx = ranked.index(code)
        point = points[idx] if idx < n_points else points[idx % n_points]
        assignment[point["id"]] += ids
    for sp_id, ids in assignment.items():
        admin.call("res.partner", "write", ids, {"service_point_id": sp_id})
    return warehouses, points, assignment


def needs_per_warehouse(registry, household_ids, points, assignment):
    """Quantity of each product the eligible households of each warehouse would get (all of them)."""
    wh_of_point = {p["id"]: p["warehouse_id"] for p in points}
    point_of_hh = {hid: sp for sp, ids in assignment.items() for hid in ids}
    today = date.today()
    needs = defaultdict(float)
    for hh in registry.households:
        wh = wh_of_point[point_of_hh[household_ids[hh.xmlid]]]
        size = min(len(hh.members), HOUSEHOLD_SIZE_CAP)
        vulnerable = any(m.is_pregnant or (today - m.birthdate).days < 5 * 365.25 for m in hh.members)
        for item in RATION:
            if item.vulnerable_only and not vulnerable:
                continue
            needs[(wh, item.default_code)] += quantity_per_person(item) * size
    return needs


def setup_goods(admin):
    kg = admin.ref("uom.product_uom_kgm")
    litre = admin.ref("uom.product_uom_litre")
    products = {}
    for item in RATION:
        uom = kg if item.uom_name == "kg" else litre
        pid = admin.call(
            "product.product",
            "create",
            {
                "name": item.product_name,
                "default_code": item.default_code,
                "detailed_type": "product",
                "uom_id": uom,
                "uom_po_id": uom,
                "standard_price": 1.0,
            },
        )
        products[item.default_code] = {"id": pid, "uom": uom, "item": item}
    return products


def stock_in(admin, warehouses, products, needs, short):
    """Initial stock by inventory adjustment: 5 % above need, one product at 80 % in one warehouse."""
    wh_stock = {
        w["id"]: admin.call("stock.warehouse", "read", [w["id"]], ["lot_stock_id"])[0]["lot_stock_id"][0]
        for w in warehouses
    }
    quant_ids = []
    shortfall = {}
    for (wh, code), need in needs.items():
        qty = math.ceil(need * 1.05)
        if short and code == SHORT_PRODUCT and wh == warehouses[0]["id"]:
            qty = math.floor(need * 0.8)
            shortfall = {
                "warehouse": wh,
                "location": wh_stock[wh],
                "product": products[code]["id"],
                "missing": need - qty,
            }
        quant_ids.append(
            admin.call(
                "stock.quant",
                "create",
                {"product_id": products[code]["id"], "location_id": wh_stock[wh], "inventory_quantity": qty},
                context={"inventory_mode": True},
            )
        )
    admin.call_void("stock.quant", "action_apply_inventory", quant_ids, context={"inventory_mode": True})
    return wh_stock, shortfall


def receive(admin, warehouse_id, product_id, quantity):
    """A receipt (incoming transfer) for ``quantity`` of the product, validated."""
    picking_type = admin.call("stock.warehouse", "read", [warehouse_id], ["in_type_id"])[0]["in_type_id"][0]
    ptype = admin.call(
        "stock.picking.type", "read", [picking_type], ["default_location_src_id", "default_location_dest_id"]
    )[0]
    supplier = admin.ref("stock.stock_location_suppliers")
    product = admin.call("product.product", "read", [product_id], ["uom_id", "name"])[0]
    picking = admin.call(
        "stock.picking",
        "create",
        {
            "picking_type_id": picking_type,
            "location_id": supplier,
            "location_dest_id": ptype["default_location_dest_id"][0],
            "origin": "Donation received for the demo cycle",
            "move_ids": [
                (
                    0,
                    0,
                    {
                        "name": product["name"],
                        "product_id": product_id,
                        "product_uom": product["uom_id"][0],
                        "product_uom_qty": quantity,
                        "location_id": supplier,
                        "location_dest_id": ptype["default_location_dest_id"][0],
                    },
                )
            ],
        },
    )
    admin.call_void("stock.picking", "action_confirm", [picking])
    moves = admin.call(
        "stock.move", "search_read", [("picking_id", "=", picking)], fields=["product_uom_qty"]
    )
    for move in moves:
        admin.call("stock.move", "write", [move["id"]], {"quantity": move["product_uom_qty"], "picked": True})
    admin.call_void("stock.picking", "button_validate", [picking])
    return picking


def setup_program(admin, users, products, warehouses, cycle_start):
    group = admin.call(
        "res.groups",
        "create",
        {"name": "Demo distribution validators", "users": [(6, 0, [users["validator"]])]},
    )
    program = admin.call(
        "g2p.program",
        "create",
        {
            "name": "Food assistance for vulnerable households",
            "target_type": "group",
            "eligibility_domain": "[('area_id', '!=', False)]",
            # vulnerable: a child under 5, a pregnant member, a member with a disability or aged 60+
            "eligibility_expression": (
                "members.exists(m, m.age < 5 || m.age >= 60) || "
                "members.exists(m, m.is_pregnant || m.has_disability)"
            ),
            "start_date": cycle_start.isoformat(),
            "cycle_duration": 30,
        },
    )
    items = []
    for product in products.values():
        item = product["item"]
        items.append(
            (
                0,
                0,
                {
                    "product_id": product["id"],
                    "quantity": quantity_per_person(item),
                    "uom_id": product["uom"],
                    "multiplier_field": "household_size",
                    "max_multiplier": HOUSEHOLD_SIZE_CAP,
                    "condition_expression": (
                        "members.exists(m, m.is_pregnant || m.age < 5)" if item.vulnerable_only else False
                    ),
                },
            )
        )
    admin.call(
        "g2p.program.entitlement.manager.inkind",
        "create",
        {
            "program_id": program,
            "name": "WFP general food ration (30 days)",
            "validation_group_id": group,
            "manage_inventory": True,
            "warehouse_id": warehouses[0]["id"],
            "item_ids": items,
        },
    )
    admin.call(
        "g2p.program.entitlement.manager.cash",
        "create",
        {
            "program_id": program,
            "name": "Cash top-up (OpenSPP formula guide)",
            "validation_group_id": group,
            "max_amount": 100.0,
            "item_ids": [
                (0, 0, {"amount": 30.0}),
                (0, 0, {"formula": "10.0 * double(size(members.filter(m, m.age < 5)))"}),
                (0, 0, {"formula": "5.0 * double(size(members.filter(m, m.age >= 60)))"}),
            ],
        },
    )
    return program


def redeem_all(url, db, agents, points, seed):
    """Agents redeem over XML-RPC with their API keys: 80 % in full, 10 % in part, 10 % never.
    The last service point's device works offline and uploads its day in one batch."""
    rng = random.Random(seed)
    plan = []  # (sp, code, quantity, reference)
    offline_point = points[-1]["id"] if len(points) > 1 else None
    offline_lines = []
    clients = {}
    for sp in points:
        agent = agents[sp["id"]]
        client = Client(url, db, agent["login"], agent["api_key"])
        clients[sp["id"]] = client
        rows = client.call("spp.entitlement.transaction", "entitlements_for_service_point", sp["id"])
        by_household = defaultdict(list)
        for row in rows:
            by_household[row["beneficiary"]].append(row)
        for household in sorted(by_household):
            draw = rng.random()
            if draw < 0.10:
                continue  # never collected
            for row in by_household[household]:
                qty = row["balance"] if draw >= 0.20 else round(row["balance"] / 2, 2)
                if qty <= 0:
                    continue
                ref = f"{sp['code']}-{row['code']}"
                if sp["id"] == offline_point:
                    offline_lines.append(
                        {
                            "code": row["code"],
                            "quantity": qty,
                            "reference": ref,
                            "device_time": time.strftime("%Y-%m-%d %H:%M:%S"),
                        }
                    )
                else:
                    plan.append((sp["id"], row["code"], qty, ref))
    t0 = time.time()
    latencies = []
    errors = []
    done = [0]
    lock = threading.Lock()

    def one(job):
        sp, code, qty, ref = job
        start = time.time()
        try:
            clients[sp].call("spp.entitlement.transaction", "redeem", code, qty, sp, ref)
        except xmlrpc.client.Fault as fault:
            errors.append(fault.faultString[:200])
        with lock:
            latencies.append(time.time() - start)
            done[0] += 1
            if done[0] % 200 == 0 or done[0] == len(plan):
                progress("redemptions", done[0], len(plan), t0)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, plan))
    online_seconds = time.time() - t0
    batch_answers = []
    if offline_lines:
        batch_answers = clients[offline_point].call(
            "spp.entitlement.transaction", "redeem_batch", offline_point, offline_lines
        )
    latencies.sort()
    return {
        "online_redemptions": len(plan),
        "online_errors": errors[:5],
        "online_error_count": len(errors),
        "online_per_second": round(len(plan) / online_seconds, 1) if online_seconds else 0,
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 1) if latencies else 0,
        "offline_lines": len(offline_lines),
        "offline_errors": sum(1 for a in batch_answers if a.get("error")),
    }


def stock_reserved(admin, warehouses, wh_stock, products):
    """{(warehouse id, product code): quantity reserved in the warehouse's stock} (on hand − free)."""
    reserved = {}
    for wh in warehouses:
        for code, product in products.items():
            row = admin.call(
                "product.product",
                "read",
                [product["id"]],
                ["qty_available", "free_qty"],
                context={"location": wh_stock[wh["id"]]},
            )[0]
            reserved[(wh["id"], code)] = round(row["qty_available"] - row["free_qty"], 4)
    return reserved


def build_report(
    admin, cycle_id, warehouses, wh_stock, products, initial_on_hand, received, reserved_at_approval
):
    """The report's figures, all read back from the database: entitlements per state and,
    per warehouse and product, approved and handed out (entitlements), delivered from stock
    (on hand before − after), reserved at approval and still reserved (stock), and released
    (reserved at approval − delivered − still reserved: what the closing gave back to stock)."""
    report = {
        "cycle": admin.call("g2p.cycle", "read", [cycle_id], ["name", "state", "start_date", "end_date"])[0]
    }
    for model, key in (("g2p.entitlement", "cash"), ("g2p.entitlement.inkind", "inkind")):
        groups = admin.call(
            model, "read_group", [("cycle_id", "=", cycle_id)], ["state"], ["state"], lazy=False
        )
        report[f"{key}_states"] = {g["state"]: g["__count"] for g in groups}
    rows = []
    discrepancies = 0
    wh_names = {w["id"]: w["name"] for w in warehouses}
    for wh in warehouses:
        for code, product in products.items():
            ents = admin.call(
                "g2p.entitlement.inkind",
                "read_group",
                [
                    ("cycle_id", "=", cycle_id),
                    ("warehouse_id", "=", wh["id"]),
                    ("product_id", "=", product["id"]),
                    ("date_approved", "!=", False),
                ],
                ["quantity:sum", "quantity_redeemed:sum"],
                [],
                lazy=False,
            )[0]
            approved = ents.get("quantity") or 0.0
            handed_out = ents.get("quantity_redeemed") or 0.0
            on_hand = admin.call(
                "product.product",
                "read",
                [product["id"]],
                ["qty_available"],
                context={"location": wh_stock[wh["id"]]},
            )[0]["qty_available"]
            forecast = admin.call(
                "product.product",
                "read",
                [product["id"]],
                ["virtual_available"],
                context={"location": wh_stock[wh["id"]]},
            )[0]["virtual_available"]
            start = initial_on_hand.get((wh["id"], code), 0.0) + received.get((wh["id"], code), 0.0)
            delivered = round(start - on_hand, 4)
            left_reserved = round(on_hand - forecast, 4)
            reserved = reserved_at_approval.get((wh["id"], code), 0.0)
            released = round(reserved - delivered - left_reserved, 4)
            ok = (
                abs(delivered - handed_out) < 0.005
                and left_reserved < 0.005
                and abs(reserved - approved) < 0.005
                and abs(released - (approved - handed_out)) < 0.005
            )
            discrepancies += 0 if ok else 1
            rows.append(
                {
                    "warehouse": wh_names[wh["id"]],
                    "product": code,
                    "approved": round(approved, 2),
                    "handed_out": round(handed_out, 2),
                    "delivered_from_stock": delivered,
                    "reserved_at_approval": reserved,
                    "released": released,
                    "still_reserved": left_reserved,
                    "on_hand": round(on_hand, 2),
                    "ok": ok,
                }
            )
    report["stock"] = rows
    report["discrepancies"] = discrepancies
    return report


def print_report(report, steps, logins):
    print()
    print("=" * 100)
    print(
        f"Cycle {report['cycle']['name']} ({report['cycle']['start_date']} to {report['cycle']['end_date']}): "
        f"{report['cycle']['state']}"
    )
    print("Cash entitlements per state:    ", report["cash_states"])
    print("In-kind entitlements per state: ", report["inkind_states"])
    print()
    header = f"{'warehouse':28} {'product':12} {'approved':>10} {'handed out':>10} {'from stock':>10} {'released':>10} {'reserved':>9} {'ok':>3}"
    print(header)
    for r in report["stock"]:
        print(
            f"{r['warehouse'][:28]:28} {r['product']:12} {r['approved']:>10.2f} {r['handed_out']:>10.2f} "
            f"{r['delivered_from_stock']:>10.2f} {r['released']:>10.2f} {r['still_reserved']:>9.2f} "
            f"{'yes' if r['ok'] else 'NO':>3}"
        )
    print(f"Discrepancies: {report['discrepancies']}")
    print()
    print("Redemptions:", report["redemption"])
    print()
    width = max((len(name) for name, _seconds in steps.times), default=0)
    for name, seconds in steps.times:
        print(f"  {name:{width}} {seconds:8.1f} s")
    print("=" * 100)
    print("Logins (password for all: %s):" % PASSWORD)
    for role, login in logins.items():
        print(f"  {role:28} {login}")


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--households", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--db", default="g2p_demo")
    ap.add_argument("--port", type=int, default=8069)
    ap.add_argument("--fresh", action="store_true", help="drop the database first when it exists")
    ap.add_argument("--no-serve", action="store_true", help="exit after the job instead of serving")
    ap.add_argument("--report", help="write the report as JSON to this file")
    args = ap.parse_args()
    # SIGTERM (kill, a service manager) unwinds like Ctrl+C: the server and its workers
    # (their own process group) are stopped on the way out, never left running.
    signal.signal(signal.SIGTERM, _terminate)
    if not 1 <= args.households <= 100_000:
        raise SystemExit("[demo] --households takes 1 to 100,000")
    steps = Steps()
    today = date.today()
    if db_exists(args.db) and not args.fresh:
        # Safe to run again: an existing demo is served as it is, never overwritten.
        say(f"Database {args.db} exists: serving it as it is (ARGS=--fresh runs the job again on a new one).")
        if args.no_serve:
            return 0
        server = OdooServer(args.db, workers=2, port=args.port, log_path=REPO / "var" / f"demo-{args.db}.log")
        try:
            server.start(timeout=180)
            say(
                f"The back office is on {server.url}: admin / admin; demo_officer, demo_validator, "
                f"demo_approver, demo_manager, agent_sp01... / {PASSWORD} (Ctrl+C to stop)."
            )
            say(f"Agents open the handout screen (their home page at login): {server.url}{HANDOUT_PATH}")
            server.proc.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
        return 0

    with steps("Generate the real input (CSV)"):
        registry = generate(args.households, seed=args.seed, as_of=today)
        out_dir = REPO / "var" / "demo-input" / str(args.households)
        paths = write_csv(registry, out_dir)
        say(
            f"  {len(registry.households)} households, {sum(1 for _i in registry.individuals)} individuals in {out_dir}"
        )

    with steps("Create the database and install the suite"):
        install(args.db, args.fresh)

    server = OdooServer(args.db, workers=2, port=args.port, log_path=REPO / "var" / f"demo-{args.db}.log")
    server.start(timeout=180)
    say(f"Odoo serves {server.url} (2 workers, queue_job runner); log in {server.log_path}")
    try:
        report = run_cycle(server.url, args, registry, paths, steps, today)
    except BaseException:
        server.stop()
        raise
    logins = {"Administrator": "admin (password admin)"}
    logins.update({ROLES[k][0]: f"demo_{k}" for k in ROLES})
    logins.update({f"Agent {sp['code']}": a["login"] for sp, a in report.pop("_agents")})
    report["steps"] = steps.times
    print_report(report, steps, logins)
    say(f"Agents open the handout screen (their home page at login): {server.url}{HANDOUT_PATH}")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2, default=str))
    if args.no_serve:
        server.stop()
        return 0 if report["discrepancies"] == 0 else 1
    say(f"The back office stays on {server.url} (Ctrl+C to stop).")
    try:
        server.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def run_cycle(url, args, registry, paths, steps, today):
    admin = Client(url, args.db, "admin", "admin")
    fast = args.households > 10_000  # above 10,000 households: the fast registry import (a job)
    with steps("Import areas and registry (%s)" % ("fast import" if fast else "standard import")):
        load_csv(admin, "spp.area", paths["areas"], label="areas")
        if fast:
            t0 = time.time()
            fast_import(
                admin, paths, progress=lambda pct, msg: progress("registry import", int(pct), 100, t0)
            )
        else:
            load_csv(admin, "res.partner", paths["groups"], label="households")
            load_csv(admin, "res.partner", paths["individuals"], label="individuals")
            load_csv(admin, "g2p.group.membership", paths["memberships"], label="memberships")
            load_csv(admin, "res.partner", paths["household_areas"], label="household areas")
        rows = admin.call(
            "ir.model.data",
            "search_read",
            [("module", "=", "__import__"), ("model", "=", "res.partner"), ("name", "like", "demo_hh_")],
            fields=["name", "res_id"],
        )
        household_ids = {r["name"]: r["res_id"] for r in rows}

    with steps("Warehouses, service points, products, users and agents"):
        warehouses, points, assignment = setup_places(admin, registry, household_ids)
        products = setup_goods(admin)
        users, agents = make_users(admin, points)

    with steps("Initial stock (inventory adjustment; one product short)"):
        needs = needs_per_warehouse(registry, household_ids, points, assignment)
        wh_stock, shortfall = stock_in(admin, warehouses, products, needs, short=True)
        initial_on_hand = {}
        for w in warehouses:
            for code, product in products.items():
                initial_on_hand[(w["id"], code)] = admin.call(
                    "product.product",
                    "read",
                    [product["id"]],
                    ["qty_available"],
                    context={"location": wh_stock[w["id"]]},
                )[0]["qty_available"]

    cycle_start = today - timedelta(days=29)  # the cycle runs until today
    program = setup_program(admin, users, products, warehouses, cycle_start)
    officer = Client(url, args.db, "demo_officer", PASSWORD)
    approver = Client(url, args.db, "demo_approver", PASSWORD)
    validator = Client(url, args.db, "demo_validator", PASSWORD)

    with steps("Enroll eligible households (CEL; jobs above the threshold)"):
        officer.call("g2p.program", "enroll_eligible_registrants", [program])
        officer.wait_unlocked("g2p.program", program)
    with steps("Create the cycle (copy beneficiaries)"):
        cycle = officer.call("g2p.program", "create_new_cycle", [program])
        officer.wait_unlocked("g2p.cycle", cycle)
    with steps("Prepare entitlements (queue_job jobs)"):
        officer.call("g2p.cycle", "prepare_entitlement", [cycle])
        officer.wait_unlocked("g2p.cycle", cycle)
    with steps("Submit, approve the cycle"):
        officer.call("g2p.cycle", "to_approve", [cycle])
        officer.wait_unlocked("g2p.cycle", cycle)  # above the threshold: submission jobs
        approver.call("g2p.cycle", "approve", [cycle])

    with steps("Validate entitlements (refused: stock short), receipt, validate"):
        refused = None
        try:
            validator.call("g2p.cycle", "validate_entitlement", [cycle])
        except xmlrpc.client.Fault as fault:
            refused = fault.faultString.strip().splitlines()[-1][:300]
        if not refused:
            raise RuntimeError("validation should have been refused: one product is short")
        say(f"  refused as expected: {refused}")
        received = defaultdict(float)
        if shortfall:
            qty = math.ceil(shortfall["missing"]) + 1
            receive(admin, shortfall["warehouse"], shortfall["product"], qty)
            received[(shortfall["warehouse"], SHORT_PRODUCT)] += qty
        validator.call("g2p.cycle", "validate_entitlement", [cycle])
        validator.wait_unlocked("g2p.cycle", cycle)  # above the threshold: approval jobs
        admin.call("g2p.cycle", "mark_distributed", [cycle])
        # what the approval reserved, read from stock (on hand - free), to check the release later
        reserved_at_approval = stock_reserved(admin, warehouses, wh_stock, products)

    with steps("Redemptions by agents over XML-RPC (API keys, 8 clients; one offline batch)"):
        redemption = redeem_all(url, args.db, agents, points, args.seed)

    with steps("Post deliveries to stock"):
        admin.call("g2p.cycle", "action_post_deliveries", [cycle])

    with steps("The end date passes; the scheduled action closes the cycle"):
        # Time cannot be moved on a real server: the cycle's end date (and the
        # validity of its entitlements) is moved to yesterday, as if a day had passed.
        yesterday = (today - timedelta(days=1)).isoformat()
        admin.call("g2p.cycle", "write", [cycle], {"end_date": yesterday})
        cron = admin.ref("spp_auto_update_entitlements.ir_cron_close_ended_cycles")
        admin.call("ir.cron", "method_direct_trigger", [cron])
        t0 = time.time()
        while admin.call("g2p.cycle", "read", [cycle], ["state"])[0]["state"] != "ended":
            if time.time() - t0 > 600:
                raise RuntimeError("the cycle was not closed within 10 minutes")
            time.sleep(1)

    report = build_report(
        admin, cycle, warehouses, wh_stock, products, initial_on_hand, received, reserved_at_approval
    )
    report["redemption"] = redemption
    report["validation_refused_first"] = refused
    report["_agents"] = [(sp, agents[sp["id"]]) for sp in points]
    return report


if __name__ == "__main__":
    sys.exit(main())
