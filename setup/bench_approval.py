#!/usr/bin/env python3
"""In-kind approval and closing, two checkouts of the suite back to back (not part of the tests).

Issue 22 asks for the in-kind approval and the closing to be no slower after the
allocation record than before, measured in the same run. For each checkout (``--old``,
``--new``: paths of git worktrees with their ``setup/setup.sh`` run) this builds once a
database with that checkout's addons and the benchmark's registry (``setup/bench.py``:
its world, its households), an in-kind program (rice, 2.5 kg per member, at most 5,
stock managed) whose cycle is approved with its entitlements pending; then, repetition
after repetition, alternately for each checkout (A B A B ...), it copies that database
(``createdb -T``) and, in a fresh process running that checkout's code, times:

- ``approval``: ``g2p.cycle.validate_entitlement()`` (stock check, reservation, ERNs), as
  the superuser with the async threshold raised, as ``setup/bench.py`` does;
- ``closing``: the cycle's end date moved to yesterday, the scheduled action's method
  ``_cron_close_ended_cycles()`` called and committed until the cycle is ``ended`` (the
  work of the cron worker, without its wake-ups).

It prints each figure and the medians, with the load average before and after. With
``--profile`` the timed calls of the first repetition run under cProfile (the figures of
that repetition are then not comparable and left out of the medians).

Usage: .venv/bin/python setup/bench_approval.py --old /work/wt/x-old --new . [--size 10000] [--reps 5]
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent


def say(message):
    print(f"[ab] {message}", flush=True)


def odoo_for(repo, db):
    src = (Path(repo) / ".odoo-src-path").read_text().strip()
    sys.path.insert(0, src)
    import odoo  # noqa: PLC0415

    odoo.tools.config.parse_config(["-c", str(Path(repo) / "odoo.conf"), "-d", db, "--log-level=warn"])
    return odoo


def prepare(repo, db, size):
    """The template database of ``repo``: addons, registry, an in-kind cycle approved."""
    sys.path.insert(0, str(HERE))
    import bench_inprocess as bench  # noqa: PLC0415 - the previous benchmark's world and registry
    from odoo_server import ADDONS  # noqa: PLC0415

    subprocess.run(["dropdb", "--if-exists", "--force", db], check=True)
    src = (Path(repo) / ".odoo-src-path").read_text().strip()
    subprocess.run(
        [sys.executable, os.path.join(src, "odoo-bin"), "-c", str(Path(repo) / "odoo.conf"), "-d", db]
        + ["-i", ",".join(ADDONS), "--stop-after-init", "--workers=0", "--max-cron-threads=0"]
        + ["--log-level=warn", "--without-demo=all"],
        check=True,
    )
    odoo = odoo_for(repo, db)
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    registry = odoo.modules.registry.Registry(db)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        env["ir.config_parameter"].set_param("g2p_programs_ext.async_threshold", str(10**9))
        world = bench.make_world(env, size)
        cr.commit()
        bench.make_registry(env, size, world["points"], world["areas"])
        program = new_program(env, f"A/B in-kind {size}", world)
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
        cycle.prepare_entitlement()
        stock_in(env, world, cycle)
        cycle.to_approve()
        cycle.approve()
        cr.commit()
        return cycle.id


def new_program(env, name, world):
    """A program of every household whose first cycle started 29 days ago (the closing
    moves its end date to yesterday, as if the days had passed)."""
    return env["g2p.program"].create(
        {
            "name": name,
            "target_type": "group",
            "eligibility_domain": "[('household_size', '>=', 1)]",
            "eligibility_expression": "me.household_size >= 1 && (me.household_size < 30 || me.is_group)",
            "start_date": (date.today() - timedelta(days=29)).isoformat(),
        }
    )


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
                "inventory_quantity": math.ceil(need * 1.1),
            }
        )
    quants.action_apply_inventory()


def run(repo, db, cycle_id, profile_dir=None):
    """Time the approval then the closing of ``cycle_id`` in ``db`` with ``repo``'s code."""
    odoo = odoo_for(repo, db)
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    registry = odoo.modules.registry.Registry(db)
    figures = {}
    statements = {}  # with G2P_AB_SQL=1: seconds per statement shape, per phase
    if os.environ.get("G2P_AB_SQL"):
        original = odoo.sql_db.Cursor.execute

        def execute(cr, query, params=None, log_exceptions=True):
            t0 = time.perf_counter()
            try:
                return original(cr, query, params, log_exceptions)
            finally:
                text = query.code if hasattr(query, "code") else str(query)
                key = (figures.get("_phase", "?"), " ".join(text.split())[:90])
                statements[key] = statements.get(key, 0.0) + time.perf_counter() - t0

        odoo.sql_db.Cursor.execute = execute

    def timed(name, function):
        profiler = None
        if profile_dir:
            import cProfile  # noqa: PLC0415

            profiler = cProfile.Profile()
            profiler.enable()
        t0 = time.perf_counter()
        result = function()
        figures[name] = time.perf_counter() - t0
        if profiler:
            import pstats  # noqa: PLC0415

            profiler.disable()
            path = Path(profile_dir) / f"profile-{Path(repo).name}-{name}.txt"
            with path.open("w") as fh:
                pstats.Stats(profiler, stream=fh).sort_stats("cumulative").print_stats(50)
        return result

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        cycle = env["g2p.cycle"].browse(cycle_id)

        def approve():
            approved = cycle.validate_entitlement()
            cr.commit()
            return approved

        figures["_phase"] = "approval"
        figures["approved"] = timed("approval", approve)
        figures["_phase"] = "closing"
        cr.execute(
            "UPDATE g2p_cycle SET end_date = %s WHERE id = %s", [date.today() - timedelta(days=1), cycle_id]
        )
        cr.commit()
        env.invalidate_all()

        def close():
            for _i in range(1000):
                env["g2p.cycle"]._cron_close_ended_cycles()
                cr.commit()
                env.invalidate_all()
                if cycle.state == "ended":
                    return True
            raise RuntimeError("cycle not ended")

        timed("closing", close)
        cr.execute(
            "SELECT count(*) FROM g2p_entitlement_inkind WHERE cycle_id = %s AND state = 'expired'",
            [cycle_id],
        )
        figures["expired"] = cr.fetchone()[0]
    figures.pop("_phase")
    if statements:
        top = sorted(statements.items(), key=lambda kv: -kv[1])[:25]
        figures["statements"] = [[phase, round(seconds, 3), text] for (phase, text), seconds in top]
    return figures


def load():
    return os.getloadavg()[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="checkout before (a git worktree, setup run)")
    ap.add_argument("--new", default=str(HERE.parent), help="checkout after (default: this one)")
    ap.add_argument("--size", type=int, default=10000, help="households")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--db", default="g2p_ab", help="prefix of the databases")
    ap.add_argument("--profile", action="store_true", help="profile the first repetition")
    ap.add_argument("--skip-prepare", action="store_true", help="reuse the template databases")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)  # repo db cycle profile_dir
    args = ap.parse_args()
    if args.worker:
        repo, db, cycle_id, profile_dir = args.worker
        print(json.dumps(run(repo, db, int(cycle_id), profile_dir if profile_dir != "-" else None)))
        return 0
    versions = {"old": args.old, "new": args.new}
    templates, state = {}, Path(HERE.parent / "bench-output" / f"{args.db}-cycles.json")
    state.parent.mkdir(exist_ok=True)
    cycles = json.loads(state.read_text()) if args.skip_prepare and state.exists() else {}
    for name, repo in versions.items():
        templates[name] = f"{args.db}_{name}_{args.size}"
        if not args.skip_prepare:
            say(f"{name}: template database {templates[name]} ({repo})")
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--old",
                    "-",
                    "--prepare-worker",
                    repo,
                    templates[name],
                    str(args.size),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            cycles[name] = int(out.stdout.strip().splitlines()[-1])
    state.write_text(json.dumps(cycles))
    results = {name: [] for name in versions}
    say(f"load average at start: {load():.2f}")
    for rep in range(args.reps):
        for name, repo in versions.items():
            copy = f"{templates[name]}_run"
            subprocess.run(["dropdb", "--if-exists", "--force", copy], check=True)
            subprocess.run(["createdb", "-T", templates[name], copy], check=True)
            profile = str(HERE.parent / "bench-output") if args.profile and rep == 0 else "-"
            out = subprocess.run(
                [sys.executable, __file__, "--old", "-", "--worker", repo, copy, str(cycles[name]), profile],
                check=True,
                capture_output=True,
                text=True,
            )
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            subprocess.run(["dropdb", "--if-exists", "--force", copy], check=True)
            say(
                f"rep {rep + 1} {name}: approval {figures['approval']:.2f} s ({figures['approved']} entitlements), "
                f"closing {figures['closing']:.2f} s ({figures['expired']} expired); load {load():.2f}"
            )
            for phase, seconds, text in figures.get("statements", []):
                say(f"    {name} {phase} {seconds:7.3f} s  {text}")
            if profile == "-":
                results[name].append(figures)
    say(f"load average at end: {load():.2f}")
    for phase in ("approval", "closing"):
        medians = {name: statistics.median(f[phase] for f in results[name]) for name in versions}
        # each repetition's new/old ratio: old and new ran back to back, under about the same load
        paired = statistics.median(
            n[phase] / o[phase] for o, n in zip(results["old"], results["new"], strict=True)
        )
        say(
            f"{phase}: median old {medians['old']:.2f} s, new {medians['new']:.2f} s, "
            f"new/old {medians['new'] / medians['old']:.2f}x, median of the paired ratios {paired:.2f}x "
            f"(old {sorted(round(f[phase], 2) for f in results['old'])}, "
            f"new {sorted(round(f[phase], 2) for f in results['new'])})"
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and "--prepare-worker" in sys.argv:
        i = sys.argv.index("--prepare-worker")
        print(prepare(sys.argv[i + 1], sys.argv[i + 2], int(sys.argv[i + 3])))
        sys.exit(0)
    sys.exit(main())
