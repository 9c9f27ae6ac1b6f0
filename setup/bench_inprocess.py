"""The in-process setup of the previous benchmark, kept for setup/bench_cel.py (which
imports it through ``bench``): a fresh database with the five addons, places, agents
and a seeded registry written with ``COPY`` (1 to 10 members per household, ages 0 to
80, 5 % with a disability), and a timer. Not the path production takes: the benchmark
itself (setup/bench.py) uses the demo's generator and a real server.
"""

import io
import random
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))

from odoo_server import odoo_bin  # noqa: E402

CLIENTS = 8  # agents' devices
POINTS = 4  # service points; two devices (agents) each
PROFILE_DIR = None  # set by a caller that wants cProfile stats of the timed calls


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
