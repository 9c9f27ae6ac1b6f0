#!/usr/bin/env python3
"""Registry import: the fast import (``g2p.registry.import``) against Odoo's standard
``load`` on the same rows, in the same run, in-process on a database where the suite is
installed. Everything is rolled back at the end (the database is left as it was).

The registry comes from the demo's generator (``setup/demo_data``): households,
individuals, memberships and the households' areas, in the demo's CSV files. Both imports
run as a program officer; ``load`` is called as ``setup/demo.py`` calls it (batches of
2,000 lines per file).

Usage: .venv/bin/python setup/bench_import.py --db DB [--households 10000]
       [--load-households N (default: the same; 0 skips load)] [--reuse] [--profile]

``--profile`` prints, for the fast import, the statements that took longest (wall time
of each ``cursor.execute`` / ``COPY``, first line of its text) and cProfile's top
functions by cumulative time.
"""

import argparse
import cProfile
import csv
import os
import pstats
import resource
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))

from demo_data import generate, write_csv  # noqa: E402
from demo_data.registry import (  # noqa: E402
    AREAS_FILE,
    GROUPS_FILE,
    HOUSEHOLD_AREAS_FILE,
    INDIVIDUALS_FILE,
    MEMBERSHIPS_FILE,
)

import odoo  # noqa: E402
from odoo import api  # noqa: E402

LOAD_BATCH = 2000
FILES = (GROUPS_FILE, INDIVIDUALS_FILE, MEMBERSHIPS_FILE, AREAS_FILE, HOUSEHOLD_AREAS_FILE)


def read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def first_households(paths, households, out):
    """The demo's files cut to their first ``households`` households (same rows)."""
    out.mkdir(parents=True, exist_ok=True)
    cut = {}
    header, rows = read(paths["groups"])
    keep = {row[0] for row in rows[:households]}
    for key, index in (("groups", 0), ("individuals", None), ("memberships", 1), ("household_areas", 0)):
        header, rows = read(paths[key])
        if key == "individuals":
            rows = [r for r in rows if "demo_hh_" + r[0][len("demo_ind_") : len("demo_ind_") + 6] in keep]
        else:
            rows = [r for r in rows if r[index] in keep]
        cut[key] = out / Path(paths[key]).name
        with open(cut[key], "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    return cut


def backend_cpu(cr):
    """CPU seconds (user + system) used so far by this cursor's PostgreSQL backend (same machine)."""
    cr.execute("SELECT pg_backend_pid()")
    fields = Path(f"/proc/{cr.fetchone()[0]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wal(cr):
    """(WAL bytes, full-page images, times the WAL buffers were full) of the whole server so far."""
    cr.execute("SELECT wal_bytes, wal_fpi, wal_buffers_full FROM pg_stat_wal")
    return cr.fetchone()


def own_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StatementTimer:
    """Wall time of every statement sent through Odoo's cursors (``execute``) and of the
    COPYs of the import's staging tables, summed by the statement's first 110 characters."""

    def __init__(self, explain=False):
        self.totals = {}
        self.explain = explain

    def __enter__(self):
        from odoo import sql_db  # noqa: PLC0415

        self.cursor_class = sql_db.Cursor
        self.original = self.cursor_class.execute
        timer = self
        explain = self.explain

        def execute(cursor, query, params=None, log_exceptions=True):
            text = query.code if hasattr(query, "code") else str(query)
            if explain and text.lstrip().startswith("INSERT") and params is None:
                # the plan of each heavy INSERT (run by EXPLAIN ANALYZE itself), with its
                # buffers, WAL and the time of each foreign-key trigger
                args = query.params if hasattr(query, "params") else None
                started = time.time()
                timer.original(cursor, "EXPLAIN (ANALYZE, BUFFERS, WAL) " + text, args)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                timer.add(text, time.time() - started)
                print(f"[bench-import] {' '.join(text.split())[:100]}\n{plan}", flush=True)
                return None
            started = time.time()
            try:
                return timer.original(cursor, query, params, log_exceptions)
            finally:
                timer.add(text, time.time() - started)

        self.cursor_class.execute = execute
        return self

    def add(self, query, seconds):
        key = " ".join(query.split())[:110]
        count, total = self.totals.get(key, (0, 0.0))
        self.totals[key] = (count + 1, total + seconds)

    def __exit__(self, *exc):
        self.cursor_class.execute = self.original

    def report(self, top=25):
        rows = sorted(self.totals.items(), key=lambda item: -item[1][1])[:top]
        print("[bench-import] statements by wall time (count, seconds, text):", flush=True)
        for key, (count, total) in rows:
            print(f"  {count:6d} {total:8.2f} s  {key}", flush=True)


def count_rows(paths):
    return {key: len(read(paths[key])[1]) for key in ("groups", "individuals", "memberships")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True)
    ap.add_argument("--households", type=int, default=10000)
    ap.add_argument("--load-households", type=int, default=None)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--reuse", action="store_true", help="reuse the CSV files of an earlier run of the same size"
    )
    ap.add_argument(
        "--profile", action="store_true", help="per-statement times and cProfile of the fast import"
    )
    ap.add_argument(
        "--no-cprofile",
        action="store_true",
        help="with --profile: statement times only (cProfile doubles Python's time)",
    )
    ap.add_argument("--explain", action="store_true", help="with --profile: EXPLAIN ANALYZE of each INSERT")
    args = ap.parse_args()
    load_households = args.households if args.load_households is None else args.load_households

    odoo.tools.config.parse_config(["-c", str(REPO / "odoo.conf"), "--log-level=warn"])
    t0 = time.time()
    out = REPO / "var" / "bench-import" / str(args.households)
    names = ("groups", "individuals", "memberships", "areas", "household_areas")
    paths = {key: out / name for key, name in zip(names, FILES, strict=True)}
    if not (args.reuse and all(path.exists() for path in paths.values())):
        paths = write_csv(generate(args.households, seed=args.seed, as_of=date.today()), out)
    counts = count_rows(paths)
    print(f"[bench-import] generated {counts} in {time.time() - t0:.1f} s ({out})", flush=True)

    registry = odoo.registry(args.db)
    with registry.cursor() as cr:
        env = api.Environment(cr, odoo.SUPERUSER_ID, {})
        officer = env["res.users"].create(
            {
                "name": "Bench import officer",
                "login": "bench_import_officer_%d" % time.time(),
                "groups_id": [(6, 0, [env.ref("g2p_programs_ext.group_program_officer").id])],
            }
        )
        header, rows = read(paths["areas"])
        env["spp.area"].load(header, rows)
        env.flush_all()
        cr.execute("SELECT count(*) FROM res_partner")
        print(f"[bench-import] res_partner holds {cr.fetchone()[0]} rows before", flush=True)
        officer_env = api.Environment(cr, officer.id, {"lang": "en_US"})

        # Fast import, then rolled back to the savepoint.
        texts = {key: Path(paths[key]).read_text(encoding="utf-8") for key in paths}
        fast = {}
        with cr.savepoint(flush=False) as savepoint:
            timer, profiler = StatementTimer(explain=args.explain), cProfile.Profile()
            wal0 = wal(cr)
            started, cpu0, pg0 = time.time(), own_cpu(), backend_cpu(cr)
            if args.profile:
                timer.__enter__()
                if not args.no_cprofile:
                    profiler.enable()
            result = officer_env["g2p.registry.import"].import_registry(
                texts["groups"], texts["individuals"], texts["memberships"], texts["household_areas"]
            )
            fast["seconds"] = time.time() - started
            if args.profile:
                profiler.disable()
                timer.__exit__()
                timer.report()
                if not args.no_cprofile:
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
            fast["cpu"], fast["pg"] = own_cpu() - cpu0, backend_cpu(cr) - pg0
            fast["wal"] = [b - a for a, b in zip(wal0, wal(cr), strict=True)]
            if not result["ok"]:
                raise SystemExit(f"fast import refused: {result['errors'][:5]}")
            savepoint.rollback()
        env.invalidate_all()
        fast_rows = sum(counts.values())
        print(
            f"[bench-import] fast import: {args.households} households, {fast_rows} rows in {fast['seconds']:.1f} s "
            f"= {args.households / fast['seconds']:,.0f} households/s, {fast_rows / fast['seconds']:,.0f} rows/s; "
            f"CPU: Odoo {fast['cpu']:.1f} s + PostgreSQL {fast['pg']:.1f} s; "
            f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
            f"WAL (whole server) {fast['wal'][0] / 2**20:,.0f} MB, {fast['wal'][1]:,} full-page images",
            flush=True,
        )
        if load_households:
            subset = (
                paths
                if load_households == args.households
                else first_households(paths, load_households, out / f"first-{load_households}")
            )
            load_counts = count_rows(subset)
            load_rows = sum(load_counts.values())
            with cr.savepoint(flush=False) as savepoint:
                started, cpu0, pg0 = time.time(), own_cpu(), backend_cpu(cr)
                for key, model in (
                    ("groups", "res.partner"),
                    ("individuals", "res.partner"),
                    ("memberships", "g2p.group.membership"),
                    ("household_areas", "res.partner"),
                ):
                    header, rows = read(subset[key])
                    for start in range(0, len(rows), LOAD_BATCH):
                        answer = officer_env[model].load(header, rows[start : start + LOAD_BATCH])
                        errors = [m for m in answer["messages"] if m.get("type") == "error"]
                        if errors:
                            raise SystemExit(f"load refused {key}: {errors[:3]}")
                    officer_env.flush_all()
                load_seconds = time.time() - started
                load_cpu, load_pg = own_cpu() - cpu0, backend_cpu(cr) - pg0
                savepoint.rollback()
            env.invalidate_all()
            fast_rate = fast_rows / fast["seconds"]
            load_rate = load_rows / load_seconds
            print(
                f"[bench-import] standard load: {load_households} households, {load_rows} rows in {load_seconds:.1f} s "
                f"= {load_households / load_seconds:,.1f} households/s, {load_rate:,.0f} rows/s; "
                f"CPU: Odoo {load_cpu:.1f} s + PostgreSQL {load_pg:.1f} s",
                flush=True,
            )
            fast_cpu = (fast["cpu"] + fast["pg"]) / fast_rows
            print(
                f"[bench-import] fast / load (rows/s): {fast_rate / load_rate:.1f}x; "
                f"CPU per row: {((load_cpu + load_pg) / load_rows) / fast_cpu:.1f}x less",
                flush=True,
            )
        cr.rollback()


if __name__ == "__main__":
    main()
