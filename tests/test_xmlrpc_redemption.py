"""Redemption over XML-RPC against a real Odoo server with 2 workers.

An administrator sets everything up over XML-RPC (program, cash manager with a
validation group, registrants, a cycle prepared, approved and validated, a service point
with an agent and a device API key); the agent's devices then redeem concurrently:

- 20 clients (threads, each with its own connection) redeeming the same entitlement in
  parts never take more than its balance, and the transactions add up to
  ``amount_redeemed``;
- retries with the same reference (one after the other, or 20 at once) add nothing;
- the agent's API key works and a wrong key is refused.
"""

import threading
import time
import uuid
import xmlrpc.client
from datetime import datetime
from pathlib import Path

import psycopg2
import pytest
from g2p_client import Client, Refusal

from tests.scenario import backends_waiting_on_lock

ADMIN = ("admin", "admin")
CLIENTS = 20
RACE = ("race_a", "race_b", "race_c", "race_d")
ENTITLEMENT_AMOUNT = 100.0


@pytest.fixture(scope="module")
def world(odoo_server, test_db):
    """Everything made over XML-RPC as admin: a service point with an agent and a device
    key; a cash program whose approved cycle gives each of 6 households 100.00 at that
    point (and one household at another point)."""
    admin = Client(odoo_server.url, test_db, *ADMIN)
    tag = uuid.uuid4().hex[:6].upper()
    point_id = admin("spp.service.point", "create", {"name": f"Redemption point {tag}", "code": f"RDM-{tag}"})
    other_point_id = admin(
        "spp.service.point", "create", {"name": f"Other point {tag}", "code": f"RDM-{tag}-2"}
    )
    login = f"rdm_agent_{tag.lower()}"
    agent_id = admin(
        "res.users",
        "create",
        {
            "name": f"Redemption agent {tag}",
            "login": login,
            "groups_id": [(6, 0, [admin.ref("spp_service_points.group_service_point_agent")])],
            "service_point_ids": [(4, point_id)],
        },
    )
    key = admin("res.users", "action_generate_api_key_for_device", [agent_id], f"Tablet {tag}")

    households = {
        name: admin(
            "res.partner",
            "create",
            {"name": f"{name} {tag}", "is_registrant": True, "is_group": True, "service_point_id": point_id},
        )
        for name in ("concurrent", "retry", "same_ref", "key", "reuse", "reverse", "held", "batch", *RACE)
    }
    households["elsewhere"] = admin(
        "res.partner",
        "create",
        {
            "name": f"elsewhere {tag}",
            "is_registrant": True,
            "is_group": True,
            "service_point_id": other_point_id,
        },
    )
    validation_group_id = admin(
        "res.groups", "create", {"name": f"Validators {tag}", "users": [(4, admin.uid)]}
    )
    program_id = admin(
        "g2p.program",
        "create",
        {
            "name": f"Redemption program {tag}",
            "eligibility_domain": "[('id', 'in', %s)]" % list(households.values()),
        },
    )
    admin(
        "g2p.program.entitlement.manager.cash",
        "create",
        {
            "program_id": program_id,
            "validation_group_id": validation_group_id,
            "item_ids": [(0, 0, {"amount": ENTITLEMENT_AMOUNT})],
            # one admin prepares, approves the cycle and validates here (setting the
            # scene, not what is tested): segregation of duties would refuse it
            "segregation_of_duties": False,
        },
    )
    assert admin("g2p.program", "enroll_eligible_registrants", [program_id]) == len(households)
    cycle_id = admin("g2p.program", "create_new_cycle", [program_id])
    assert admin("g2p.cycle", "prepare_entitlement", [cycle_id]) == len(households)
    admin("g2p.cycle", "to_approve", [cycle_id])
    admin("g2p.cycle", "approve", [cycle_id])
    assert admin("g2p.cycle", "validate_entitlement", [cycle_id]) == len(households)
    rows = admin(
        "g2p.entitlement",
        "search_read",
        [("cycle_id", "=", cycle_id)],
        fields=["id", "code", "partner_id", "state", "service_point_id"],
    )
    by_partner = {row["partner_id"][0]: row for row in rows}
    entitlements = {name: by_partner[pid] for name, pid in households.items()}
    assert {row["state"] for row in rows} == {"approved"}
    assert entitlements["concurrent"]["service_point_id"][0] == point_id
    return {
        "admin": admin,
        "tag": tag,
        "point_id": point_id,
        "login": login,
        "agent_id": agent_id,
        "key": key,
        "entitlements": entitlements,
    }


def agent_client(odoo_server, test_db, world):
    """A device: an XML-RPC client calling as the agent with the device key."""
    device = Client(odoo_server.url, test_db, world["login"], world["key"], uid=world["agent_id"])

    def call(method, *args):
        return device.call("spp.entitlement.transaction", method, *args)

    return call


def entitlement_state(world, name):
    admin = world["admin"]
    ent = world["entitlements"][name]
    row = admin("g2p.entitlement", "read", [ent["id"]], ["amount_redeemed", "balance", "state"])[0]
    transactions = admin(
        "spp.entitlement.transaction",
        "search_read",
        [("entitlement_id", "=", ent["id"])],
        fields=["net_amount", "transaction_type", "reference"],
    )
    return row, transactions


def run_threads(target, count):
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "every client got an answer"


def test_agent_api_key_works_and_a_wrong_key_is_refused(odoo_server, test_db, world):
    common = odoo_server.proxy("common")
    assert common.authenticate(test_db, world["login"], world["key"], {}) == world["agent_id"]
    code = world["entitlements"]["key"]["code"]
    answer = agent_client(odoo_server, test_db, world)("lookup", code)
    assert (
        answer["code"] == code and answer["balance"] == ENTITLEMENT_AMOUNT and answer["state"] == "approved"
    )

    wrong = world["key"][:-1] + ("0" if world["key"][-1] != "0" else "1")
    assert common.authenticate(test_db, world["login"], wrong, {}) is False
    device = Client(odoo_server.url, test_db, world["login"], wrong, uid=world["agent_id"])
    with pytest.raises(Refusal) as refused:
        device.call("spp.entitlement.transaction", "redeem", code, 10.0, world["point_id"], "WRONG-KEY")
    assert refused.value.faultCode == 3  # AccessDenied
    row, transactions = entitlement_state(world, "key")
    assert row["amount_redeemed"] == 0.0 and transactions == []


def test_20_concurrent_clients_never_exceed_the_balance(odoo_server, test_db, world):
    code = world["entitlements"]["concurrent"]["code"]
    part = 2.5  # 20 clients x 4 parts x 2.5 = 200.0 asked of 100.0
    successes, refusals, faults = [], [], []
    lock = threading.Lock()

    def client(i):
        call = agent_client(odoo_server, test_db, world)
        for k in range(4):
            reference = f"{world['tag']}-C{i}-{k}"
            try:
                answer = call("redeem", code, part, world["point_id"], reference)
                with lock:
                    successes.append((reference, answer))
            except Refusal as fault:
                with lock:
                    (refusals if fault.faultCode == 2 else faults).append(fault.faultString[:300])

    run_threads(client, CLIENTS)
    assert faults == [], "only refusals a device can act on (fault code 2)"
    assert all(r.startswith(("[over_balance]", "[fully_redeemed]")) for r in refusals), refusals[:3]
    assert len(successes) == ENTITLEMENT_AMOUNT / part
    assert len(successes) + len(refusals) == CLIENTS * 4
    row, transactions = entitlement_state(world, "concurrent")
    assert row["amount_redeemed"] == ENTITLEMENT_AMOUNT
    assert row["balance"] == 0.0
    assert row["state"] == "redeemed"
    assert sum(t["net_amount"] for t in transactions) == row["amount_redeemed"]
    assert len(transactions) == len(successes)
    # Every balance answered is distinct: no two redemptions saw the same balance.
    balances = sorted(answer["balance"] for _ref, answer in successes)
    assert balances == [ENTITLEMENT_AMOUNT - part * n for n in range(1, len(successes) + 1)][::-1]

    # Every client retries its requests (e.g. after a timeout): same answers, nothing added.
    answers = dict(successes)
    retried = {}

    def retry(i):
        call = agent_client(odoo_server, test_db, world)
        for reference in [ref for ref in answers if ref.startswith(f"{world['tag']}-C{i}-")]:
            retried[reference] = call("redeem", code, part, world["point_id"], reference)

    run_threads(retry, CLIENTS)
    assert retried == answers
    assert entitlement_state(world, "concurrent") == (row, transactions)


def test_retries_with_the_same_reference_add_nothing(odoo_server, test_db, world):
    call = agent_client(odoo_server, test_db, world)
    code = world["entitlements"]["retry"]["code"]
    reference = f"{world['tag']}-RETRY"
    first = call("redeem", code, 30.0, world["point_id"], reference)
    assert first["balance"] == 70.0 and first["state"] == "approved"
    for _attempt in range(3):
        assert call("redeem", code, 30.0, world["point_id"], reference) == first
    with pytest.raises(Refusal) as reused:
        call("redeem", code, 31.0, world["point_id"], reference)
    assert reused.value.faultCode == 2
    assert reused.value.faultString.startswith("[reference_reused] ")
    assert reused.value.error_code == "reference_reused"
    row, transactions = entitlement_state(world, "retry")
    assert row["amount_redeemed"] == 30.0 and len(transactions) == 1


def test_concurrent_retries_of_one_reference_count_once(odoo_server, test_db, world):
    code = world["entitlements"]["same_ref"]["code"]
    reference = f"{world['tag']}-SAME"
    answers, faults = [], []

    def client(_i):
        call = agent_client(odoo_server, test_db, world)
        try:
            answers.append(call("redeem", code, 40.0, world["point_id"], reference))
        except Refusal as fault:
            faults.append(fault.faultString[:300])

    run_threads(client, CLIENTS)
    assert faults == []
    assert len(answers) == CLIENTS
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["balance"] == 60.0
    row, transactions = entitlement_state(world, "same_ref")
    assert row["amount_redeemed"] == 40.0 and len(transactions) == 1


def test_concurrent_reuse_of_a_reference_with_other_payloads(odoo_server, test_db, world):
    """Clients sending one reference with different amounts at once: one wins, the
    others are told the reference is taken."""
    code = world["entitlements"]["reuse"]["code"]
    reference = f"{world['tag']}-REUSE"
    answers, refusals, faults = [], [], []

    def client(i):
        call = agent_client(odoo_server, test_db, world)
        try:
            answers.append((i, call("redeem", code, 1.0 + i, world["point_id"], reference)))
        except Refusal as fault:
            (refusals if fault.faultCode == 2 else faults).append(fault.faultString[:300])

    run_threads(client, 8)
    assert faults == []
    assert len(answers) == 1 and len(refusals) == 7
    assert all(r.startswith("[reference_reused] ") for r in refusals), refusals[:2]
    winner, answer = answers[0]
    row, transactions = entitlement_state(world, "reuse")
    assert row["amount_redeemed"] == 1.0 + winner and len(transactions) == 1


def test_one_reference_for_different_entitlements_at_once(odoo_server, test_db, world):
    """Devices sending one reference for different beneficiaries at once: the entitlements'
    row locks do not serialize them, the reference's unique constraint does. One wins, the
    others are told the reference is taken; nothing else is written."""
    for round_ in range(3):
        reference = f"{world['tag']}-RACE{round_}"
        answers, refusals, faults = [], [], []

        def client(i, reference=reference, answers=answers, refusals=refusals, faults=faults):
            call = agent_client(odoo_server, test_db, world)
            code = world["entitlements"][RACE[i]]["code"]
            try:
                answers.append((i, call("redeem", code, 1.0, world["point_id"], reference)))
            except Refusal as fault:
                (refusals if fault.faultCode == 2 else faults).append(fault.faultString[:300])

        run_threads(client, len(RACE))
        assert faults == []
        assert len(answers) == 1 and len(refusals) == len(RACE) - 1
        assert all(r.startswith("[reference_reused] ") for r in refusals), refusals[:2]
        transactions = world["admin"](
            "spp.entitlement.transaction",
            "search_read",
            [("reference", "=", reference)],
            fields=["entitlement_id", "net_amount"],
        )
        winner = world["entitlements"][RACE[answers[0][0]]]["id"]
        assert [(t["entitlement_id"][0], t["net_amount"]) for t in transactions] == [(winner, 1.0)]
    for name in RACE:
        row, transactions = entitlement_state(world, name)
        assert row["amount_redeemed"] == sum(t["net_amount"] for t in transactions)


def test_reverse_and_offline_batch_over_xmlrpc(odoo_server, test_db, world):
    call = agent_client(odoo_server, test_db, world)
    code = world["entitlements"]["reverse"]["code"]
    tag = world["tag"]
    lines = [
        {"code": code, "quantity": 100, "reference": f"{tag}-B1", "device_time": "2024-03-01 08:00:00"},
        {"code": code, "quantity": float("nan"), "reference": f"{tag}-B2", "device_time": False},
        {"code": world["entitlements"]["elsewhere"]["code"], "quantity": 1, "reference": f"{tag}-B3"},
    ]
    first = call("redeem_batch", world["point_id"], lines)
    assert first[0]["state"] == "redeemed"
    assert first[1]["reference"] == f"{tag}-B2" and first[1]["error"].startswith("[bad_quantity] ")
    assert first[2]["error"].startswith("[wrong_service_point] ")
    assert call("redeem_batch", world["point_id"], lines) == first
    reversal = call("reverse", f"{tag}-B1", world["point_id"], "Handed to the wrong person")
    assert reversal["balance"] == ENTITLEMENT_AMOUNT and reversal["state"] == "approved"
    assert call("reverse", f"{tag}-B1", world["point_id"], "again") == reversal
    offline = call("entitlements_for_service_point", world["point_id"])
    assert code in {row["code"] for row in offline}
    with pytest.raises(Refusal) as bad:
        call("redeem", code, float("inf"), world["point_id"], f"{tag}-INF")
    assert bad.value.faultCode == 2 and bad.value.faultString.startswith("[bad_quantity] ")
    assert bad.value.error_code == "bad_quantity"
    row, transactions = entitlement_state(world, "reverse")
    assert row["amount_redeemed"] == 0.0 and row["state"] == "approved"
    assert sum(t["net_amount"] for t in transactions) == 0.0 and len(transactions) == 2


def waiting_on_ledger(test_db):
    """Backends of ``test_db`` waiting for a lock in a statement writing the ledger."""
    return backends_waiting_on_lock(test_db, "%INSERT INTO%spp_entitlement_transaction%")


def test_batch_meets_a_reference_taken_meanwhile(odoo_server, test_db, world):
    """An offline batch inserts its new redemptions in one statement. Here another device's
    redeem takes one of the batch's references (for another beneficiary) after the batch
    read its references and before its insert: the insert meets it, the batch is rolled
    back to its savepoint and decided again line by line. That line is refused
    ``[reference_reused]`` as a single call would be; the others are redeemed once.

    The timing is forced: a third connection holds the other beneficiary's partner row,
    so the other redeem waits, its ledger row inserted but not committed, on its foreign
    key check; the batch then waits on that row's reference; then the holder lets go."""
    tag = world["tag"]
    reference = f"{tag}-TAKEN"
    held, batch = world["entitlements"]["held"], world["entitlements"]["batch"]
    lines = [
        {"code": batch["code"], "quantity": 10.0, "reference": f"{tag}-FIRST"},
        {"code": batch["code"], "quantity": 20.0, "reference": reference},
        {"code": batch["code"], "quantity": 30.0, "reference": f"{tag}-LAST"},
    ]
    log = Path(odoo_server.log_path)
    fallbacks = log.read_text(errors="replace").count("decided line by line") if log.exists() else 0
    answers = {}

    def send(i):
        call = agent_client(odoo_server, test_db, world)
        call("lookup", batch["code"])  # logged in before the race
        if i == 0:
            answers[i] = call("redeem", held["code"], 10.0, world["point_id"], reference)
        else:
            wait_for(
                lambda: waiting_on_ledger(test_db) >= 1, 60, "the single redeem waiting after its insert"
            )
            answers[i] = call("redeem_batch", world["point_id"], lines)

    holder = psycopg2.connect(dbname=test_db)
    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    try:
        holder.cursor().execute(
            "SELECT id FROM res_partner WHERE id = %s FOR UPDATE", [held["partner_id"][0]]
        )
        for thread in threads:
            thread.start()
        wait_for(lambda: waiting_on_ledger(test_db) >= 2, 60, "the batch waiting on the taken reference")
    finally:
        holder.rollback()
        holder.close()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "both devices got an answer"
    assert answers[0]["balance"] == ENTITLEMENT_AMOUNT - 10.0
    first, taken, last = answers[1]
    assert (first["balance"], last["balance"]) == (90.0, 60.0), answers[1]
    assert taken["reference"] == reference and taken["error"].startswith("[reference_reused] "), taken
    assert log.read_text(errors="replace").count("decided line by line") == fallbacks + 1
    row, transactions = entitlement_state(world, "batch")
    assert (row["amount_redeemed"], row["balance"]) == (40.0, 60.0)
    assert sorted(t["reference"] for t in transactions) == [f"{tag}-FIRST", f"{tag}-LAST"]
    row, transactions = entitlement_state(world, "held")
    assert row["amount_redeemed"] == 10.0 and [t["reference"] for t in transactions] == [reference]


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_device_times_over_xmlrpc(odoo_server, test_db, world):
    """ISO 8601 in its usual forms and XML-RPC's own dateTime reach the ledger as UTC; a
    date without a time is refused with its code (issue 21 item 6)."""
    call = agent_client(odoo_server, test_db, world)
    code = world["entitlements"]["reverse"]["code"]
    tag = world["tag"]
    sent = {
        f"{tag}-T1": "2026-12-07T10:15:00.123Z",  # a phone's toISOString()
        f"{tag}-T2": "2026-12-07T18:15:00+08:00",
        f"{tag}-T3": xmlrpc.client.DateTime(datetime(2026, 12, 7, 10, 15)),  # <dateTime.iso8601>
    }
    lines = [
        {"code": code, "quantity": 1, "reference": ref, "device_time": time} for ref, time in sent.items()
    ]
    lines.append({"code": code, "quantity": 1, "reference": f"{tag}-T4", "device_time": "2026-12-07"})
    answers = call("redeem_batch", world["point_id"], lines)
    assert [a.get("state") for a in answers[:3]] == ["approved"] * 3, answers
    assert answers[3]["error"].startswith("[bad_device_time] ")
    rows = world["admin"](
        "spp.entitlement.transaction",
        "search_read",
        [("reference", "in", list(sent))],
        fields=["reference", "device_time"],
    )
    assert {r["reference"]: r["device_time"] for r in rows} == {
        f"{tag}-T1": "2026-12-07 10:15:00",  # Odoo stores datetimes to the second
        f"{tag}-T2": "2026-12-07 10:15:00",
        f"{tag}-T3": "2026-12-07 10:15:00",
    }
