#!/usr/bin/env python3
"""The benchmark (README command 3, not part of the tests).

At each size (households, default 10,000 and 100,000) it builds a fresh database and a
seeded registry (setup, not measured), then measures each phase of a distribution cycle,
each figure with a ratio measured in the same run:

- ``cash``: enrollment (domain + CEL), new cycle, cash generation (against a raw SQL
  INSERT of the same rows, rolled back), cash approval (ERN, state);
- ``inkind``: in-kind generation (against a raw SQL INSERT), approval with stock
  (check, reserve) against one procurement and one move per entitlement on 2,000
  entitlements (the per-entitlement approach, run on a separate cursor and rolled back);
- ``redemption``: a real server (``--workers``, default 1 then 2; 8 concurrent XML-RPC
  clients, agents' devices with API keys) redeems cash and in-kind entitlements,
  some in full, some in part, some twice at once from two devices (one of the two must
  be refused); rate and p95 against a trivial ``search_read`` by id measured with the
  same clients on the same server; then SQL checks that nothing went over a balance;
  the same once more, for comparison, against a server without ``--db-filter``;
  posting the in-kind deliveries to stock;
- ``closing``: the cycles' end dates pass and the scheduled action closes them through
  the server's cron worker, in committed batches (timed until the cycle is ended);
- the peak memory (VmHWM) of the server's worker processes while it served those phases.

The in-process phases (``cash``, ``inkind``) run inside Odoo (``odoo.registry``) as the
superuser calling the public methods; the server phases run against ``odoo-bin`` with
workers, as in production. Writes a Markdown table (phase, size, seconds, per second,
ratio, target, met) to ``bench-output/RESULTS.md`` and to the screen.

Usage: .venv/bin/python setup/bench.py [--sizes 10000,100000] [--phases cash,inkind,redemption,closing]
       [--workers 1,2] [--redemptions N] [--db g2p_bench] [--keep-db] [--profile] [--out FILE]
"""

import argparse
import io
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import threading
import time
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))

from g2p_client import Client, percentile  # noqa: E402
from odoo_server import ADDONS, OdooServer, odoo_bin  # noqa: E402

PHASES = ("cash", "inkind", "redemption", "closing")
CLIENTS = 8  # concurrent XML-RPC clients (devices)
POINTS = 4  # service points; two devices (agents) each
BASELINE_SIZE = 2000  # entitlements approved the per-entitlement way
CONTENDED_SHARE = 0.05  # redemptions sent twice at once by two devices (60 % of the balance each)
PARTIAL_SHARE = 0.2  # redemptions of half the balance


def say(message):
    print(f"[bench] {message}", flush=True)


def odoo_env(db):
    src = (REPO / ".odoo-src-path").read_text().strip()
    sys.path.insert(0, src)
    import odoo  # noqa: PLC0415 - Odoo is only importable once its path is known

    odoo.tools.config.parse_config(["-c", str(REPO / "odoo.conf"), "-d", db, "--log-level=warn"])
    return odoo


def install(db, addons):
    subprocess.run(["dropdb", "--if-exists", "--force", db], check=True)
    subprocess.run(["rm", "-rf", str(REPO / "var" / "filestore" / db)], check=False)
    cmd = odoo_bin() + [
        "-d",
        db,
        "-i",
        ",".join(addons),
        "--stop-after-init",
        "--workers=0",
        "--max-cron-threads=0",
    ]
    cmd += ["--log-level=warn", "--without-demo=all"]
    subprocess.run(cmd, check=True)


# ----------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------
class Table:
    def __init__(self):
        self.rows = []

    def add(self, phase, size, seconds, ratio="", target="", met=None, per_second=None):
        if per_second is None:
            per_second = size / seconds if seconds else 0
        row = {
            "phase": phase,
            "size": size,
            "seconds": round(seconds, 2) if seconds is not None else "",
            "per_second": round(per_second) if per_second != "" else "",
            "ratio": ratio,
            "target": target,
            "met": "" if met is None else ("yes" if met else "NO"),
        }
        self.rows.append(row)
        seconds_text = f"{seconds:8.2f} s" if seconds is not None else " " * 10
        rate_text = f"{per_second:10,.0f}/s" if per_second != "" else " " * 12
        print(
            f"[bench] {phase:48} {size:>8} {seconds_text} {rate_text}  {ratio:40} {target:32} {row['met']}",
            flush=True,
        )

    def markdown(self):
        lines = [
            "| phase | size | seconds | per second | ratio (same run) | target | met |",
            "|---|---:|---:|---:|---|---|---|",
        ]
        for r in self.rows:
            per_second = f"{r['per_second']:,}" if r["per_second"] != "" else ""
            lines.append(
                f"| {r['phase']} | {r['size']:,} | {r['seconds']} | {per_second} | {r['ratio']} | "
                f"{r['target']} | {r['met']} |"
            )
        return "\n".join(lines)


PROFILE_DIR = None  # --profile: where the cProfile stats of the timed in-process calls go


def timed(function, *args, **kwargs):
    """Call ``function``; :return: (its result, seconds). With ``--profile``, under
    cProfile (slower: the figures are then not comparable), stats written to a file."""
    profiler = None
    if PROFILE_DIR:
        import cProfile  # noqa: PLC0415

        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    result = function(*args, **kwargs)
    seconds = time.perf_counter() - t0
    if profiler:
        import pstats  # noqa: PLC0415

        profiler.disable()
        name = getattr(function, "__name__", "call")
        path = Path(PROFILE_DIR) / f"profile-{name}-{int(time.time() * 1000) % 10**8}.txt"
        with open(path, "w") as fh:
            pstats.Stats(profiler, stream=fh).sort_stats("cumulative").print_stats(60)
        say(f"  profile of {name}: {path}")
    return result, seconds


# ----------------------------------------------------------------------------------
# Setup (not measured): registry, places, agents, goods
# ----------------------------------------------------------------------------------
def make_world(env, households):
    """Warehouses, service points, agents with device keys, a product: {name: ids}."""
    company = env.company
    wh1 = env["stock.warehouse"].search([("company_id", "=", company.id)], limit=1)
    wh2 = env["stock.warehouse"].create({"name": "Bench hub", "code": "BHUB", "company_id": company.id})
    warehouses = [wh1, wh2]
    areas = env["spp.area"].create(
        [{"name": f"Bench area {i + 1}", "code": f"BA-{i + 1}"} for i in range(POINTS)]
    )
    points = env["spp.service.point"].create(
        [
            {
                "name": f"Bench point {i + 1}",
                "code": f"BSP{i + 1}",
                "warehouse_id": warehouses[i % 2].id,
                "area_id": areas[i].id,
            }
            for i in range(POINTS)
        ]
    )
    agent_group = env.ref("spp_service_points.group_service_point_agent")
    devices = []
    for i in range(CLIENTS):
        point = points[i % POINTS]
        user = (
            env["res.users"]
            .with_context(no_reset_password=True)
            .create(
                {
                    "name": f"Bench agent {i + 1}",
                    "login": f"bench_agent_{i + 1}",
                    "groups_id": [(6, 0, [agent_group.id])],
                    "service_point_ids": [(6, 0, [point.id])],
                }
            )
        )
        key = user.action_generate_api_key_for_device(f"Bench device {i + 1}")
        devices.append({"uid": user.id, "login": user.login, "key": key, "point": point.id})
    kg = env.ref("uom.product_uom_kgm")
    rice = env["product.product"].create(
        {
            "name": "Bench rice",
            "detailed_type": "product",
            "uom_id": kg.id,
            "uom_po_id": kg.id,
            "standard_price": 1.0,
        }
    )
    validators = env["res.groups"].create(
        {"name": "Bench validators", "users": [(4, env.ref("base.user_admin").id)]}
    )
    return {
        "warehouses": [w.id for w in warehouses],
        "points": points.ids,
        "areas": areas.ids,
        "devices": devices,
        "product": rice.id,
        "validation_group": validators.id,
    }


def make_registry(env, households, point_ids, area_ids):
    """``households`` households of 1 to 10 members (seeded), each at a service point (by
    turn). Setup, not measured: written with PostgreSQL ``COPY`` (the columns the ORM
    would fill for such registrants, ``household_size`` and ``commercial_partner_id``
    included), which takes seconds where the ORM takes many minutes at 100,000."""
    rng = random.Random(42)
    today = date.today()
    cr = env.cr
    env.flush_all()
    partner_columns = (
        "id, name, complete_name, service_point_id, area_id, household_size, birthdate, gender, has_disability, "
        "is_pregnant, is_registrant, is_group, commercial_partner_id, type, active, is_company, partner_share, "
        "color, lang, picking_warn, create_uid, write_uid, create_date, write_date"
    )
    stamp = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    common = f"contact\tt\tf\tt\t0\ten_US\tno-message\t{env.uid}\t{env.uid}\t{stamp}\t{stamp}"
    batch = 10000
    t0 = time.time()
    for start in range(0, households, batch):
        n = min(batch, households - start)
        sizes = [1 + min(int(rng.expovariate(1 / 3.1)), 9) for _i in range(n)]
        cr.execute("SELECT nextval('res_partner_id_seq') FROM generate_series(1, %s)", [n + sum(sizes)])
        ids = iter([row[0] for row in cr.fetchall()])
        partners, memberships = io.StringIO(), io.StringIO()
        for i, size in enumerate(sizes):
            group_id = next(ids)
            name = f"Household {start + i}"
            point = point_ids[(start + i) % len(point_ids)]
            area = area_ids[(start + i) % len(area_ids)]
            partners.write(
                f"{group_id}\t{name}\t{name}\t{point}\t{area}\t{size}\t\\N\t\\N\tf\tf\tt\tt\t{group_id}\t{common}\n"
            )
            for k in range(size):
                person_id = next(ids)
                age = rng.randint(18, 60) if k == 0 else rng.randint(0, 80)
                name = f"Household {start + i} member {k}"
                birthdate = today - timedelta(days=int(age * 365.25) + rng.randint(0, 364))
                gender = rng.choice(["female", "male"])
                disability = "t" if rng.random() < 0.05 else "f"
                partners.write(
                    f"{person_id}\t{name}\t{name}\t\\N\t{area}\t0\t{birthdate}\t{gender}\t{disability}\tf\tt\tf\t"
                    f"{person_id}\t{common}\n"
                )
                memberships.write(
                    f"{group_id}\t{person_id}\t{today}\t{env.uid}\t{env.uid}\t{stamp}\t{stamp}\n"
                )
        partners.seek(0)
        memberships.seek(0)
        # The foreign-key checks of COPY use a plan PostgreSQL cached when res_partner was
        # tiny: a sequential scan per row, quadratic (seen: 57 to 108 households/s instead
        # of about 1,500). ANALYZE invalidates that plan and, with sequential scans off for
        # this transaction, it is planned again on the primary keys.
        cr.execute("ANALYZE res_partner")
        cr.execute("ANALYZE g2p_group_membership")
        cr.execute("SET LOCAL enable_seqscan = off")
        cr._obj.copy_expert(f"COPY res_partner ({partner_columns}) FROM STDIN", partners)
        cr._obj.copy_expert(
            "COPY g2p_group_membership (group_id, individual_id, start_date, create_uid, write_uid, create_date, "
            "write_date) FROM STDIN",
            memberships,
        )
        cr.commit()  # noqa: B950 - the benchmark owns its transaction, not business code
        rate = (start + n) / max(time.time() - t0, 1e-6)
        print(f"\r[bench]   registry {start + n}/{households} ({rate:,.0f} households/s)", end="", flush=True)
    print()
    env.invalidate_all()


def new_program(env, name, world):
    return env["g2p.program"].create(
        {
            "name": name,
            "target_type": "group",
            "eligibility_domain": "[('household_size', '>=', 1)]",
            "eligibility_expression": "me.household_size >= 1 && (me.household_size < 30 || me.is_group)",
            # the first cycle started 29 days ago and runs until today or later: closing
            # moves its end date to yesterday, as if the days had passed
            "start_date": (date.today() - timedelta(days=29)).isoformat(),
        }
    )


# ----------------------------------------------------------------------------------
# In-process phases
# ----------------------------------------------------------------------------------
def bench_generation(cr, cycle, label, raw_sql, raw_params, table):
    """Time ``raw_sql`` (a SQL INSERT of the rows ``cycle.prepare_entitlement()`` makes,
    rolled back), then the generation itself (committed), and add the row ``label``
    with the ratio of the two. :return: the number of entitlements generated."""
    cr.execute("SAVEPOINT raw")
    t0 = time.perf_counter()
    cr.execute(raw_sql, raw_params)
    raw_seconds = time.perf_counter() - t0
    cr.execute("ROLLBACK TO SAVEPOINT raw")

    created, seconds = timed(cycle.prepare_entitlement)
    cr.commit()
    ratio = seconds / raw_seconds if raw_seconds else 0
    table.add(
        label,
        created,
        seconds,
        f"{ratio:.1f}x raw SQL INSERT ({raw_seconds:.2f} s)",
        ">= 5,000/s and <= 3x raw SQL",
        created / seconds >= 5000 and ratio <= 3,
    )
    return created


def bench_cash(env, size, world, table):
    cr = env.cr
    program = new_program(env, f"Bench cash {size}", world)
    env["g2p.program.entitlement.manager.cash"].create(
        {
            "program_id": program.id,
            "validation_group_id": world["validation_group"],
            "max_amount": 100,
            # the generation machinery: an amount per member, capped (CEL formulas over
            # members cost about 0.3 ms per beneficiary and formula on top: see README)
            "item_ids": [(0, 0, {"amount": 10.0, "multiplier_field": "household_size", "max_multiplier": 5})],
        }
    )
    cr.commit()

    enrolled, seconds = timed(program.enroll_eligible_registrants)
    cr.commit()
    table.add(
        "enrollment (domain + CEL)",
        enrolled,
        seconds,
        target="100,000 < 30 s",
        met=seconds < 30 * enrolled / 100_000 if enrolled else None,
    )

    cycle_id, seconds = timed(program.create_new_cycle)
    cycle = env["g2p.cycle"].browse(cycle_id)
    cr.commit()
    table.add("new cycle (copy beneficiaries)", enrolled, seconds)

    # Raw SQL INSERT of the same rows, measured in the same run, then rolled back.
    bench_generation(
        cr,
        cycle,
        "cash generation",
        """INSERT INTO g2p_entitlement (cycle_id, partner_id, initial_amount, amount_redeemed, balance,
                                        state, program_id, company_id, currency_id, valid_from, valid_until,
                                        service_point_id, area_id, create_uid, write_uid, create_date, write_date)
           SELECT cm.cycle_id, cm.partner_id, 30.0, 0, 30.0, 'draft', %s, %s, %s, %s, %s, p.service_point_id,
                  p.area_id, 1, 1, now(), now()
           FROM g2p_cycle_membership cm JOIN res_partner p ON p.id = cm.partner_id WHERE cm.cycle_id = %s""",
        [
            program.id,
            program.company_id.id,
            program.currency_id.id,
            cycle.start_date,
            cycle.end_date,
            cycle.id,
        ],
        table,
    )

    cycle.to_approve()
    cycle.approve()
    cr.commit()
    approved, seconds = timed(cycle.validate_entitlement)
    cr.commit()
    table.add(
        "cash approval (ERN, state)",
        approved,
        seconds,
        target=">= 10,000/s",
        met=approved / seconds >= 10_000,
    )
    return cycle.id


def stock_in(env, world, cycle):
    """Initial stock by inventory adjustment: what the cycle's entitlements need per
    warehouse, plus 10 %."""
    env.flush_all()
    env.cr.execute(
        """SELECT COALESCE(sp.warehouse_id, %s), SUM(e.quantity) FROM g2p_entitlement_inkind e
           LEFT JOIN spp_service_point sp ON sp.id = e.service_point_id WHERE e.cycle_id = %s GROUP BY 1""",
        [world["warehouses"][0], cycle.id],
    )
    Quant = env["stock.quant"].with_context(inventory_mode=True)
    quants = Quant
    for warehouse_id, need in env.cr.fetchall():
        warehouse = env["stock.warehouse"].browse(warehouse_id)
        quants |= Quant.create(
            {
                "product_id": world["product"],
                "location_id": warehouse.lot_stock_id.id,
                "inventory_quantity": math.ceil(need * 1.1) + BASELINE_SIZE * 30,
            }
        )
    quants.action_apply_inventory()


def per_entitlement_baseline(registry, env_factory, cycle_id, count):
    """Approve ``count`` pending in-kind entitlements the naive way: one procurement and
    one stock move per entitlement (a distinct picking description keeps Odoo from
    merging them), confirmed and reserved; on a separate cursor, rolled back.
    :return: (entitlements, seconds)"""
    with registry.cursor() as cr:
        env = env_factory(cr)
        env.cr.execute(
            "SELECT id FROM g2p_entitlement_inkind WHERE cycle_id = %s AND state = 'pending_validation' "
            "ORDER BY id LIMIT %s",
            [cycle_id, count],
        )
        entitlements = env["g2p.entitlement.inkind"].browse([row[0] for row in env.cr.fetchall()])
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
        seconds = time.perf_counter() - t0
        assert len(moves) == len(entitlements), f"{len(moves)} moves for {len(entitlements)} entitlements"
        cr.rollback()
    return len(entitlements), seconds


def bench_inkind(registry, env_factory, env, size, world, table):
    cr = env.cr
    program = new_program(env, f"Bench in-kind {size}", world)
    kg = env.ref("uom.product_uom_kgm")
    env["g2p.program.entitlement.manager.inkind"].create(
        {
            "program_id": program.id,
            "validation_group_id": world["validation_group"],
            "manage_inventory": True,
            "warehouse_id": world["warehouses"][0],
            "item_ids": [
                (
                    0,
                    0,
                    {
                        "product_id": world["product"],
                        "quantity": 2.5,
                        "uom_id": kg.id,
                        "multiplier_field": "household_size",
                        "max_multiplier": 5,
                    },
                )
            ],
        }
    )
    program.enroll_eligible_registrants()
    cycle = env["g2p.cycle"].browse(program.create_new_cycle())
    cr.commit()

    created = bench_generation(
        cr,
        cycle,
        "in-kind generation",
        """INSERT INTO g2p_entitlement_inkind (cycle_id, partner_id, inkind_item_id, product_id, uom_id, quantity,
                                               quantity_redeemed, quantity_balance, unit_price, total_amount,
                                               state, program_id, company_id, valid_from, valid_until,
                                               service_point_id, area_id, warehouse_id,
                                               create_uid, write_uid, create_date, write_date)
           SELECT cm.cycle_id, cm.partner_id, it.id, %s, %s, 7.5, 0, 7.5, 1.0, 7.5, 'draft', %s, %s, %s, %s,
                  p.service_point_id, p.area_id, %s, 1, 1, now(), now()
           FROM g2p_cycle_membership cm JOIN res_partner p ON p.id = cm.partner_id,
                g2p_program_entitlement_manager_inkind_item it
           JOIN g2p_program_entitlement_manager_inkind mg ON mg.id = it.manager_id
           WHERE cm.cycle_id = %s AND mg.program_id = %s""",
        [
            world["product"],
            kg.id,
            program.id,
            program.company_id.id,
            cycle.start_date,
            cycle.end_date,
            world["warehouses"][0],
            cycle.id,
            program.id,
        ],
        table,
    )

    stock_in(env, world, cycle)
    cycle.to_approve()
    cycle.approve()
    cr.commit()

    base_count, base_seconds = per_entitlement_baseline(
        registry, env_factory, cycle.id, min(BASELINE_SIZE, created)
    )
    base_rate = base_count / base_seconds
    approved, seconds = timed(cycle.validate_entitlement)
    cr.commit()
    rate = approved / seconds
    table.add(
        "in-kind approval with stock (check, reserve)",
        approved,
        seconds,
        f"{rate / base_rate:.0f}x one procurement + move per entitlement ({base_count:,}: {base_rate:,.0f}/s)",
        ">= 5,000/s and >= 50x",
        rate >= 5000 and rate / base_rate >= 50,
    )
    cr.execute(
        "SELECT count(*) FROM stock_move WHERE g2p_cycle_id = %s AND state = 'assigned'",
        [cycle.id],
    )
    say(f"  {approved} in-kind entitlements approved: {cr.fetchone()[0]} reserved delivery moves")
    return cycle.id


# ----------------------------------------------------------------------------------
# Server phases
# ----------------------------------------------------------------------------------
class MemorySampler(threading.Thread):
    """Samples the peak resident memory (VmHWM) of a server's worker processes (the
    children of its master: HTTP workers, cron worker, gevent) until stopped."""

    def __init__(self, master_pid, interval=0.25):
        super().__init__(daemon=True)
        self.master_pid = master_pid
        self.interval = interval
        self.peak_kb = {}
        self._stop_event = threading.Event()

    def _children(self):
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields_ = fh.read().rsplit(")", 1)[1].split()
                if int(fields_[1]) == self.master_pid:
                    pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
        return pids

    def sample(self):
        for pid in self._children():
            try:
                with open(f"/proc/{pid}/status") as fh:
                    for line in fh:
                        if line.startswith("VmHWM:"):
                            self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), int(line.split()[1]))
            except OSError:
                continue

    def run(self):
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self):
        self.sample()
        self._stop_event.set()
        self.join()
        return max(self.peak_kb.values(), default=0) / 1024


def device_clients(url, db, devices):
    """The agents' devices: one XML-RPC client each, logged in with its API key."""
    clients = []
    for device in devices:
        clients.append(Client(url, db, device["login"], device["key"]))
        if clients[-1].uid != device["uid"]:
            raise RuntimeError(f"{device['login']} could not log in with its API key")
    return clients


def run_concurrently(requests, send):
    """Send ``requests`` from CLIENTS threads, in order. :return: (seconds, latencies, results)"""
    latencies = [0.0] * len(requests)
    results = [None] * len(requests)

    def one(i):
        t0 = time.perf_counter()
        try:
            results[i] = ("ok", send(requests[i]))
        except xmlrpc.client.Fault as fault:
            results[i] = ("fault", fault.faultString)
        latencies[i] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        list(pool.map(one, range(len(requests))))
    return time.perf_counter() - t0, latencies, results


def redemption_plan(env, world, cycle_ids, count, taken, seed):
    """``count`` redemption requests over the approved entitlements of ``cycle_ids``
    (cash and in-kind alike), none of ``taken`` (entitlement keys already used, updated):
    [(device index, code, quantity, point id, reference, kind)], kind being ``full``,
    ``partial`` or ``contended`` (two requests in a row, two devices of the point, 60 % each)."""
    rng = random.Random(seed)
    rows = []
    for table, figure in (("g2p_entitlement", "initial_amount"), ("g2p_entitlement_inkind", "quantity")):
        env.cr.execute(
            f"SELECT '{table}', id, code, service_point_id, {figure} FROM {table} "
            "WHERE cycle_id = ANY(%s) AND state = 'approved' AND service_point_id IS NOT NULL ORDER BY id",
            [list(cycle_ids)],
        )
        rows += [r for r in env.cr.fetchall() if (r[0], r[1]) not in taken]
    rng.shuffle(rows)
    devices_of = {}
    for index, device in enumerate(world["devices"]):
        devices_of.setdefault(device["point"], []).append(index)
    plan = []
    for table, eid, code, point, total in rows:
        if len(plan) >= count:
            break
        taken.add((table, eid))
        devices = devices_of[point]
        draw = rng.random()
        ref = f"B{seed}-{'C' if table == 'g2p_entitlement' else 'K'}{eid}"
        digits = 2 if table == "g2p_entitlement" else 3
        if draw < CONTENDED_SHARE and len(devices) > 1:
            quantity = round(total * 0.6, digits)
            plan.append((devices[0], code, quantity, point, ref + "-a", "contended"))
            plan.append((devices[1], code, quantity, point, ref + "-b", "contended"))
        elif draw < CONTENDED_SHARE + PARTIAL_SHARE:
            plan.append((rng.choice(devices), code, round(total / 2, digits), point, ref, "partial"))
        else:
            plan.append((rng.choice(devices), code, total, point, ref, "full"))
    return plan


def over_balance_count(env, cycle_ids):
    """Entitlements of ``cycle_ids`` whose redeemed figure is above what they are for, or
    differs from the sum of their transactions (SQL, after the run)."""
    env.cr.execute(
        """SELECT count(*) FROM g2p_entitlement e
            WHERE e.cycle_id = ANY(%(c)s)
              AND (e.amount_redeemed > e.initial_amount + 0.001
                   OR abs(e.amount_redeemed - COALESCE((SELECT sum(t.net_amount) FROM spp_entitlement_transaction t
                                                         WHERE t.entitlement_id = e.id), 0)) > 0.001)""",
        {"c": list(cycle_ids)},
    )
    cash = env.cr.fetchone()[0]
    env.cr.execute(
        """SELECT count(*) FROM g2p_entitlement_inkind e
            WHERE e.cycle_id = ANY(%(c)s)
              AND (e.quantity_redeemed > e.quantity + 0.0001
                   OR abs(e.quantity_redeemed - COALESCE((SELECT sum(t.net_quantity)
                                                           FROM spp_entitlement_transaction t
                                                           WHERE t.inkind_entitlement_id = e.id), 0)) > 0.0001)""",
        {"c": list(cycle_ids)},
    )
    return cash + env.cr.fetchone()[0]


def bench_redemption(
    server, registry, env_factory, size, world, cycle_ids, count, taken, table, informative=False
):
    workers = server.workers
    devices = device_clients(server.url, server.db, world["devices"])
    # warm up: each device once on each worker (a key is checked once per worker, then cached)
    warm = [(i % CLIENTS, world["devices"][i % CLIENTS]["point"]) for i in range(CLIENTS * workers * 2)]
    run_concurrently(
        warm,
        lambda r: devices[r[0]].call(
            "spp.service.point", "search_read", [("id", "=", r[1])], fields=["name"]
        ),
    )

    trivial = [(i % CLIENTS, world["devices"][i % CLIENTS]["point"]) for i in range(count)]
    trivial_seconds, trivial_latencies, trivial_results = run_concurrently(
        trivial,
        lambda r: devices[r[0]].call(
            "spp.service.point", "search_read", [("id", "=", r[1])], fields=["name"]
        ),
    )
    trivial_rate = count / trivial_seconds
    bad_trivial = sum(1 for r in trivial_results if r[0] != "ok")

    with registry.cursor() as cr:
        plan = redemption_plan(env_factory(cr), world, cycle_ids, count, taken, seed=workers)
    seconds, latencies, results = run_concurrently(
        plan,
        lambda r: devices[r[0]].call("spp.entitlement.transaction", "redeem", r[1], r[2], r[3], r[4]),
    )
    rate = len(plan) / seconds
    p95 = percentile(latencies, 0.95) * 1000
    # contended pairs: exactly one of the two is refused [over_balance]; nothing else fails
    unexpected = []
    contended_ok = 0
    i = 0
    while i < len(plan):
        if plan[i][5] == "contended":
            pair = [results[i], results[i + 1]]
            refused = [r for r in pair if r[0] == "fault"]
            if len(refused) == 1 and "[over_balance]" in refused[0][1]:
                contended_ok += 1
            else:
                unexpected += [r[1] for r in pair if r[0] == "fault"] or ["both contended requests succeeded"]
            i += 2
            continue
        if results[i][0] != "ok":
            unexpected.append(results[i][1])
        i += 1
    with registry.cursor() as cr:
        over = over_balance_count(env_factory(cr), cycle_ids)
    pairs = sum(1 for r in plan if r[5] == "contended") // 2
    note = (
        f"{rate / trivial_rate:.2f}x trivial search_read ({trivial_rate:,.0f}/s, p95 "
        f"{percentile(trivial_latencies, 0.95) * 1000:.0f} ms); p95 {p95:.0f} ms; over balance: {over}; "
        f"{contended_ok}/{pairs} contended pairs refused once"
    )
    if unexpected or bad_trivial:
        note += f"; {len(unexpected) + bad_trivial} unexpected errors, e.g. {(unexpected or ['trivial'])[0][-160:]!r}"
    met = (
        rate >= 100
        and p95 < 150
        and rate / trivial_rate >= 0.6
        and over == 0
        and not unexpected
        and not bad_trivial
        and contended_ok == pairs
    )
    table.add(
        f"redemption API ({CLIENTS} clients, {workers} worker{'s' if workers > 1 else ''}"
        f"{', server without --db-filter' if not server.db_filter else ''})",
        len(plan),
        seconds,
        note,
        "(for comparison)" if informative else ">= 100/s, p95 < 150 ms, >= 0.6x trivial, none over balance",
        met if workers == 2 and not informative else None,
    )
    return plan


def admin_proxy(server):
    return Client(server.url, server.db, "admin", "admin")


def bench_posting(server, registry, env_factory, inkind_cycle_id, table):
    admin = admin_proxy(server)
    with registry.cursor() as cr:
        cr.execute(
            "SELECT count(*) FROM spp_entitlement_transaction t JOIN g2p_entitlement_inkind e "
            "ON e.id = t.inkind_entitlement_id WHERE e.cycle_id = %s",
            [inkind_cycle_id],
        )
        redemptions = cr.fetchone()[0]
    _result, seconds = timed(admin, "g2p.cycle", "action_post_deliveries", [inkind_cycle_id])
    table.add("posting in-kind deliveries to stock", redemptions, seconds, "(size: redemptions posted)")


def bench_closing(server, registry, env_factory, cycles, size, table):
    """The cycles' end date passes; the scheduled action closes them through the cron
    worker, in committed batches. Timed from the trigger to the cycle's ``ended``."""
    admin = admin_proxy(server)
    cron = admin(
        "ir.model.data",
        "search_read",
        [("module", "=", "spp_auto_update_entitlements"), ("name", "=", "ir_cron_close_ended_cycles")],
        fields=["res_id"],
    )[0]["res_id"]
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    for label, cycle_id, model in cycles:
        with registry.cursor() as cr:
            cr.execute(
                f"SELECT count(*) FROM {model} WHERE cycle_id = %s AND state IN ('approved', 'transferred')",
                [cycle_id],
            )
            open_count = cr.fetchone()[0]
        admin("g2p.cycle", "write", [cycle_id], {"end_date": yesterday})
        t0 = time.perf_counter()
        # the first batch runs in this request, the next ones in the cron worker (which may
        # still hold the cron's row for a moment after closing the previous cycle)
        for attempt in range(100):
            try:
                admin("ir.cron", "method_direct_trigger", [cron])
                break
            except xmlrpc.client.Fault as fault:
                if "currently being executed" not in fault.faultString or attempt == 99:
                    raise
                time.sleep(0.2)
        state = None
        while time.perf_counter() - t0 < 1800:
            with registry.cursor() as cr:
                cr.execute("SELECT state FROM g2p_cycle WHERE id = %s", [cycle_id])
                state = cr.fetchone()[0]
            if state == "ended":
                break
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        if state != "ended":
            raise RuntimeError(f"cycle {cycle_id} not closed after {seconds:.0f} s; see {server.log_path}")
        table.add(
            f"closing ({label})",
            open_count,
            seconds,
            f"{open_count:,} open entitlements of {size:,} beneficiaries",
            "100,000 < 15 s",
            seconds < 15 * open_count / 100_000 if open_count else None,
        )


def bench_server(db, registry, env_factory, size, world, cycles, args, table, memory):
    """Redemption (each worker count), posting and closing (last worker count) on real servers."""
    worker_counts = [int(w) for w in args.workers.split(",")]
    taken = set()
    cycle_ids = [c[1] for c in cycles]
    inkind = [c[1] for c in cycles if c[2] == "g2p_entitlement_inkind"]
    out = Path(args.out).parent

    def redeem(server, informative=False):
        bench_redemption(
            server,
            registry,
            env_factory,
            size,
            world,
            cycle_ids,
            args.redemptions,
            taken,
            table,
            informative=informative,
        )

    if "redemption" in args.phases:
        # For comparison: the same calls against a server started with --database only
        # (no --db-filter), where Odoo does not list the databases on every call.
        workers = worker_counts[-1]
        server = OdooServer(
            db, workers=workers, log_path=out / f"server-{db}-{workers}w-nofilter.log", db_filter=False
        )
        server.start(timeout=180)
        try:
            redeem(server, informative=True)
        finally:
            server.stop()
    for n, workers in enumerate(worker_counts):
        last = n == len(worker_counts) - 1
        server = OdooServer(db, workers=workers, log_path=out / f"server-{db}-{workers}w.log", db_filter=True)
        server.start(timeout=180)
        sampler = MemorySampler(server.proc.pid)
        sampler.start()
        try:
            if "redemption" in args.phases:
                redeem(server)
                if last and inkind:
                    bench_posting(server, registry, env_factory, inkind[0], table)
            if last and "closing" in args.phases:
                bench_closing(server, registry, env_factory, cycles, size, table)
        finally:
            peak = sampler.stop()
            server.stop()
        memory[(size, workers)] = peak
        say(f"  peak memory of a worker ({workers} workers): {peak:.0f} MB")


# ----------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------
def bench_size(odoo, db, size, args, table, memory):
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    def env_factory(cr):
        return api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})

    say(f"size {size}: fresh database {db}")
    install(db, ADDONS)
    odoo.tools.config["db_name"] = db
    registry = odoo.modules.registry.Registry(db)
    cycles = []
    with registry.cursor() as cr:
        env = env_factory(cr)
        env["ir.config_parameter"].set_param("g2p_programs_ext.async_threshold", str(10**9))
        world = make_world(env, size)
        cr.commit()
        t0 = time.time()
        make_registry(env, size, world["points"], world["areas"])
        say(f"  registry of {size} households built in {time.time() - t0:.0f} s (setup, not measured)")
        if "cash" in args.phases:
            cycles.append(("cash", bench_cash(env, size, world, table), "g2p_entitlement"))
        if "inkind" in args.phases:
            cycles.append(
                (
                    "in-kind, stock",
                    bench_inkind(registry, env_factory, env, size, world, table),
                    "g2p_entitlement_inkind",
                )
            )
    in_process = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    say(f"  peak memory of the benchmark process (in-process phases): {in_process:.0f} MB")
    (Path(args.out).parent / f"world-{db}.json").write_text(
        json.dumps({"world": world, "cycles": cycles}, indent=2)
    )
    if cycles and ({"redemption", "closing"} & set(args.phases)):
        bench_server(db, registry, env_factory, size, world, cycles, args, table, memory)
        worker_counts = [int(w) for w in args.workers.split(",")]
        smallest = min(s for s, _w in memory)
        for workers in worker_counts:
            peak = memory[(size, workers)]
            first = memory.get((smallest, workers))
            growth = peak / first if first else 1.0
            ratio = f"{peak:,.0f} MB"
            if first and smallest != size:
                ratio += f"; {growth:.2f}x the {smallest:,} figure ({first:,.0f} MB)"
            last = workers == worker_counts[-1]
            table.add(
                f"peak memory of a server worker ({workers} worker{'s' if workers > 1 else ''})",
                size,
                None,
                ratio,
                "< 600 MB, at 100,000 < 1.2x the 10,000 figure" if last else "",
                peak < 600 and growth < 1.2 if last else None,
                per_second="",
            )


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    pg = subprocess.run(
        ["psql", "-d", "postgres", "-Atc", "SHOW server_version"], capture_output=True, text=True
    )
    return (
        f"{os.cpu_count()} cores ({model or platform.machine()}), {memory:.0f} GiB RAM, "
        f"Python {platform.python_version()}, PostgreSQL {pg.stdout.strip() or '?'}, "
        f"load average {os.getloadavg()[0]:.1f} at the start"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="households, comma-separated")
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, among {', '.join(PHASES)}")
    ap.add_argument(
        "--workers", default="1,2", help="server workers for the redemption phase; closing uses the last"
    )
    ap.add_argument("--redemptions", type=int, default=2000, help="redemption requests per worker count")
    ap.add_argument("--db", default="g2p_bench")
    ap.add_argument("--keep-db", action="store_true", help="keep the databases (default: dropped at the end)")
    ap.add_argument("--out", default=str(REPO / "bench-output" / "RESULTS.md"))
    ap.add_argument("--profile", action="store_true", help="profile the in-process phases (cProfile)")
    args = ap.parse_args()
    global PROFILE_DIR
    PROFILE_DIR = Path(args.out).parent if args.profile else None
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        ap.error(f"unknown phases {sorted(unknown)}: choose among {', '.join(PHASES)}")
    if {"redemption", "closing"} & set(args.phases) and not {"cash", "inkind"} & set(args.phases):
        args.phases += ["cash", "inkind"]  # the server phases need entitlements
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    about = machine()
    table = Table()
    memory = {}
    odoo = odoo_env(args.db)
    dbs = []
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            db = f"{args.db}_{size}"
            dbs.append(db)
            bench_size(odoo, db, size, args, table, memory)
    finally:
        odoo.sql_db.close_all()
        if not args.keep_db:
            for db in dbs:
                subprocess.run(["dropdb", "--if-exists", "--force", db], check=False)
    text = (
        f"# Benchmark\n\nMachine: {about}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"run took {(time.time() - started) / 60:.0f} min.\n\n{table.markdown()}\n"
    )
    Path(args.out).write_text(text)
    print(text)
    return 0 if all(r["met"] != "NO" for r in table.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
