"""Where one ``redeem`` call's time goes on a real server (not part of the tests).

Sets up an in-kind distribution over XML-RPC in a database that has the five addons
(``tests/scenario.World``: a service point with an agent and a device API key, an
approved cycle), starts a real server (2 HTTP workers, ``--database`` without
``--db-filter``, as the benchmark does) whose workers profile every request with
cProfile and log every SQL statement (``odoo.sql_db`` at DEBUG), then sends, from one
device, ``--calls`` trivial ``search_read`` calls and ``--calls`` ``redeem`` calls one
after the other (the same client, the agent's API key). It prints the time per call
of each, the statements a redeem issued, and the functions where a redeem spent the
most time beside a trivial call::

    .venv/bin/python setup/profile_redeem.py --db DB [--calls 200] [--no-profile]

``--no-profile`` times the calls without cProfile (its overhead inflates Python time).
The server's log is in ``var/profile/``.
"""

import argparse
import cProfile
import io
import os
import pstats
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "var" / "profile"
sys.path[:0] = [str(REPO / "setup"), str(REPO / "tests")]

from g2p_client import Client  # noqa: E402
from odoo_server import OdooServer  # noqa: E402
from scenario import World  # noqa: E402

import odoo  # noqa: E402
from odoo import http  # noqa: E402


def serve(argv):
    """Run odoo-bin's command line with every HTTP request profiled, per kind of call
    (the XML-RPC method name found in the body), dumped to ``OUT/<kind>.<pid>.prof``."""
    profiles = {}
    original = http.Application.__call__

    def profiled(self, environ, start_response):
        body = b""
        if environ.get("PATH_INFO", "").startswith("/xmlrpc/2/object"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
        match = re.search(rb"<string>(redeem_batch|redeem|search_read|lookup)</string>", body)
        if not match:
            return original(self, environ, start_response)
        kind = match.group(1).decode()
        profile, count = profiles.get(kind) or (cProfile.Profile(), 0)
        profile.enable()
        try:
            result = original(self, environ, start_response)
            # the response is produced lazily by some handlers: consume it while profiling
            result = [b"".join(result)]
        finally:
            profile.disable()
        profiles[kind] = (profile, count + 1)
        profile.dump_stats(OUT / f"{kind}.{os.getpid()}.prof")
        return result

    http.Application.__call__ = profiled
    sys.argv = ["odoo-bin", *argv]
    odoo.cli.main()


def percentile(values, share):
    values = sorted(values)
    return values[min(len(values) - 1, int(share * len(values)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--batch", type=int, default=0, help="then one redeem_batch of this many lines, profiled")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--top", type=int, default=45)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.prof"):
        old.unlink()

    class Server(OdooServer):
        def command(self):
            command = super().command()
            if args.no_profile:
                return command
            # python setup/profile_redeem.py serve <odoo-bin's arguments>
            return [command[0], __file__, "serve", *command[2:], "--log-handler", "odoo.sql_db:DEBUG"]

    server = Server(args.db, workers=2, log_path=OUT / f"{args.db}.server.log").start()
    try:
        world = World(server.url, args.db, households=args.calls + args.batch + 10, items=(("Rice", 10.0),))
        cycle = world.approved_cycle()
        rows = world.entitlements(cycle)
        device = world.device(0)
        point = world.points[0]["id"]
        admin = world.admin
        for row in rows[:5]:  # warm: the device's login, both paths, the caches
            device("lookup", row["code"])
            admin.call("spp.service.point", "search_read", [("id", "=", point)], fields=["name"])
        spec = world.points[0]
        agent = Client(server.url, args.db, spec["login"], spec["key"], uid=spec["agent_id"])

        def trivial():
            return agent.call("spp.service.point", "search_read", [("id", "=", point)], fields=["name"])

        for _i in range(10):
            trivial()
        device("redeem", rows[5]["code"], 1.0, point, f"PROF-WARM-{world.tag}")
        for old in OUT.glob("*.prof"):
            old.unlink()
        timings = {"search_read": [], "redeem": []}
        for number, row in enumerate(rows[6 : 6 + args.calls]):
            t0 = time.perf_counter()
            trivial()
            timings["search_read"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            device("redeem", row["code"], 10.0, point, f"PROF-{world.tag}-{number}")
            timings["redeem"].append(time.perf_counter() - t0)
        load = os.getloadavg()
        for kind, values in timings.items():
            print(
                f"{kind:12s} {len(values)} calls: mean {1000 * sum(values) / len(values):.1f} ms, "
                f"median {1000 * percentile(values, 0.5):.1f} ms, p95 {1000 * percentile(values, 0.95):.1f} ms"
            )
        ratio = sum(timings["search_read"]) / sum(timings["redeem"])
        if args.batch:
            lines = [
                {"code": row["code"], "quantity": 10.0, "reference": f"PROF-B-{world.tag}-{number}"}
                for number, row in enumerate(rows[6 + args.calls : 6 + args.calls + args.batch])
            ]
            t0 = time.perf_counter()
            answers = device("redeem_batch", point, lines)
            seconds = time.perf_counter() - t0
            errors = [a for a in answers if "error" in a]
            print(
                f"redeem_batch {len(lines)} lines: {seconds:.2f} s, {len(lines) / seconds:.0f} lines/s "
                f"({len(lines) / seconds / (len(timings['redeem']) / sum(timings['redeem'])):.1f}x single "
                f"redeem calls); {len(errors)} refused"
            )
        print(f"redeem rate / trivial rate: {ratio:.2f}x (one client, alternating); load average {load}")
        if args.no_profile:
            return
        # one call of each alone, with the statements it issued
        for kind, call in (
            ("search_read", trivial),
            ("redeem", lambda: device("redeem", rows[-1]["code"], 1.0, point, f"PROF-LAST-{world.tag}")),
        ):
            time.sleep(0.5)
            before = server.log_path.stat().st_size
            call()
            time.sleep(0.5)
            log = server.log_path.read_bytes()[before:].decode(errors="replace")
            queries = [
                line.split("odoo.sql_db: ", 1)[1] for line in log.splitlines() if "odoo.sql_db: " in line
            ]
            print(f"\n=== statements of one {kind} ({len(queries)}) ===")
            for query in queries:
                print("  " + query[:400])
        for kind in ("search_read", "redeem", "redeem_batch"):
            files = sorted(OUT.glob(f"{kind}.*.prof"))
            if not files:
                continue
            stats = pstats.Stats(*map(str, files))
            print(f"\n=== {kind}: cumulative ===")
            stats.sort_stats("cumulative").print_stats(args.top)
            print(f"\n=== {kind}: own time ===")
            stats.sort_stats("tottime").print_stats(25)
    finally:
        server.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2:])
    else:
        main()
