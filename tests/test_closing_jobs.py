"""Closing above the async threshold through the real job runner (issue 24, item 1).

A server with workers and the queue_job runner; the approver calls ``action_close``
(end date passed) or ``mark_ended`` over XML-RPC on a cycle above the threshold: the
request only locks the cycle and queues the jobs; range jobs settle slices of the open
entitlements, the last job posts what was handed out, releases the rest, ends and
unlocks the cycle. A job requeued after it was done (what a retry after a lost answer
does) changes nothing. (A job that fails for good is tested in process,
spp_auto_update_entitlements/tests/test_end_cycle.py: the runner logs its traceback as an
ERROR, which would fail this server's log check.)
"""

import time
from datetime import date, timedelta

from tests.scenario import World
from tests.test_approval_jobs import small_jobs, wait_for  # noqa: F401 - the fixture

RANGE, FINISH = "_job_close_range", "_job_finish_closing"


def closing_jobs(admin, cycle):
    return admin.call(
        "queue.job",
        "search_read",
        [("func_string", "=like", f"g2p.cycle({cycle},)._job_%clos%")],
        fields=["state", "result", "method_name", "exc_info", "user_id"],
        order="id",
    )


def cycle_row(admin, cycle):
    return admin.call("g2p.cycle", "read", [cycle], ["state", "locked", "end_requested"])[0]


def world_with_handouts(odoo_server, test_db, households=30):
    """An approved cycle (started 29 days ago, one product) where the first 5 households
    took half of their rice. :return: (world, cycle)"""
    start = date.today() - timedelta(days=29)
    world = World(odoo_server.url, test_db, households=households, items=(("Rice", 10.0),), start_date=start)
    cycle = world.approved_cycle()
    device = world.device(0)
    for n, row in enumerate(world.entitlements(cycle)[:5]):
        device("redeem", row["code"], 5.0, world.points[0]["id"], f"close-{world.tag}-{n}")
    return world, cycle


def test_closing_as_jobs_through_the_runner(odoo_server, test_db, small_jobs):  # noqa: F811
    world, cycle = world_with_handouts(odoo_server, test_db)  # 30 open > threshold 20
    admin = world.admin
    approver = world.as_role("approver")
    admin.call("g2p.cycle", "write", [cycle], {"end_date": (date.today() - timedelta(days=1)).isoformat()})
    messages = admin.call(
        "mail.message", "search_count", [("model", "=", "g2p.cycle"), ("res_id", "=", cycle)]
    )
    t0 = time.time()
    assert approver.call("g2p.cycle", "action_close", [cycle]) is True
    answered = time.time() - t0
    wait_for(lambda: cycle_row(admin, cycle)["state"] == "ended", 300, "the closing jobs")
    row = cycle_row(admin, cycle)
    assert (row["locked"], row["end_requested"]) == (False, False), row
    jobs = closing_jobs(admin, cycle)
    # jobs of 25: the first 25 open entitlements and the last 5, then the last job; all as the approver
    assert {j["state"] for j in jobs} == {"done"}, jobs
    assert sorted((j["method_name"], j["result"]) for j in jobs) == [
        (RANGE, "25 entitlements settled"),
        (RANGE, "5 entitlements settled"),
        (FINISH, "cycle ended"),
    ], jobs
    assert {j["user_id"][0] for j in jobs} == {approver.uid}
    rows = world.entitlements(cycle)
    assert sorted(r["state"] for r in rows) == ["expired"] * 25 + ["partially_redeemed"] * 5
    world.check_ledger(cycle)
    world.check_stock(cycle)  # handed out posted, nothing reserved any more
    summary = admin.call(
        "mail.message",
        "search_read",
        [("model", "=", "g2p.cycle"), ("res_id", "=", cycle), ("body", "ilike", "Cycle closed")],
        fields=["body"],
    )
    assert len(summary) == 1, summary
    print(f"action_close answered in {answered:.2f} s")

    # each job requeued (as a retry after a lost answer) changes nothing twice
    before = {r["id"]: r["state"] for r in rows}
    stock = world.stock()
    count = admin.call("mail.message", "search_count", [("model", "=", "g2p.cycle"), ("res_id", "=", cycle)])
    for job in jobs:
        admin.call("queue.job", "requeue", [job["id"]])
    wait_for(lambda: {j["state"] for j in closing_jobs(admin, cycle)} == {"done"}, 120, "the requeued jobs")
    again = closing_jobs(admin, cycle)
    assert sorted((j["method_name"], j["result"]) for j in again) == [
        (RANGE, "closing not under way (cycle ended): nothing done"),
        (RANGE, "closing not under way (cycle ended): nothing done"),
        (FINISH, "already ended"),
    ], again
    assert {r["id"]: r["state"] for r in world.entitlements(cycle)} == before
    assert world.stock() == stock
    assert (
        admin.call("mail.message", "search_count", [("model", "=", "g2p.cycle"), ("res_id", "=", cycle)])
        == count
    )
    assert count > messages
