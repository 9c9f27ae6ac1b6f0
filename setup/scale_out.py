#!/usr/bin/env python3
"""Scaling out: several Odoo servers on one PostgreSQL, one queue_job runner, HAProxy
in front (README, "Scaling out"; tests/test_scale_out.py runs it at a small size).

Each server is its own ``odoo-bin`` process group with its own port, as each host of a
deployment would be. The first one runs the scheduled actions and the one queue_job
runner (``queue_job`` server-wide, as odoo.conf says); the others are started with
``--load=base,web --max-cron-threads=0``: no runner, no cron, but queue_job is
installed in the database, so they serve ``/queue_job/runjob`` like any route. The
runner sends each job as an HTTP request to one address (``ODOO_QUEUE_JOB_HOST`` and
``ODOO_QUEUE_JOB_PORT``, or ``[queue_job] host``/``port`` in odoo.conf): here HAProxy,
which spreads the requests round-robin over every server (and skips one that fails its
``/web/health`` check). Clients (XML-RPC) go through the same HAProxy.

As a script, it measures at 100,000 households (setup not timed, as in setup/bench.py):
the same steps of two programs of the same registry, enrollment, new cycle and cash
generation, run as jobs, the first program's with one server, the second's with two,
each step timed from the call to the end of its last job; then where each job ran and
that every one of them ran once.

Usage: .venv/bin/python setup/scale_out.py [--households 100000] [--servers 1,2]
       [--workers 2] [--batch 5000] [--channels root:2,root.g2p:2] [--db g2p_scaleout]
       [--keep-db] [--out bench-output/SCALE_OUT.md]
"""

import argparse
import importlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import psycopg2
from psycopg2 import sql

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))

from odoo_server import ADDONS, OdooServer, free_port  # noqa: E402

# /usr/sbin is not on a bare PATH (CI may run with env -i)
HAPROXY = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
LOG_DIR = REPO / "var" / "scale-out"
# The suite's job methods (g2p_programs_ext/data/queue_job_data.xml) and their records.
SUITE_JOB_MODELS = ("g2p.program", "g2p.cycle")


def say(message):
    print(f"[scale-out] {message}", flush=True)


# ----------------------------------------------------------------------------------
# HAProxy
# ----------------------------------------------------------------------------------
class LoadBalancer:
    """HAProxy on ``127.0.0.1:port``, round-robin over ``backends`` (localhost ports),
    each checked on Odoo's ``/web/health`` every 2 s (down after 5 failures); started in the foreground in
    its own process group, stopped by ``stop()``."""

    def __init__(self, backends, port=None, name="odoo"):
        if not HAPROXY:
            raise RuntimeError(
                "haproxy is not installed: run `make setup` as root, or apt-get install haproxy"
            )
        self.backends = list(backends)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.config_path = LOG_DIR / f"haproxy-{name}-{self.port}.cfg"
        self.socket_path = LOG_DIR / f"haproxy-{name}-{self.port}.sock"
        self.log_path = LOG_DIR / f"haproxy-{name}-{self.port}.log"
        self.proc = None

    def config(self):
        servers = "\n".join(
            f"    server odoo{n + 1} 127.0.0.1:{port} check inter 2s fall 5 rise 1"
            for n, port in enumerate(self.backends)
        )
        # Jobs and heavy calls run for minutes: long client and server timeouts. The
        # runner closes its side after 1 s (it only starts the job); the server goes on.
        return f"""global
    maxconn 1024
    stats socket {self.socket_path} mode 600 level admin

defaults
    mode http
    timeout connect 5s
    timeout client 30m
    timeout server 30m
    timeout http-request 30s
    # a server whose workers are all busy answers its check late, not never
    timeout check 20s

frontend odoo_in
    bind 127.0.0.1:{self.port}
    default_backend odoo_servers

backend odoo_servers
    balance roundrobin
    option httpchk
    # HTTP/1.1 with a Host header: Odoo reads the host of every request
    http-check send meth GET uri /web/health ver HTTP/1.1 hdr Host localhost
{servers}
"""

    def start(self, timeout=10):
        self.config_path.write_text(self.config())
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(self.config_path)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"haproxy did not listen on {self.port} within {timeout} s")

    def stats(self):
        """{server name: {"requests": total requests sent to it, "status": "UP"/"DOWN"}},
        from HAProxy's stats socket."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.socket_path))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        result = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "odoo_servers" and row.get("svname", "").startswith("odoo"):
                result[row["svname"]] = {"requests": int(row["stot"] or 0), "status": row["status"]}
        return result

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        self.socket_path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------
# The servers
# ----------------------------------------------------------------------------------
class ProcessSampler(threading.Thread):
    """Which process belongs to which server (each server is its own process group),
    and the CPU seconds each process used, sampled until stopped: a job's
    ``worker_pid`` then says which server ran it, even when its worker was recycled."""

    def __init__(self, servers, interval=0.5):
        super().__init__(daemon=True)
        self.servers = servers
        self.interval = interval
        self.owner = {}  # pid -> server index
        self.cpu = {}  # pid -> CPU seconds (user + system), last seen
        self._stop_event = threading.Event()

    def sample(self):
        groups = {server.proc.pid: n for n, server in enumerate(self.servers) if server.proc}
        for proc in psutil.process_iter():
            try:
                n = groups.get(os.getpgid(proc.pid))
                if n is None:
                    continue
                times = proc.cpu_times()
            except (psutil.Error, ProcessLookupError):
                continue
            self.owner[proc.pid] = n
            self.cpu[proc.pid] = times.user + times.system

    def run(self):
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join()
        self.sample()

    def cpu_seconds(self):
        """[CPU seconds used by each server's processes so far]."""
        totals = [0.0] * len(self.servers)
        for pid, seconds in self.cpu.items():
            totals[self.owner[pid]] += seconds
        return totals


class Cluster:
    """``servers`` Odoo servers on ``db`` behind one HAProxy, one queue_job runner (on
    the first server, dispatching through HAProxy). A context manager: leaving it stops
    HAProxy and every server, even on an error. ``url``: HAProxy's, for clients."""

    def __init__(self, db, servers=2, workers=2, channels=None, name="scale-out"):
        self.db = db
        self.lb_port = free_port()
        runner_env = {"ODOO_QUEUE_JOB_HOST": "127.0.0.1", "ODOO_QUEUE_JOB_PORT": str(self.lb_port)}
        if channels:
            runner_env["ODOO_QUEUE_JOB_CHANNELS"] = channels
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.servers = []
        for n in range(servers):
            port = free_port()
            log = LOG_DIR / f"{name}-{db}-server{n + 1}-{port}.log"
            # expect_errors: with jobs running on two servers at once, queue_job's own
            # enqueuing of dependent jobs (its /queue_job/runjob controller) meets
            # serialization failures that it logs at ERROR (seen once in make test); the
            # callers check the outcome themselves: every job done, sent once, tried once.
            if n == 0:
                # host A: HTTP workers, the cron worker and the one job runner
                server = OdooServer(
                    db, workers=workers, port=port, log_path=log, env=runner_env, expect_errors=True
                )
            else:
                # hosts B, C, ...: HTTP workers only
                server = OdooServer(
                    db,
                    workers=workers,
                    port=port,
                    log_path=log,
                    max_cron_threads=0,
                    load="base,web",
                    expect_errors=True,
                )
            self.servers.append(server)
        self.balancer = LoadBalancer([s.port for s in self.servers], port=self.lb_port, name=name)
        self.url = self.balancer.url
        self.sampler = ProcessSampler(self.servers)

    def __enter__(self):
        try:
            errors = []

            def start(server):
                try:
                    server.start(timeout=180)
                except Exception as error:  # reported below, after every start ended
                    errors.append(error)

            threads = [threading.Thread(target=start, args=(s,)) for s in self.servers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if errors:
                raise errors[0]
            self.balancer.start()
            self.sampler.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self):
        if self.sampler.is_alive():
            self.sampler.stop()
        self.balancer.stop()
        for server in self.servers:
            server.stop()

    def runners(self):
        """[queue_job runners that each server's log says were ready for the database]."""
        ready = f"queue job runner ready for db {self.db}"
        return [server.log_path.read_text().count(ready) for server in self.servers]

    def dispatches(self):
        """{job uuid: times the runner asked Odoo to run it} (from the servers' logs)."""
        sent = Counter()
        for server in self.servers:
            sent.update(re.findall(r"asking Odoo to run job (\S+) on db ", server.log_path.read_text()))
        return sent

    def server_of(self, pid):
        """Index of the server whose process ``pid`` is (None: not one of theirs)."""
        return self.sampler.owner.get(pid)


# ----------------------------------------------------------------------------------
# Jobs: where they ran, how often
# ----------------------------------------------------------------------------------
def suite_jobs(db, since_id=0):
    """The suite's queue_job rows of ``db`` with id > ``since_id``, in creation order:
    [{uuid, model, records, method, state, retry, worker_pid, result, started, done}]."""
    with psycopg2.connect(dbname=db) as conn, conn.cursor() as cr:
        cr.execute(
            """SELECT uuid, model_name, records, method_name, state, retry, worker_pid, result,
                      date_started, date_done
               FROM queue_job WHERE id > %s AND model_name IN %s ORDER BY id""",
            [since_id, SUITE_JOB_MODELS],
        )
        keys = (
            "uuid",
            "model",
            "records",
            "method",
            "state",
            "retry",
            "worker_pid",
            "result",
            "started",
            "done",
        )
        return [dict(zip(keys, row, strict=True)) for row in cr.fetchall()]


def last_job_id(db):
    with psycopg2.connect(dbname=db) as conn, conn.cursor() as cr:
        cr.execute("SELECT COALESCE(MAX(id), 0) FROM queue_job")
        return cr.fetchone()[0]


def placement(cluster, jobs):
    """{"per_server": [jobs run by each server], "unknown": jobs whose worker_pid is no
    server's process, "not_done": jobs not done, "retried": jobs tried more than once}."""
    per_server = [0] * len(cluster.servers)
    unknown, not_done, retried = [], [], []
    for job in jobs:
        if job["state"] != "done":
            not_done.append(job)
        if (job["retry"] or 0) != 1:
            retried.append(job)
        n = cluster.server_of(job["worker_pid"])
        if n is None:
            unknown.append(job)
        else:
            per_server[n] += 1
    return {"per_server": per_server, "unknown": unknown, "not_done": not_done, "retried": retried}


# ----------------------------------------------------------------------------------
# The measurement (100,000 households)
# ----------------------------------------------------------------------------------
def run_program(cluster, db, program_id, officer_login, password):
    """Enrollment, new cycle and cash generation of ``program_id`` through ``cluster``,
    as the officer. :return: {step: seconds}, cycle id."""
    demo = importlib.import_module("demo")
    officer = demo.Client(cluster.url, db, officer_login, password)
    times = {}
    t0 = time.time()
    officer.call("g2p.program", "enroll_eligible_registrants", [program_id])
    officer.wait_unlocked("g2p.program", program_id)
    times["enrollment"] = time.time() - t0
    t0 = time.time()
    cycle_id = officer.call("g2p.program", "create_new_cycle", [program_id])
    officer.wait_unlocked("g2p.cycle", cycle_id)
    times["new cycle"] = time.time() - t0
    t0 = time.time()
    officer.call("g2p.cycle", "prepare_entitlement", [cycle_id])
    officer.wait_unlocked("g2p.cycle", cycle_id)
    times["cash generation"] = time.time() - t0
    return times, cycle_id


def counts(db, program_id, cycle_id, table="g2p_entitlement"):
    """(enrolled members, cycle members, distinct cycle members, entitlements, distinct
    beneficiaries with an entitlement) of the program and cycle, read in SQL from the
    entitlement ``table`` (g2p_entitlement: cash; g2p_entitlement_inkind)."""
    with psycopg2.connect(dbname=db) as conn, conn.cursor() as cr:
        cr.execute(
            sql.SQL(
                """SELECT (SELECT count(*) FROM g2p_program_membership WHERE program_id = %s AND state = 'enrolled'),
                          (SELECT count(*) FROM g2p_cycle_membership WHERE cycle_id = %s),
                          (SELECT count(DISTINCT partner_id) FROM g2p_cycle_membership WHERE cycle_id = %s),
                          (SELECT count(*) FROM {table} WHERE cycle_id = %s),
                          (SELECT count(DISTINCT partner_id) FROM {table} WHERE cycle_id = %s)"""
            ).format(table=sql.Identifier(table)),
            [program_id, cycle_id, cycle_id, cycle_id, cycle_id],
        )
        return cr.fetchone()


def setup_database(db, households, programs, password, parameters, template=None):
    """A fresh ``db`` with the suite, setup/bench.py's world and registry (COPY), the
    system ``parameters`` ({key: value}), one officer and ``programs`` identical cash
    programs; ``template``: a database with the suite installed and nothing else, to
    copy instead of installing. :return: (program ids, officer login)."""
    bench = importlib.import_module("bench")
    if template:
        subprocess.run(["dropdb", "--if-exists", "--force", db], check=True)
        subprocess.run(["createdb", "-T", template, db], check=True)
    else:
        bench.install(db, ADDONS)
    odoo = bench.odoo_env(db)
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415 - importable once odoo_env set the path

    odoo.tools.config["db_name"] = db
    registry = odoo.modules.registry.Registry(db)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        for key, value in parameters.items():
            env["ir.config_parameter"].set_param(key, value)
        world = bench.make_world(env, households)
        cr.commit()  # noqa: B950 - a setup script owns its transaction
        t0 = time.time()
        bench.make_registry(env, households, world["points"], world["areas"])
        say(f"registry of {households:,} households built in {time.time() - t0:.0f} s (setup, not timed)")
        officer = (
            env["res.users"]
            .with_context(no_reset_password=True)
            .create(
                {
                    "name": "Scale-out officer",
                    "login": "scaleout_officer",
                    "password": password,
                    "groups_id": [(6, 0, [env.ref("g2p_programs_ext.group_program_officer").id])],
                }
            )
        )
        program_ids = []
        for n in range(programs):
            program = bench.new_program(env, f"Scale-out {n + 1}", world)
            env["g2p.program.entitlement.manager.cash"].create(
                {
                    "program_id": program.id,
                    "validation_group_id": world["validation_group"],
                    "max_amount": 100,
                    "item_ids": [
                        (0, 0, {"amount": 10.0, "multiplier_field": "household_size", "max_multiplier": 5})
                    ],
                }
            )
            program_ids.append(program.id)
        login = officer.login
        cr.commit()  # noqa: B950 - a setup script owns its transaction
    odoo.sql_db.close_all()
    return program_ids, login


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--households", type=int, default=100_000)
    ap.add_argument("--servers", default="1,2", help="server counts to compare, one program each")
    ap.add_argument("--workers", type=int, default=2, help="HTTP workers per server")
    ap.add_argument("--channels", help="queue_job channels of the runner (default: odoo.conf's)")
    ap.add_argument(
        "--batch", type=int, default=5000, help="registrants per job (g2p_programs_ext.job_batch_size)"
    )
    ap.add_argument("--db", default="g2p_scaleout")
    ap.add_argument(
        "--template", help="copy this database (the suite installed, nothing else) instead of installing"
    )
    ap.add_argument("--keep-db", action="store_true")
    ap.add_argument("--out", default=str(REPO / "bench-output" / "SCALE_OUT.md"))
    args = ap.parse_args()
    bench = importlib.import_module("bench")
    about = bench.machine()
    server_counts = [int(n) for n in args.servers.split(",")]
    password = "scale-out-pass"
    rows = []
    try:
        program_ids, officer = setup_database(
            args.db,
            args.households,
            len(server_counts),
            password,
            {"g2p_programs_ext.job_batch_size": str(args.batch)},
            template=args.template,
        )
        for servers, program_id in zip(server_counts, program_ids, strict=True):
            since = last_job_id(args.db)
            with Cluster(args.db, servers=servers, workers=args.workers, channels=args.channels) as cluster:
                say(f"{servers} server(s) behind {cluster.url}: program {program_id}")
                cpu0 = cluster.sampler.cpu_seconds()
                load0 = os.getloadavg()[0]
                times, cycle_id = run_program(cluster, args.db, program_id, officer, password)
                cluster.sampler.sample()
                cpu = [b - a for a, b in zip(cpu0, cluster.sampler.cpu_seconds(), strict=True)]
                jobs = suite_jobs(args.db, since)
                where = placement(cluster, jobs)
                stats = cluster.balancer.stats()
                runners = cluster.runners()
                sent = cluster.dispatches()
            figures = counts(args.db, program_id, cycle_id)
            row = {
                "servers": servers,
                "times": times,
                "jobs": len(jobs),
                "per_server": where["per_server"],
                "not_done": len(where["not_done"]),
                "retried": len(where["retried"]),
                "sent_not_once": sum(1 for job in jobs if sent[job["uuid"]] != 1),
                "unknown": len(where["unknown"]),
                "requests": {k: v["requests"] for k, v in stats.items()},
                "cpu": cpu,
                "runners": runners,
                "counts": figures,
                "load": load0,
            }
            rows.append(row)
            say(f"  {row}")
    finally:
        if not args.keep_db:
            subprocess.run(["dropdb", "--if-exists", "--force", args.db], check=False)
            shutil.rmtree(REPO / "var" / "filestore" / args.db, ignore_errors=True)
    lines = [
        "# Scaling out",
        "",
        f"Machine: {about}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{args.households:,} households, {args.workers} HTTP workers per server, one job runner, "
        f"{args.batch:,} registrants per job.",
        "",
        "| servers | enrollment | new cycle | cash generation | jobs | jobs run by each server | "
        "requests via HAProxy to each | CPU s of each server | not done / tried twice / sent twice | "
        "enrolled / cycle members (distinct) / entitlements / beneficiaries |",
        "|---:|---:|---:|---:|---:|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["times"]
        lines.append(
            f"| {r['servers']} | {t['enrollment']:.1f} s | {t['new cycle']:.1f} s | {t['cash generation']:.1f} s "
            f"| {r['jobs']} | {' / '.join(map(str, r['per_server']))} "
            f"| {' / '.join(str(v) for v in r['requests'].values())} "
            f"| {' / '.join(f'{c:.0f}' for c in r['cpu'])} | {r['not_done']} / {r['retried']} / {r['sent_not_once']} "
            f"| {' / '.join(f'{c:,}' for c in r['counts'])} |"
        )
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    ok = all(
        r["not_done"] == r["unknown"] == r["sent_not_once"] == 0
        and len(set(r["counts"])) == 1
        and r["counts"][0] > 0
        and all(r["per_server"])
        and r["runners"][1:] == [0] * (r["servers"] - 1)
        for r in rows
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
