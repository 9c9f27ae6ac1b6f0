"""Submission and approval above the async threshold through the real job runner
(issue 24, item 1).

A server with workers and the queue_job runner; the validator calls
``validate_entitlement`` over XML-RPC on a cycle above the threshold: the whole cycle's
stock is checked in the request, then id-sliced jobs reserve and approve, the cycle
locked until the last one. A job requeued after it was done (what a retry after a lost
answer does) changes nothing; a cycle whose stock is short is refused before any job.
"""

import time
import xmlrpc.client

import pytest
from g2p_client import Client

from tests.scenario import ROUNDING, World

THRESHOLD_KEY = "g2p_programs_ext.async_threshold"
BATCH_KEY = "g2p_programs_ext.job_batch_size"


def set_param(admin, key, value):
    """Set a system parameter over XML-RPC; returns the previous value (False when unset)."""
    rows = admin.call("ir.config_parameter", "search_read", [("key", "=", key)], fields=["value"])
    if rows:
        admin.call("ir.config_parameter", "write", [rows[0]["id"]], {"value": value})
        return rows[0]["value"]
    admin.call("ir.config_parameter", "create", {"key": key, "value": value})
    return False


@pytest.fixture
def small_jobs(odoo_server, test_db):
    """Threshold 20 and jobs of 25 entitlements, for the test's duration."""
    admin = Client(odoo_server.url, test_db, "admin", "admin")
    old = {key: set_param(admin, key, value) for key, value in ((THRESHOLD_KEY, "20"), (BATCH_KEY, "25"))}
    yield
    set_param(admin, THRESHOLD_KEY, old[THRESHOLD_KEY] or "1000")
    set_param(admin, BATCH_KEY, old[BATCH_KEY] or "5000")


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def approval_jobs(admin, cycle):
    return admin.call(
        "queue.job",
        "search_read",
        [("func_string", "=like", f"g2p.cycle({cycle},)._job_approve_entitlements(%")],
        fields=["state", "retry", "result", "func_string"],
        order="id",
    )


def test_inkind_approval_as_jobs_through_the_runner(odoo_server, test_db, small_jobs):
    households = 30  # rice and beans each: 60 entitlements, jobs of 25 (25, 25, 10)
    world = World(odoo_server.url, test_db, households=households)
    cycle = world.approved_cycle(validate=False)
    validator = world.as_role("validator")
    assert validator.call("g2p.cycle", "validate_entitlement", [cycle]) == 0
    validator.wait_unlocked("g2p.cycle", cycle, timeout=300)
    jobs = approval_jobs(world.admin, cycle)
    assert [j["state"] for j in jobs] == ["done"] * 3, jobs
    rows = world.entitlements(cycle)
    assert len(rows) == 2 * households
    assert {r["state"] for r in rows} == {"approved"}
    assert len({r["code"] for r in rows}) == len(rows)
    figures = world.check_stock(cycle, posted=False)
    for pid, quantity in world.products:
        assert abs(figures[pid]["holding"] - quantity * households) < ROUNDING
    moves = world.admin.call("stock.move", "search_read", [("g2p_cycle_id", "=", cycle)], fields=["state"])
    assert len(moves) == len(world.products) and {m["state"] for m in moves} == {"assigned"}

    # a job run again (requeued as a retry would) approves and reserves nothing twice
    before = {r["id"]: (r["code"], r["date_approved"]) for r in rows}
    world.admin.call("queue.job", "requeue", [jobs[0]["id"]])
    wait_for(lambda: approval_jobs(world.admin, cycle)[0]["state"] == "done", 120, "the requeued job")
    again = approval_jobs(world.admin, cycle)[0]
    assert again["result"] == "nothing left to approve", again
    assert {r["id"]: (r["code"], r["date_approved"]) for r in world.entitlements(cycle)} == before
    assert world.check_stock(cycle, posted=False) == figures


def test_short_stock_refuses_the_whole_cycle_before_any_job(odoo_server, test_db, small_jobs):
    world = World(odoo_server.url, test_db, households=30, stock_factor=0.5)
    cycle = world.approved_cycle(validate=False)
    with pytest.raises(xmlrpc.client.Fault) as refused:
        world.as_role("validator").call("g2p.cycle", "validate_entitlement", [cycle])
    assert refused.value.faultString.startswith("[out_of_stock]"), refused.value.faultString[:300]
    assert approval_jobs(world.admin, cycle) == []
    assert world.admin.call("g2p.cycle", "read", [cycle], ["locked"])[0]["locked"] is False
    assert {r["state"] for r in world.entitlements(cycle)} == {"pending_validation"}


def submission_jobs(admin, cycle):
    return admin.call(
        "queue.job",
        "search_read",
        [("func_string", "=like", f"g2p.cycle({cycle},)._job_entitlement_step('submit',%")],
        fields=["state", "result", "user_id"],
        order="id",
    )


def test_submission_as_jobs_through_the_runner(odoo_server, test_db, small_jobs):
    households = 30  # rice and beans each: 60 drafts, jobs of 25 (25, 25, 10)
    world = World(odoo_server.url, test_db, households=households)
    cycle = world.new_cycle()
    officer = world.as_role("officer")
    officer.call("g2p.cycle", "prepare_entitlement", [cycle])
    officer.wait_unlocked("g2p.cycle", cycle, timeout=300)
    assert officer.call("g2p.cycle", "to_approve", [cycle]) is True
    officer.wait_unlocked("g2p.cycle", cycle, timeout=300)
    jobs = submission_jobs(world.admin, cycle)
    assert [j["state"] for j in jobs] == ["done"] * 3, jobs
    officer_uid = world.admin.call("res.users", "search", [("login", "=", world.users["officer"])])[0]
    assert {j["user_id"][0] for j in jobs} == {officer_uid}  # run as the officer who asked
    assert world.admin.call("g2p.cycle", "read", [cycle], ["state"])[0]["state"] == "to_approve"
    rows = world.admin.call(
        "g2p.entitlement.inkind",
        "search_read",
        [("cycle_id", "=", cycle)],
        fields=["state", "submitted_by_id", "date_submitted"],
    )
    assert len(rows) == 2 * households
    assert {r["state"] for r in rows} == {"pending_validation"}
    assert {r["submitted_by_id"][0] for r in rows} == {officer_uid}
    messages = world.admin.call(
        "mail.message", "search_read", [("model", "=", "g2p.cycle"), ("res_id", "=", cycle)], fields=["body"]
    )
    assert any(f"{2 * households} entitlements submitted for validation" in m["body"] for m in messages)

    # a job run again (requeued as a retry would) submits nothing twice
    before = {r["id"]: r["date_submitted"] for r in rows}
    world.admin.call("queue.job", "requeue", [jobs[0]["id"]])
    wait_for(lambda: submission_jobs(world.admin, cycle)[0]["state"] == "done", 120, "the requeued job")
    assert submission_jobs(world.admin, cycle)[0]["result"] == "0 entitlements submitted"
    again = world.admin.call(
        "g2p.entitlement.inkind", "search_read", [("cycle_id", "=", cycle)], fields=["date_submitted"]
    )
    assert {r["id"]: r["date_submitted"] for r in again} == before

    # and the cycle goes on: approved, its entitlements approved as jobs
    world.as_role("approver").call("g2p.cycle", "approve", [cycle])
    validator = world.as_role("validator")
    assert validator.call("g2p.cycle", "validate_entitlement", [cycle]) == 0
    validator.wait_unlocked("g2p.cycle", cycle, timeout=300)
    assert {r["state"] for r in world.entitlements(cycle)} == {"approved"}
