"""Scaling out (README, "Scaling out"; issue 24 part 4): two Odoo servers, separate
processes with their own ports as two hosts would be, on one PostgreSQL database, with
ONE queue_job runner dispatching through HAProxy (round-robin to both). A cash cycle run
at a small size with a lowered async threshold and job batch size, so that enrollment,
the new cycle and generation run as jobs: the jobs are spread over both servers,
none is lost, none runs twice, and each step's effect happened exactly once.

The test works on a copy of the test database (pg_dump | pg_restore): the session's
server (tests/conftest.py) runs a job runner of its own on the test database, which
would take jobs away from the two servers under test.
"""

import importlib.util
import math
import re
import shutil
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg2
import pytest

from tests.scenario import Client

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("g2p_scale_out", REPO / "setup" / "scale_out.py")
scale_out = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scale_out)

HOUSEHOLDS = 300
THRESHOLD = 50  # above it, the steps run as jobs (g2p_programs_ext.async_threshold)
BATCH = 50  # registrants per job (g2p_programs_ext.job_batch_size): 6 jobs per step
RANGE_JOBS = (
    "_job_enroll_range",
    "_job_copy_beneficiaries",
    "_job_prepare_entitlements",
    "_job_entitlement_step",  # the submission's
    "_job_approve_entitlements",
)
PASSWORD = "scale-out-pass"
PARAMETERS = {
    "g2p_programs_ext.async_threshold": str(THRESHOLD),
    "g2p_programs_ext.job_batch_size": str(BATCH),
}
ROLES = {
    "officer": "g2p_programs_ext.group_program_officer",
    "approver": "g2p_programs_ext.group_cycle_approver",
    "validator": "g2p_programs_ext.group_program_validator",
}


def cash_program(admin, households):
    """Over XML-RPC as admin: ``households`` households of their own (a unique tag), a
    cash program that targets them with one cash manager (10 per household, validated
    by the validators' group) and one user of each role. :return: (program id, {role: login})."""
    tag = uuid.uuid4().hex[:6].upper()
    admin.call(
        "res.partner",
        "create",
        [
            {"name": f"Household {tag} {i:04d}", "ref": tag, "is_registrant": True, "is_group": True}
            for i in range(households)
        ],
    )
    # One create for the three users: each change of users or groups clears every
    # worker's caches, and with them the password checks already paid (PBKDF2).
    users = {role: f"{role}_{tag.lower()}" for role in ROLES}
    admin.call(
        "res.users",
        "create",
        [
            {
                "name": f"{role} {tag}",
                "login": users[role],
                "password": PASSWORD,
                "groups_id": [(6, 0, [admin.ref(group)])],
            }
            for role, group in ROLES.items()
        ],
    )
    program_id = admin.call(
        "g2p.program",
        "create",
        {
            "name": f"Scale-out {tag}",
            "target_type": "group",
            "eligibility_domain": f"[('ref', '=', '{tag}')]",
        },
    )
    admin.call(
        "g2p.program.entitlement.manager.cash",
        "create",
        {
            "program_id": program_id,
            "validation_group_id": admin.ref(ROLES["validator"]),
            "item_ids": [(0, 0, {"amount": 10.0})],
        },
    )
    return program_id, users


def drop(db):
    subprocess.run(["dropdb", "--if-exists", "--force", db], check=False)
    shutil.rmtree(REPO / "var" / "filestore" / db, ignore_errors=True)


@pytest.fixture
def scale_db(test_db):
    """A copy of the test database, its own queue empty of unfinished jobs; dropped after."""
    db = f"{test_db}_scaleout"
    drop(db)
    t0 = time.time()
    try:
        # A template copy is fastest, but PostgreSQL refuses it while anyone is connected
        # to the test database (the session's server, once a test started it).
        if subprocess.run(["createdb", "-T", test_db, db], capture_output=True).returncode:
            subprocess.run(["createdb", db], check=True)
            dump = subprocess.Popen(["pg_dump", "-Fc", "-Z0", "-d", test_db], stdout=subprocess.PIPE)
            # one transaction: one commit to flush, instead of one per table and index
            subprocess.run(
                ["pg_restore", "--no-owner", "--single-transaction", "-d", db], stdin=dump.stdout, check=True
            )
            assert dump.wait() == 0, "pg_dump of the test database"
        filestore = REPO / "var" / "filestore" / test_db
        if filestore.exists():
            shutil.copytree(filestore, REPO / "var" / "filestore" / db)
        # Jobs the earlier tests left unfinished belong to the test database's runner,
        # not to this copy: cancelled here so that only this test's jobs run.
        with psycopg2.connect(dbname=db) as conn, conn.cursor() as cr:
            cr.execute(
                "UPDATE queue_job SET state = 'cancelled' WHERE state NOT IN ('done', 'cancelled', 'failed')"
            )
            # The system parameters, set before any server starts: set over XML-RPC, each
            # would clear every worker's caches (password checks included) once more.
            for key, value in PARAMETERS.items():
                cr.execute(
                    """INSERT INTO ir_config_parameter (key, value, create_uid, write_uid, create_date, write_date)
                       VALUES (%s, %s, 1, 1, now(), now())
                       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value""",
                    [key, value],
                )
        print(f"\n[scale-out] test database copied in {time.time() - t0:.1f} s", flush=True)
        yield db
    finally:
        drop(db)


def test_two_servers_one_runner_spread_the_cycle_jobs_none_lost_or_run_twice(scale_db):
    t0 = time.time()
    # one HTTP worker each: two hosts of one worker, on 2 cores (each worker pays the
    # password check of each user once, about 0.4 s of PBKDF2)
    with scale_out.Cluster(scale_db, servers=2, workers=1, name="test") as cluster:
        started = time.time() - t0
        admin = Client(cluster.url, scale_db, "admin", "admin")
        assert {k: admin.call("ir.config_parameter", "get_param", k) for k in PARAMETERS} == PARAMETERS
        since = scale_out.last_job_id(scale_db)

        # the whole cycle, every call through HAProxy, run by users of each role
        program_id, users = cash_program(admin, HOUSEHOLDS)
        officer, approver, validator = (Client(cluster.url, scale_db, users[r], PASSWORD) for r in ROLES)
        t1 = time.time()
        officer.call("g2p.program", "enroll_eligible_registrants", [program_id])
        officer.wait_unlocked("g2p.program", program_id, timeout=300)
        cycle = officer.call("g2p.program", "create_new_cycle", [program_id])
        officer.wait_unlocked("g2p.cycle", cycle, timeout=300)
        officer.call("g2p.cycle", "prepare_entitlement", [cycle])
        officer.wait_unlocked("g2p.cycle", cycle, timeout=300)
        officer.call("g2p.cycle", "to_approve", [cycle])
        officer.wait_unlocked("g2p.cycle", cycle, timeout=300)
        approver.call("g2p.cycle", "approve", [cycle])
        approved = validator.call("g2p.cycle", "validate_entitlement", [cycle])
        validator.wait_unlocked("g2p.cycle", cycle, timeout=300)
        cycle_seconds = time.time() - t1

        jobs = scale_out.suite_jobs(scale_db, since)
        where = scale_out.placement(cluster, jobs)
        sent = cluster.dispatches()
        stats = cluster.balancer.stats()
        runners = cluster.runners()
        states = admin.call("g2p.entitlement", "read_group", [("cycle_id", "=", cycle)], ["state"], ["state"])

    # one runner, on the first server only
    assert runners == [1, 0], f"queue job runners ready per server: {runners}"

    # every step ran as jobs of BATCH registrants, plus the one that unlocks
    methods = Counter(job["method"] for job in jobs)
    per_step = math.ceil(HOUSEHOLDS / BATCH)
    assert {m: methods[m] for m in RANGE_JOBS} == dict.fromkeys(RANGE_JOBS, per_step), methods
    assert methods["_job_finish_enrollment"] == 1 and methods["_job_unlock"] == 3, methods
    assert methods["_job_finish_step"] == 1, methods  # the submission's last job
    assert len(jobs) == len(RANGE_JOBS) * (per_step + 1)

    # none lost: all done; none run twice: each sent once by the runner, tried once
    assert [j["uuid"] for j in where["not_done"]] == [], "jobs not done"
    assert [(j["uuid"], j["retry"]) for j in where["retried"]] == [], "jobs tried more than once"
    assert {j["uuid"]: sent[j["uuid"]] for j in jobs if sent[j["uuid"]] != 1} == {}, (
        "jobs not sent exactly once"
    )

    # spread: each job ran in a worker of one of the two servers, and both ran some
    assert [(j["uuid"], j["worker_pid"]) for j in where["unknown"]] == [], "jobs run by no known server"
    assert all(where["per_server"]), f"jobs per server: {where['per_server']}"
    assert sum(where["per_server"]) == len(jobs)
    assert all(s["requests"] > 0 and s["status"] == "UP" for s in stats.values()) and len(stats) == 2, stats

    # each step's effect happened exactly once: the jobs' own counts add up to the
    # households, and the database holds one row per household at each step
    done_by = {
        m: sum(int(re.match(r"\d+", j["result"]).group()) for j in jobs if j["method"] == m)
        for m in RANGE_JOBS
    }
    assert done_by == dict.fromkeys(RANGE_JOBS, HOUSEHOLDS), done_by
    figures = scale_out.counts(scale_db, program_id, cycle)
    assert figures == (HOUSEHOLDS,) * 5, "enrolled, cycle members (distinct), entitlements, beneficiaries"
    assert approved == 0, "approval queued as jobs: none approved in the request"
    assert {g["state"]: g["state_count"] for g in states} == {"approved": HOUSEHOLDS}

    print(
        f"\n[scale-out] 2 servers, 1 runner, {HOUSEHOLDS} households: servers up in {started:.1f} s, "
        f"program made in {t1 - t0 - started:.1f} s, cycle (jobs) {cycle_seconds:.1f} s; {len(jobs)} jobs, per server {where['per_server']}; "
        f"requests via HAProxy {[s['requests'] for s in stats.values()]}",
        flush=True,
    )
