"""Reliability under faults (issue 12): real servers, real kills, a real PostgreSQL restart.

- A worker killed (kill -9) while a generation job runs: queue_job's runner requeues
  the job by itself, the cycle ends up with every entitlement once and is unlocked.
  Two ``prepare_entitlement`` of that cycle at once queue the work once (issue 5).
- The closing scheduled action killed (kill -9 of the process running it) after its
  first batch: the next runs reach the same final state, entitlement by entitlement and
  in stock, as an uninterrupted closing of an identical cycle.
- PostgreSQL restarted (a private cluster, never the machine's shared server) during a
  burst of redemptions: the requests in flight fail, none is half-applied, and retrying
  each with its reference succeeds once.
- Two approvals of one cycle at once (``validate_entitlement`` twice,
  ``approve_entitlement`` twice on the same entitlements): stock is reserved once.

Figures are printed (``-s`` shows them) and go into the README's "Reliability" section.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import xmlrpc.client
from datetime import date, timedelta
from pathlib import Path

import psutil
import psycopg2
import pytest

from tests.odoo_server import OdooServer, free_port
from tests.scenario import ROUNDING, World, run_threads

REPO = Path(__file__).resolve().parent.parent
LONG = os.environ.get("G2P_LONG_TESTS") == "1"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# runuser lives in /usr/sbin, which a bare PATH (CI runs with env -i) leaves out
RUNUSER = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
THRESHOLD_KEY = "g2p_programs_ext.async_threshold"
CLOSE_CRON = "spp_auto_update_entitlements.ir_cron_close_ended_cycles"


def report(title, **figures):
    print(f"\n[reliability] {title}: " + ", ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


def wait_for(predicate, timeout, what, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def set_param(admin, key, value):
    """Set a system parameter over XML-RPC; returns the previous value (False when unset)."""
    rows = admin.call("ir.config_parameter", "search_read", [("key", "=", key)], fields=["value"])
    if rows:
        admin.call("ir.config_parameter", "write", [rows[0]["id"]], {"value": value})
        return rows[0]["value"]
    admin.call("ir.config_parameter", "create", {"key": key, "value": value})
    return False


# ----------------------------------------------------------------------------------
# Worker killed during generation jobs (+ two prepare_entitlement at once)
# ----------------------------------------------------------------------------------
def job_workers(server):
    """The server's worker processes serving an HTTP request on its port right now
    (the queue_job runner calls /queue_job/runjob over HTTP: the worker that runs a job
    holds that connection until the job ends)."""
    found = []
    for child in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            conns = child.connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        if any(c.laddr and c.laddr.port == server.port and c.status != psutil.CONN_LISTEN for c in conns):
            found.append(child)
    return found


def test_worker_killed_while_generation_jobs_run(odoo_server, test_db):
    households = 1500 if LONG else 300
    world = World(odoo_server.url, test_db, households=households)
    cycle = world.new_cycle()
    admin = world.admin
    product_id = world.products[0][0]
    db = psycopg2.connect(dbname=test_db)
    db.autocommit = True
    blocker = psycopg2.connect(dbname=test_db)
    old_threshold = set_param(admin, THRESHOLD_KEY, "100")  # 300 members: generation runs as jobs
    try:
        # The job will stop at its first INSERT (the entitlement's product row is locked
        # here): it is then `started`, mid-transaction, every time, when the worker dies.
        with blocker.cursor() as cr:
            cr.execute("SELECT id FROM product_product WHERE id = %s FOR UPDATE", [product_id])

        # Two officers' clients prepare the same cycle at once (issue 5).
        answers, faults = [], []
        barrier = threading.Barrier(2)

        def prepare(_i):
            officer = world.as_role("officer")
            barrier.wait()
            try:
                answers.append(officer.call("g2p.cycle", "prepare_entitlement", [cycle]))
            except xmlrpc.client.Fault as fault:
                faults.append(fault)

        world.as_role("officer")  # authenticate once, before the race
        run_threads(prepare, 2, timeout=60)
        assert all(f.faultCode == 2 and f.faultString.startswith("[locked]") for f in faults), faults
        assert answers and set(answers) == {0}, answers  # queued: 0 created in the request

        def job_state():
            with db.cursor() as cr:
                cr.execute(
                    """SELECT uuid, state, retry FROM queue_job
                        WHERE method_name = '_job_prepare_entitlements' AND identity_key LIKE %s""",
                    [f"g2p.cycle.prepare:{cycle}:%"],
                )
                return cr.fetchall()

        blocker_pid = blocker.get_backend_pid()

        def blocked_insert():
            # The job's backend waiting on the blocker's row lock (its query text is not
            # matched: pg_stat_activity keeps only its first 1,024 bytes, and generation is
            # one long INSERT ... SELECT).
            with db.cursor() as cr:
                cr.execute(
                    """SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'
                          AND %s = ANY(pg_blocking_pids(pid))""",
                    [test_db, blocker_pid],
                )
                return cr.fetchall()

        wait_for(lambda: [j for j in job_state() if j[1] == "started"], 60, "the generation job to start")
        wait_for(blocked_insert, 30, "the job to be inside its transaction")
        time.sleep(1.5)  # the runner's own HTTP call to /queue_job/runjob times out after 1 s
        jobs = job_state()
        assert len(jobs) == 1, f"the work was queued once, not {len(jobs)} times: {jobs}"
        victims = wait_for(lambda: job_workers(odoo_server), 10, "the worker running the job")
        workers_before = {p.pid for p in psutil.Process(odoo_server.proc.pid).children()}
        for victim in victims:
            os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.time()
        blocker.rollback()  # the killed worker's transaction now ends (rolled back)

        wait_for(
            lambda: not any(psutil.pid_exists(v.pid) and v.status() != "zombie" for v in victims), 10, "kill"
        )
        assert admin.call("g2p.cycle", "read", [cycle], ["locked"])[0]["locked"], (
            "still locked: job requeued, not lost"
        )
        # queue_job's runner requeues a dead job (`started`, its lock row free) enqueued
        # more than 10 s ago each time it wakes: on any job activity, at least once a
        # minute. Wake it once that age is reached rather than wait for the minute.
        with db.cursor() as cr:
            cr.execute(
                "SELECT EXTRACT(EPOCH FROM (now() AT TIME ZONE 'utc' - date_enqueued)) FROM queue_job WHERE uuid = %s",
                [jobs[0][0]],
            )
            time.sleep(max(0.0, 11 - float(cr.fetchone()[0])))
            cr.execute("NOTIFY queue_job, %s", [jobs[0][0]])
        wait_for(
            lambda: not admin.call("g2p.cycle", "read", [cycle], ["locked"])[0]["locked"],
            240,
            "the cycle to be unlocked (job requeued and done)",
            interval=1,
        )
        recovered = time.time() - killed_at

        (uuid, state, retry), *_ = job_state()
        assert state == "done" and retry >= 1, (
            f"the killed job was requeued as dead and done: {state} {retry}"
        )
        with db.cursor() as cr:
            cr.execute(
                """SELECT count(*), count(DISTINCT (partner_id, inkind_item_id)) FROM g2p_entitlement_inkind
                    WHERE cycle_id = %s""",
                [cycle],
            )
            total, distinct = cr.fetchone()
            cr.execute(
                "SELECT count(*) FROM queue_job WHERE model_name = 'g2p.cycle' AND state NOT IN ('done') "
                "AND records::text LIKE %s",
                [f'%"ids": [{cycle}]%'],
            )
            unfinished = cr.fetchone()[0]
        assert total == distinct == households * len(world.products), (total, distinct)
        assert unfinished == 0
        workers_after = {p.pid for p in psutil.Process(odoo_server.proc.pid).children()}
        assert not {v.pid for v in victims} & workers_after and len(workers_after) >= len(workers_before)
        # the server still serves, and the cycle goes on
        world.as_role("officer").call("g2p.cycle", "to_approve", [cycle])
        world.as_role("officer").wait_unlocked("g2p.cycle", cycle, timeout=300)
        report(
            "worker kill -9 during generation",
            beneficiaries=households,
            entitlements=total,
            duplicates=total - distinct,
            killed_workers=len(victims),
            job_retry=retry,
            recovered_s=round(recovered, 1),
        )
    finally:
        blocker.close()
        db.close()
        set_param(admin, THRESHOLD_KEY, old_threshold or "1000")


# ----------------------------------------------------------------------------------
# Closing killed after its first batch
# ----------------------------------------------------------------------------------
def redeem_pattern(world, cycle):
    """The same redemptions in every world: entitlement i (by beneficiary, product)
    in full when i % 3 == 0, half when i % 3 == 1, never otherwise; deliveries posted
    half-way. Sent as each point's offline batch."""
    rows = world.entitlements(cycle)
    halves = ([], [])
    for i, row in enumerate(rows):
        if i % 3 == 2:
            continue
        qty = row["quantity"] if i % 3 == 0 else round(row["quantity"] / 2, 2)
        point = next(n for n, p in enumerate(world.points) if p["id"] == row["service_point_id"][0])
        halves[i % 2].append((point, {"code": row["code"], "quantity": qty, "reference": f"{world.tag}-{i}"}))
    approver = world.as_role("approver")
    for half in halves:
        for n in range(len(world.points)):
            lines = [line for point, line in half if point == n]
            answers = world.device(n)("redeem_batch", world.points[n]["id"], lines)
            assert not [a for a in answers if a.get("error")], answers[:3]
        approver.call("g2p.cycle", "action_post_deliveries", [cycle])


def closing_outcome(world, cycle):
    """What a closing leaves: per entitlement (in order) its state and figures; per
    product (in order) the stock figures relative to the start and the cycle's moves."""
    rows = world.entitlements(cycle)
    stock = world.stock()
    moves = world.admin.call(
        "stock.move",
        "search_read",
        [("g2p_cycle_id", "=", cycle)],
        fields=["product_id", "state", "product_uom_qty", "quantity", "location_dest_id"],
    )
    by_product = []
    for pid, _q in world.products:
        s, s0 = stock[pid], world.initial[pid]
        by_product.append(
            {
                "on_hand_drop": round(s0["on_hand"] - s["on_hand"], 2),
                "reserved": round(s["on_hand"] - s["free"], 2),
                "forecast_drop": round(s0["on_hand"] - s["forecast"], 2),
                "moves": sorted(
                    (m["state"], round(m["product_uom_qty"], 2), round(m["quantity"], 2))
                    for m in moves
                    if m["product_id"][0] == pid
                ),
            }
        )
    entitlements = [(r["state"], r["quantity"], r["quantity_redeemed"]) for r in rows]
    return entitlements, by_product


def count_open(world, cycle):
    return len([r for r in world.entitlements(cycle) if r["state"] in ("approved", "transferred")])


def is_ended(admin, cycle):
    return admin.call("g2p.cycle", "read", [cycle], ["state"])[0]["state"] == "ended"


def open_ended_cycles(admin):
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    return admin.call(
        "g2p.cycle", "search", [("state", "in", ("approved", "distributed")), ("end_date", "<=", yesterday)]
    )


def test_closing_killed_after_its_first_batch(odoo_server, test_db):
    households = 300 if LONG else 60  # x 2 items
    batch = 40
    start = date.today() - timedelta(days=29)
    interrupted = World(odoo_server.url, test_db, households=households, points=2, start_date=start)
    reference = World(odoo_server.url, test_db, households=households, points=2, start_date=start)
    admin = interrupted.admin
    cron_id = admin.ref(CLOSE_CRON)
    cron = admin.call("ir.cron", "read", [cron_id], ["code"])[0]
    cycles = {}
    for world in (interrupted, reference):
        cycles[world.tag] = world.approved_cycle()
        redeem_pattern(world, cycles[world.tag])
    yesterday = (date.today() - timedelta(days=1)).isoformat()

    def run_once():
        admin.call("ir.cron", "method_direct_trigger", [cron_id])

    # cycles other tests left ended are closed first: each run below then works on ours
    for _run in range(50):
        if not open_ended_cycles(admin):
            break
        run_once()
    admin.call("ir.cron", "write", [cron_id], {"code": f"model._cron_close_ended_cycles(batch_size={batch})"})
    shell = None
    try:
        cycle = cycles[interrupted.tag]
        open_before = count_open(interrupted, cycle)
        admin.call("g2p.cycle", "write", [cycle], {"end_date": yesterday})
        # An Odoo shell does what the cron worker does: it holds the scheduled action's
        # row (so the server's cron worker leaves it alone) and runs it in its own
        # transaction, one batch per run; it commits the first, does the second and is
        # killed before committing it.
        script = "\n".join(
            [
                "import time",
                f"cron = env.ref('{CLOSE_CRON}')",
                "lock_cr = env.registry.cursor()",
                "lock_cr.execute('SELECT id FROM ir_cron WHERE id = %s FOR NO KEY UPDATE', [cron.id])",
                "cron.with_user(cron.user_id).ir_actions_server_id.run()",
                "env.cr.commit()",
                "print('G2P-BATCH-1-COMMITTED', flush=True)",
                "cron.with_user(cron.user_id).ir_actions_server_id.run()",
                "env.flush_all()",
                "print('G2P-BATCH-2-NOT-COMMITTED', flush=True)",
                "time.sleep(600)",
            ]
        )
        src = (REPO / ".odoo-src-path").read_text().strip()
        shell = subprocess.Popen(
            [
                str(REPO / ".venv" / "bin" / "python"),
                os.path.join(src, "odoo-bin"),
                "shell",
                "-c",
                str(REPO / "odoo.conf"),
                "-d",
                test_db,
                "--log-level=warn",
                "--no-http",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        shell.stdin.write(script + "\n")
        shell.stdin.close()
        output = []
        deadline = time.time() + 120
        while time.time() < deadline:
            line = shell.stdout.readline()
            if not line:
                break
            output.append(line)
            if "G2P-BATCH-2-NOT-COMMITTED" in line:
                break
        assert "G2P-BATCH-2-NOT-COMMITTED" in "".join(output), "".join(output)[-2000:]
        # what others see while the second batch is done but not committed: the first only
        assert count_open(interrupted, cycle) == open_before - batch
        os.kill(shell.pid, signal.SIGKILL)
        shell.wait(10)
        killed_at = time.time()
        # what the kill left: the first batch, and the trigger it committed for the next run
        triggers = admin.call("ir.cron.trigger", "search_count", [("cron_id", "=", cron_id)])
        assert triggers >= 1
        assert count_open(interrupted, cycle) <= open_before - batch
        # The server's cron worker runs the next batches by itself (it looks for triggers
        # at least once a minute); wake it now rather than wait for that minute.
        # (Odoo's cron workers listen on the "postgres" database, as ir.cron._notifydb notifies)
        with psycopg2.connect(dbname="postgres") as conn, conn.cursor() as cr:
            cr.execute("NOTIFY cron_trigger, %s", [test_db])
        wait_for(lambda: is_ended(admin, cycle), 180, "the cron worker to close the cycle", interval=1)
        recovered = time.time() - killed_at

        other = cycles[reference.tag]
        admin.call("g2p.cycle", "write", [other], {"end_date": yesterday})
        t0 = time.time()
        run_once()  # the first batch here, the next ones by the cron worker
        wait_for(lambda: is_ended(admin, other), 180, "the uninterrupted closing", interval=1)
        uninterrupted = time.time() - t0
    finally:
        if shell and shell.poll() is None:
            shell.kill()
            shell.wait(10)
        for _attempt in range(60):  # the cron worker may be running it
            try:
                admin.call("ir.cron", "write", [cron_id], {"code": cron["code"]})
                break
            except xmlrpc.client.Fault:
                time.sleep(1)

    got = closing_outcome(interrupted, cycle)
    expected = closing_outcome(reference, other)
    assert got == expected
    states = {}
    for state, _q, _r in got[0]:
        states[state] = states.get(state, 0) + 1
    assert set(states) == {"redeemed", "partially_redeemed", "expired"}, states
    for product in got[1]:
        assert abs(product["reserved"]) < ROUNDING and product["on_hand_drop"] == product["forecast_drop"]
    interrupted.check_ledger(cycle)
    report(
        "closing killed after its first batch",
        entitlements=len(got[0]),
        batch=batch,
        pending_triggers_after_kill=triggers,
        closed_after_kill_s=round(recovered, 1),
        uninterrupted_s=round(uninterrupted, 1),
        states=states,
        identical="yes",
    )


# ----------------------------------------------------------------------------------
# PostgreSQL restarted during a redemption burst
# ----------------------------------------------------------------------------------
class PrivateCluster:
    """A PostgreSQL 15 cluster of this test's own (data and socket in a temp dir owned
    by ``postgres``, its own port, Unix socket only), with a superuser role ``root``."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="g2p-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        self.options = f"-p {self.port} -k {self.dir} -c listen_addresses='' -c fsync=off"

    def pg(self, *args, check=True):
        return subprocess.run(
            [RUNUSER, "-u", "postgres", "--", *args],
            check=check,
            capture_output=True,
            text=True,
            cwd="/tmp",
        )

    def start(self):
        self.pg(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        )
        self.pg_ctl("start")
        self.pg(str(PG_BIN / "createuser"), "-h", str(self.dir), "-p", str(self.port), "-s", "root")
        os.chmod(self.dir, 0o755)  # the socket is reached by root's processes

    def pg_ctl(self, *args):
        """``pg_ctl`` on this cluster (its data, options and log), waiting for it."""
        return self.pg(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            self.options,
            "-l",
            str(self.dir / "log"),
            "-w",
            *args,
        )

    def restart(self, mode="fast"):
        return self.pg_ctl("-m", mode, "restart")

    def stop(self):
        self.pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def copy_database(self, source, target):
        """Copy ``source`` from the machine's server into this cluster (pg_dump | pg_restore)."""
        subprocess.run(["createdb", "-h", str(self.dir), "-p", str(self.port), target], check=True)
        dump = subprocess.Popen(["pg_dump", "-Fc", "-d", source], stdout=subprocess.PIPE)
        subprocess.run(
            ["pg_restore", "--no-owner", "-h", str(self.dir), "-p", str(self.port), "-d", target],
            stdin=dump.stdout,
            check=True,
        )
        assert dump.wait() == 0


def test_postgresql_restarted_during_a_redemption_burst(test_db):
    if not (PG_BIN / "initdb").exists() or not RUNUSER:
        pytest.fail(f"{PG_BIN}/initdb (PostgreSQL 15 server binaries) and runuser are needed for this test")
    cluster = PrivateCluster()
    server = None
    try:
        t0 = time.time()
        cluster.start()
        db = f"{test_db}_pgrestart"
        cluster.copy_database(test_db, db)
        # PostgreSQL goes away on purpose: the server logs errors, this test checks the outcome
        server = OdooServer(
            db,
            workers=2,
            extra_args=["--db_host", str(cluster.dir), "--db_port", str(cluster.port)],
            expect_errors=True,
        ).start()
        setup_seconds = time.time() - t0
        households = 600 if LONG else 160
        world = World(server.url, db, households=households, items=(("Rice", 10.0),), points=2)
        cycle = world.approved_cycle()
        rows = world.entitlements(cycle)
        # every entitlement: two redemptions of 4 kg, each with its own reference
        plan = [
            (
                next(n for n, p in enumerate(world.points) if p["id"] == r["service_point_id"][0]),
                r["code"],
                4.0,
                f"{world.tag}-{r['id']}-{k}",
            )
            for k in (1, 2)
            for r in rows
        ]
        clients = 8
        answers, in_flight_errors, refusals = {}, {}, []
        lock = threading.Lock()
        started = threading.Event()

        def client(i):
            devices = {}
            for n, (point, code, qty, ref) in enumerate(plan):
                if n % clients != i:
                    continue
                call = devices.setdefault(point, world.device(point))
                started.set()
                try:
                    answer = call("redeem", code, qty, world.points[point]["id"], ref)
                    with lock:
                        answers[ref] = answer
                except xmlrpc.client.Fault as fault:
                    with lock:
                        if fault.faultCode == 2:
                            refusals.append(fault.faultString[:200])
                        else:
                            in_flight_errors[ref] = f"fault {fault.faultCode}"
                except (OSError, xmlrpc.client.ProtocolError) as exc:
                    with lock:
                        in_flight_errors[ref] = type(exc).__name__
                    time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        started.wait(30)
        wait_for(lambda: len(answers) >= len(plan) // 4, 60, "a quarter of the burst", interval=0.05)
        t_restart = time.time()
        cluster.restart("fast")
        restart_seconds = time.time() - t_restart
        for thread in threads:
            thread.join(300)
        assert not any(t.is_alive() for t in threads)
        assert refusals == [], refusals[:3]
        assert in_flight_errors, "the restart hit requests in flight"
        assert len(answers) + len(in_flight_errors) == len(plan)

        # right after the restart, before any retry: nothing is half-applied (every
        # entitlement's quantity redeemed = Σ its transactions), and each failed request
        # was either committed whole (its answer was lost) or not at all
        _rows, txs = world.check_ledger(cycle)
        committed_before_retry = {tx["reference"] for tx in txs} & set(in_flight_errors)

        # retry every failed request with its reference: it succeeds, once
        by_ref = {ref: (point, code, qty) for point, code, qty, ref in plan}
        retried = {}
        for ref in sorted(in_flight_errors):
            point, code, qty = by_ref[ref]
            call = world.device(point)
            for _attempt in range(60):
                try:
                    retried[ref] = call("redeem", code, qty, world.points[point]["id"], ref)
                    break
                except (OSError, xmlrpc.client.ProtocolError, xmlrpc.client.Fault) as exc:
                    if isinstance(exc, xmlrpc.client.Fault) and exc.faultCode == 2:
                        raise
                    time.sleep(0.5)
            assert ref in retried, f"retrying {ref} kept failing"
            assert call("redeem", code, qty, world.points[point]["id"], ref) == retried[ref]
        rows, txs = world.check_ledger(cycle)
        refs = sorted(tx["reference"] for tx in txs if tx["transaction_type"] == "redemption")
        assert refs == sorted(by_ref), "every request counted exactly once"
        assert all(abs(r["quantity_redeemed"] - 8.0) < ROUNDING for r in rows)
        world.as_role("approver").call("g2p.cycle", "action_post_deliveries", [cycle])
        world.check_stock(cycle)
        report(
            "PostgreSQL restart during a redemption burst",
            requests=len(plan),
            clients=clients,
            failed_in_flight=len(in_flight_errors),
            kinds=sorted(set(in_flight_errors.values())),
            retried_ok=len(retried),
            restart_s=round(restart_seconds, 1),
            cluster_setup_s=round(setup_seconds, 1),
            transactions=len(txs),
            committed_answer_lost=len(committed_before_retry),
            not_applied_then_retried=len(in_flight_errors) - len(committed_before_retry),
        )
    finally:
        if server:
            server.stop()
        cluster.stop()


# ----------------------------------------------------------------------------------
# Two approvals of the same cycle at once
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["validate_entitlement", "approve_entitlement"])
def test_two_approvals_of_one_cycle_at_once_reserve_stock_once(odoo_server, test_db, variant):
    households = 40
    world = World(odoo_server.url, test_db, households=households)
    cycle = world.approved_cycle(validate=False)
    pending = [r["id"] for r in world.entitlements(cycle)]
    validators = [world.as_role("validator"), world.as_role("validator2")]
    barrier = threading.Barrier(2)
    answers, faults = [], []

    def approve(i):
        barrier.wait()
        try:
            if variant == "validate_entitlement":
                answers.append(validators[i].call("g2p.cycle", "validate_entitlement", [cycle]))
            else:
                answers.append(validators[i].call("g2p.entitlement.inkind", "approve_entitlement", pending))
        except xmlrpc.client.Fault as fault:
            faults.append(fault)

    run_threads(approve, 2, timeout=120)
    assert all(f.faultCode == 2 for f in faults), [f.faultString[:300] for f in faults]
    if variant == "validate_entitlement":
        assert sorted(answers) == [0, len(pending)], answers
    else:
        assert len(answers) >= 1 and all(f.faultString.startswith("[wrong_state]") for f in faults), faults
    rows = world.entitlements(cycle)
    assert {r["state"] for r in rows} == {"approved"} and len({r["code"] for r in rows}) == len(rows)
    figures = world.check_stock(cycle)
    moves = world.admin.call(
        "stock.move", "search_read", [("g2p_cycle_id", "=", cycle)], fields=["product_id"]
    )
    assert len(moves) == len(world.products), "one reserved move per point and product"
    for pid, quantity in world.products:
        assert abs(figures[pid]["holding"] - quantity * households) < ROUNDING
        assert abs((world.initial[pid]["free"] - figures[pid]["free"]) - quantity * households) < ROUNDING
    report(
        f"two {variant} at once",
        entitlements=len(rows),
        answers=answers,
        refused=[f.faultString.split("]")[0] + "]" for f in faults],
        moves=len(moves),
        reserved_once="yes",
    )
