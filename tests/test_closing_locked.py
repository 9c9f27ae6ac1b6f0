"""Closing (or ending, End cycle) a cycle while one of its entitlements is being redeemed (its row locked by
another transaction): the closing must leave that entitlement for the next run instead of
ending the cycle with it still open and its stock still reserved."""

from datetime import date, timedelta

import psycopg2

from tests.scenario import World


def test_closing_leaves_a_locked_entitlement_for_the_next_run(odoo_server, test_db):
    start = date.today() - timedelta(days=29)
    world = World(odoo_server.url, test_db, households=4, items=(("Rice", 10.0),), start_date=start)
    cycle = world.approved_cycle()
    admin = world.admin
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    admin.call("g2p.cycle", "write", [cycle], {"end_date": yesterday})
    rows = world.entitlements(cycle)
    assert len(rows) == 4 and {r["state"] for r in rows} == {"approved"}
    locked_id = rows[0]["id"]

    # A redemption in flight: another transaction holds the entitlement's row lock.
    cnx = psycopg2.connect(dbname=test_db)
    try:
        cur = cnx.cursor()
        cur.execute("SELECT id FROM g2p_entitlement_inkind WHERE id = %s FOR UPDATE", [locked_id])
        approver = world.as_role("approver")
        approver.call_void("g2p.cycle", "action_close", [cycle])
        states = {r["id"]: r["state"] for r in world.entitlements(cycle)}
        assert admin.call("g2p.cycle", "read", [cycle], ["state"])[0]["state"] == "approved"
        assert states[locked_id] == "approved", states
        assert [s for i, s in states.items() if i != locked_id] == ["expired"] * 3, states
    finally:
        cnx.rollback()  # the redemption ends (here: without redeeming)
        cnx.close()

    # The next run (the scheduled action the first one triggered, or the button) finishes.
    approver.call_void("g2p.cycle", "action_close", [cycle])
    assert admin.call("g2p.cycle", "read", [cycle], ["state"])[0]["state"] == "ended"
    assert {r["state"] for r in world.entitlements(cycle)} == {"expired"}
    world.check_stock(cycle)


def test_end_cycle_leaves_a_locked_entitlement_to_the_scheduled_action(odoo_server, test_db):
    """End cycle (``mark_ended``) while an entitlement is being redeemed: the others are
    settled, the cycle stays open and locked (``end_requested``) instead of ending over
    it, and the closing's scheduled action ends it once the redemption is over."""
    world = World(odoo_server.url, test_db, households=4, items=(("Rice", 10.0),))
    cycle = world.approved_cycle()
    admin = world.admin
    rows = world.entitlements(cycle)
    locked_id = rows[0]["id"]
    approver = world.as_role("approver")
    cnx = psycopg2.connect(dbname=test_db)
    try:
        cnx.cursor().execute("SELECT id FROM g2p_entitlement_inkind WHERE id = %s FOR UPDATE", [locked_id])
        approver.call_void("g2p.cycle", "mark_ended", [cycle])
        state = admin.call("g2p.cycle", "read", [cycle], ["state", "locked", "end_requested"])[0]
        assert (state["state"], state["locked"], state["end_requested"]) == ("approved", True, True), state
        states = {r["id"]: r["state"] for r in world.entitlements(cycle)}
        assert states[locked_id] == "approved", states
        assert [s for i, s in states.items() if i != locked_id] == ["expired"] * 3, states
    finally:
        cnx.rollback()  # the redemption ends (here: without redeeming)
        cnx.close()
    # the scheduled action (run now rather than in a minute) finishes and unlocks
    cron = admin.ref("spp_auto_update_entitlements.ir_cron_close_ended_cycles")
    admin.call_void("ir.cron", "method_direct_trigger", [cron])
    state = admin.call("g2p.cycle", "read", [cycle], ["state", "locked", "end_requested"])[0]
    assert (state["state"], state["locked"], state["end_requested"]) == ("ended", False, False), state
    assert {r["state"] for r in world.entitlements(cycle)} == {"expired"}
    world.check_stock(cycle)
