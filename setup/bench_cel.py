#!/usr/bin/env python3
"""Benchmark of CEL in SQL (issue 23): enrollment, the eligible count and cash
generation with the demo's rule and formulas, each against a raw SQL statement writing
the same rows, measured in the same run (the raw one rolled back).

Reuses bench.py's setup (a fresh database with the five addons, a seeded registry
written with COPY: 1 to 10 members per household, ages 0 to 80, 5 % with a disability).

- enrollment: ``enroll_eligible_registrants`` (synchronous: one INSERT ... SELECT)
  against ``INSERT INTO g2p_program_membership ... SELECT`` of the same households;
- eligible count: the program form's count (``eligible_preview_count``), at any size;
- enrollment run again on the enrolled program (nothing to change), against the first run;
- cash generation with the demo's formulas (30.0 + 10.0 per child under 5 + 5.0 per
  member aged 60+, capped at 100; the counts read from the household summary) against
  ``INSERT INTO g2p_entitlement ... SELECT`` of the same rows; the same statement with
  the counts by the grouped pass over the members (context ``cel_grouped_pass``; rolled
  back) against the same raw INSERT; and the previous path (values computed per batch of
  5,000, then one bulk INSERT per batch; rolled back) against it;
- with ``--per-beneficiary``: the same enrollment evaluated per beneficiary (official
  runtime), for comparison.

Usage: .venv/bin/python setup/bench_cel.py [--sizes 100000] [--db g2p_bench_cel] [--keep-db]
       [--per-beneficiary] [--reuse] [--count-only] [--skip-generation] [--no-grouped]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))

import bench  # noqa: E402
from odoo_server import ADDONS  # noqa: E402

RULE = "members.exists(m, m.age < 5 || m.age >= 60) || members.exists(m, m.is_pregnant || m.has_disability)"
FORMULAS = [
    {"amount": 30.0},
    {"formula": "10.0 * double(size(members.filter(m, m.age < 5)))"},
    {"formula": "5.0 * double(size(members.filter(m, m.age >= 60)))"},
]


def load():
    return os.getloadavg()


def bench_cel_size(odoo, db, size, args, table):
    """Build (or reuse) the registry of ``size`` households and measure the phases."""
    if not args.reuse:
        bench.install(db, ADDONS)
    registry = odoo.modules.registry.Registry(db)
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        if not args.reuse:
            world = bench.make_world(env, size)
            cr.commit()
            bench.make_registry(env, size, world["points"], world["areas"])
        env["ir.config_parameter"].set_param("g2p_programs_ext.async_threshold", str(10**9))
        cr.execute("ANALYZE")
        program = env["g2p.program"].create(
            {"name": "Bench CEL %s" % size, "target_type": "group", "eligibility_expression": RULE}
        )
        cr.commit()

        # eligible count (the program form's), in SQL: the grouped pass over the members
        # (the previous path, forced by the context) and the household summary, in turn
        program.invalidate_recordset()
        grouped = program.with_context(cel_grouped_pass=True)
        t0 = time.perf_counter()
        grouped_count = grouped._eligibility_counts(sql_only=True)[0]
        grouped_seconds = time.perf_counter() - t0
        program.invalidate_recordset()
        t0 = time.perf_counter()
        count = program.eligible_preview_count
        seconds = time.perf_counter() - t0
        table.add("eligible count (grouped pass over members)", size, grouped_count, grouped_seconds)
        # the summary as it is (the visibility map as the writes above left it), then after
        # the registry's VACUUM (the daily cron's, or autovacuum's where it is on)
        program.invalidate_recordset()
        t0 = time.perf_counter()
        unvacuumed = program.eligible_preview_count
        table.add(
            "eligible count (household summary, before VACUUM)", size, unvacuumed, time.perf_counter() - t0
        )
        cr.commit()
        _count, vacuum_seconds = bench.timed(env["g2p.household.member.facts"]._cron_vacuum)
        table.add("VACUUM (ANALYZE) of the registry (daily cron)", size, "", vacuum_seconds)
        table.add(
            "eligible count (form, household summary)",
            size,
            count,
            seconds,
            f"{seconds / grouped_seconds:.2f}x the grouped pass"
            + ("" if count == grouped_count else " DIFFERENT"),
            "< 1 s at 1,000,000",
            seconds < 1.0 and count == grouped_count,
        )
        bench.say("expression evaluated: %s" % program.eligibility_path)

        if args.count_only:
            return

        # raw INSERT ... SELECT of the same memberships, rolled back
        eligible = program._eligible_ids(program._candidate_ids())
        cr.execute("SAVEPOINT raw")
        t0 = time.perf_counter()
        cr.execute(
            """INSERT INTO g2p_program_membership (program_id, company_id, partner_id, state, enrollment_date,
                                                   create_uid, write_uid, create_date, write_date)
               SELECT %s, %s, pid, 'enrolled', current_date, 1, 1, now(), now() FROM unnest(%s::int[]) pid""",
            [program.id, program.company_id.id, eligible],
        )
        raw = time.perf_counter() - t0
        cr.execute("ROLLBACK TO SAVEPOINT raw")

        if not args.no_grouped:
            # the previous path (grouped pass over the members), rolled back
            cr.execute("SAVEPOINT grouped")
            grouped_enrolled, grouped_seconds = bench.timed(grouped.enroll_eligible_registrants)
            cr.execute("ROLLBACK TO SAVEPOINT grouped")
            env.invalidate_all()
            cr.execute("ANALYZE g2p_program_membership")
            table.add(
                "enrollment (demo rule, grouped pass; rolled back)",
                size,
                grouped_enrolled,
                grouped_seconds,
                f"{grouped_seconds / raw:.2f}x raw INSERT ({raw:.2f} s)",
            )
        enrolled, seconds = bench.timed(program.enroll_eligible_registrants)
        cr.commit()
        ratio = seconds / raw if raw else 0
        table.add(
            "enrollment (demo rule, household summary)",
            size,
            enrolled,
            seconds,
            f"{ratio:.2f}x raw INSERT ({raw:.2f} s)",
            "<= 1.5x raw" + (", < 120 s" if size >= 1000000 else ""),
            ratio <= 1.5 and (size < 1000000 or seconds < 120),
        )
        # a second run on the enrolled program: nothing changes, every row is checked again
        again, seconds_again = bench.timed(program.enroll_eligible_registrants)
        cr.commit()
        table.add(
            "enrollment again (nothing to change)",
            size,
            again,
            seconds_again,
            f"{seconds_again / seconds:.2f}x the first run",
            "<= 1.5x the first run",
            again == 0 and seconds_again <= 1.5 * seconds,
        )
        if args.skip_generation:
            return
        if args.per_beneficiary:
            other = env["g2p.program"].create(
                {"name": "Bench CEL per beneficiary", "target_type": "group", "eligibility_expression": RULE}
            )
            n, seconds = bench.timed(other.with_context(cel_per_beneficiary=True).enroll_eligible_registrants)
            cr.rollback()
            table.add("enrollment (demo rule, per beneficiary)", size, n, seconds, "official runtime")

        env["g2p.program.entitlement.manager.cash"].create(
            {"program_id": program.id, "max_amount": 100.0, "item_ids": [(0, 0, vals) for vals in FORMULAS]}
        )
        cycle_id, seconds = bench.timed(program.create_new_cycle)
        cycle = env["g2p.cycle"].browse(cycle_id)
        cr.commit()
        cr.execute("SAVEPOINT raw")
        t0 = time.perf_counter()
        cr.execute(
            """INSERT INTO g2p_entitlement (cycle_id, partner_id, initial_amount, amount_redeemed, balance,
                                            state, program_id, company_id, currency_id, valid_from, valid_until,
                                            service_point_id, area_id, transfer_fee,
                                            create_uid, write_uid, create_date, write_date)
               SELECT cm.cycle_id, cm.partner_id, 30.0, 0, 30.0, 'draft', %s, %s, %s, %s, %s, p.service_point_id,
                      p.area_id, 0, 1, 1, now(), now()
               FROM g2p_cycle_membership cm JOIN res_partner p ON p.id = cm.partner_id WHERE cm.cycle_id = %s""",
            [
                program.id,
                program.company_id.id,
                program.currency_id.id,
                cycle.start_date,
                cycle.end_date,
                cycle.id,
            ],
        )
        raw = time.perf_counter() - t0
        cr.execute("ROLLBACK TO SAVEPOINT raw")
        # the previous path (values per batch of 5,000, then a bulk INSERT), rolled back
        cr.execute("SAVEPOINT batched")
        batched_cycle = cycle.with_context(entitlement_generation_batched=True)
        batched, batched_seconds = bench.timed(batched_cycle.prepare_entitlement)
        cr.execute("ROLLBACK TO SAVEPOINT batched")
        env.invalidate_all()
        # the same statement with every count over the members by the grouped pass (the
        # path before the summary kept the birthdates), rolled back
        cr.execute("SAVEPOINT grouped_generation")
        grouped_cycle = cycle.with_context(cel_grouped_pass=True)
        grouped_created, grouped_gen_seconds = bench.timed(grouped_cycle.prepare_entitlement)
        cr.execute("ROLLBACK TO SAVEPOINT grouped_generation")
        env.invalidate_all()
        created, seconds = bench.timed(cycle.prepare_entitlement)
        cr.commit()
        table.add(
            "cash generation (previous path: batches, bulk INSERT)",
            size,
            batched,
            batched_seconds,
            f"{batched_seconds / seconds:.2f}x the one-statement path",
        )
        table.add(
            "cash generation (demo formulas, SQL, grouped pass; rolled back)",
            size,
            grouped_created,
            grouped_gen_seconds,
            f"{grouped_gen_seconds / raw:.2f}x raw INSERT ({raw:.2f} s)",
        )
        ratio = seconds / raw if raw else 0
        table.add(
            "cash generation (demo formulas, SQL, household summary)",
            size,
            created,
            seconds,
            f"{ratio:.2f}x raw INSERT ({raw:.2f} s)" + ("" if created == grouped_created else " DIFFERENT"),
            "<= 1.5x raw",
            ratio <= 1.5,
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--db", default="g2p_bench_cel")
    ap.add_argument("--keep-db", action="store_true")
    ap.add_argument(
        "--reuse", action="store_true", help="the database and its registry exist (--keep-db before)"
    )
    ap.add_argument("--per-beneficiary", action="store_true")
    ap.add_argument(
        "--count-only", action="store_true", help="only the eligible count (e.g. at 1,000,000 households)"
    )
    ap.add_argument("--skip-generation", action="store_true", help="stop after the enrollments")
    ap.add_argument(
        "--no-grouped", action="store_true", help="no enrollment by the grouped pass (rolled back)"
    )
    args = ap.parse_args()
    odoo = bench.odoo_env(args.db)
    table = bench.Table()
    bench.say("load before: %.2f %.2f %.2f" % load())
    for size in [int(s) for s in args.sizes.split(",")]:
        bench_cel_size(odoo, args.db, size, args, table)
    bench.say("load after: %.2f %.2f %.2f" % load())
    print(table.markdown())
    if not args.keep_db:
        subprocess.run(["dropdb", "--if-exists", "--force", args.db], check=False)


if __name__ == "__main__":
    main()
