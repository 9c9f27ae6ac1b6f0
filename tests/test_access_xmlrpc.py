"""Access rights and bad input over XML-RPC, against a real server (2 workers).

A representative subset of the access matrix of
``spp_entitlement_transactions/tests/test_access_matrix.py`` (the design as data),
called over the wire as each role with its own login: officer, validator, cycle
approver, manager, agent (of point A), a plain internal user and a portal user. A
refusal must come as the fault code the design names: **4** (``AccessError``) for a role
that may not, **2** (``UserError``/``ValidationError``) for a business refusal, never
**1** (any other exception: a defect). An agent never reaches point B's data.

Then a small fuzz of the redemption API over the wire (hypothesis): hostile values
that XML-RPC can carry are refused with fault code 2 or 4 and a bracketed error code,
and change nothing. ``G2P_LONG_TESTS=1`` runs more examples.
"""

import math
import os
import uuid

import pytest
from g2p_client import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ADMIN = ("admin", "admin")
LONG = os.environ.get("G2P_LONG_TESTS") == "1"
ROLES = ("officer", "validator", "approver", "manager", "agent", "internal", "portal")
GROUPS = {
    "officer": "g2p_programs_ext.group_program_officer",
    "validator": "g2p_programs_ext.group_program_validator",
    "approver": "g2p_programs_ext.group_cycle_approver",
    "manager": "g2p_programs_ext.group_program_manager",
    "agent": "spp_service_points.group_service_point_agent",
    "internal": "base.group_user",
    "portal": "base.group_portal",
}
OK = 0  # "allowed" in the tables below; else the fault code expected
READS = {"read", "search", "search_read", "lookup", "entitlements_for_service_point"}  # change nothing


@pytest.fixture(scope="module")
def world(odoo_server, test_db):
    """Made over XML-RPC as admin: points A and B; one user per role (the agent serves
    A); a cash program whose approved cycle gives 2 households at A and 2 at B 100.00
    each, one of A's already partly redeemed by the agent."""
    admin = Client(odoo_server.url, test_db, *ADMIN)
    tag = uuid.uuid4().hex[:6].upper()
    point_a = admin("spp.service.point", "create", {"name": f"Access A {tag}", "code": f"ACC-A-{tag}"})
    point_b = admin("spp.service.point", "create", {"name": f"Access B {tag}", "code": f"ACC-B-{tag}"})
    validation_group = admin(
        "res.groups", "create", {"name": f"Access validators {tag}", "users": [(4, admin.uid)]}
    )
    users = {}
    for role in ROLES:
        login = f"acc_{role}_{tag.lower()}"
        groups = [admin.ref(GROUPS[role])]
        if role == "validator":
            groups.append(validation_group)
        vals = {
            "name": f"{role} {tag}",
            "login": login,
            "password": f"pw-{tag}",
            "groups_id": [(6, 0, groups)],
        }
        if role == "agent":
            vals["service_point_ids"] = [(4, point_a)]
        admin("res.users", "create", vals)
        users[role] = Client(odoo_server.url, test_db, login, f"pw-{tag}")
    houses = {}
    for name, point in (("a1", point_a), ("a2", point_a), ("b1", point_b), ("b2", point_b)):
        houses[name] = admin(
            "res.partner",
            "create",
            {
                "name": f"Access house {name} {tag}",
                "is_registrant": True,
                "is_group": True,
                "service_point_id": point,
            },
        )
    program = admin(
        "g2p.program",
        "create",
        {"name": f"Access program {tag}", "eligibility_domain": "[('id', 'in', %s)]" % list(houses.values())},
    )
    admin(
        "g2p.program.entitlement.manager.cash",
        "create",
        {
            "program_id": program,
            "validation_group_id": validation_group,
            "item_ids": [(0, 0, {"amount": 100.0})],
            # one admin prepares, approves the cycle and validates here (setting the
            # scene, not what is tested): segregation of duties would refuse it
            "segregation_of_duties": False,
        },
    )
    admin("g2p.program", "enroll_eligible_registrants", [program])
    cycle = admin("g2p.program", "create_new_cycle", [program])
    admin("g2p.cycle", "prepare_entitlement", [cycle])
    admin("g2p.cycle", "to_approve", [cycle])
    admin("g2p.cycle", "approve", [cycle])
    admin("g2p.cycle", "validate_entitlement", [cycle])
    rows = admin("g2p.entitlement", "search_read", [("cycle_id", "=", cycle)], fields=["partner_id", "code"])
    by_partner = {row["partner_id"][0]: row for row in rows}
    ents = {name: by_partner[pid] for name, pid in houses.items()}
    users["agent"]("spp.entitlement.transaction", "redeem", ents["a2"]["code"], 10.0, point_a, f"ACC-{tag}-R")
    return {
        "admin": admin,
        "users": users,
        "tag": tag,
        "point_a": point_a,
        "point_b": point_b,
        "houses": houses,
        "program": program,
        "cycle": cycle,
        "ents": ents,
    }


def ledger(world, with_cycle=True):
    """What a refused call must not change: the balances, states and number of
    transactions of the cycle's entitlements, and the cycle's state (as admin)."""
    admin = world["admin"]
    rows = admin(
        "g2p.entitlement",
        "search_read",
        [("cycle_id", "=", world["cycle"])],
        fields=["amount_redeemed", "state", "code", "transaction_count"],
        order="id",
    )
    if not with_cycle:
        return rows
    return rows, admin("g2p.cycle", "read", [world["cycle"]], ["state"])[0]["state"]


def expect(world, role, cells):
    """Run each cell (model, method, args, expected) as ``role``. The cells expected to
    be refused (and the reads) run first: together they must leave the ledger as it was;
    then the allowed calls that change something."""
    client = world["users"][role]
    wrong = []
    first = [cell for cell in cells if cell[3] != OK or cell[1] in READS]
    last = [cell for cell in cells if cell[3] == OK and cell[1] not in READS]
    before = ledger(world)
    for group in (first, last):
        for model, method, args, expected in group:
            code, answer = client.outcome(model, method, *args)
            if code != expected:
                wrong.append(
                    (role, model, method, "expected %s, got %s: %s" % (expected, code, str(answer)[:300]))
                )
        if group is first and ledger(world) != before:
            wrong.append((role, "the refused calls changed something"))
    return wrong


def test_matrix_over_xmlrpc(world):
    """The subset of the matrix, role by role (0: allowed; 4: AccessError; 2: UserError)."""
    w = world
    a1, b1 = w["houses"]["a1"], w["houses"]["b1"]
    ent_a1, ent_b1 = w["ents"]["a1"], w["ents"]["b1"]
    T = "spp.entitlement.transaction"
    back_office = ("officer", "validator", "approver", "manager")
    wrong = []
    for role in ROLES:
        is_back = role in back_office
        reads = OK if is_back or role == "agent" else 4
        cells = [
            # reading what a role may see (the agent: point A only)
            ("res.partner", "read", [[a1], ["name"]], OK if reads == OK else 4),
            ("res.partner", "read", [[b1], ["name"]], OK if is_back else 4),
            ("g2p.entitlement", "read", [[ent_a1["id"]], ["state"]], reads),
            ("g2p.entitlement", "read", [[ent_b1["id"]], ["state"]], OK if is_back else 4),
            ("g2p.program", "read", [[w["program"]], ["name"]], OK if is_back else 4),
            ("spp.service.point", "read", [[w["point_b"]], ["name"]], OK if is_back else 4),
            # configuring: managers only; lifecycle fields: nobody
            ("g2p.program", "write", [[w["program"]], {"name": "Renamed"}], OK if role == "manager" else 4),
            (
                "g2p.cycle",
                "write",
                [[w["cycle"]], {"state": "draft"}],
                2 if role in ("officer", "approver", "manager") else 4,
            ),
            (
                "g2p.entitlement",
                "write",
                [[ent_a1["id"]], {"amount_redeemed": 0.0, "state": "approved"}],
                2 if role == "manager" else 4,
            ),
            (
                T,
                "create",
                [{"entitlement_id": ent_a1["id"], "transaction_type": "redemption", "amount": 1.0}],
                4,
            ),
            # workflow methods
            ("g2p.cycle", "approve", [[w["cycle"]]], 2 if role in ("approver", "manager") else 4),
            ("g2p.cycle", "prepare_entitlement", [[w["cycle"]]], 2 if role in ("officer", "manager") else 4),
            # approved already: [wrong_state] for whoever holds the role
            (
                "g2p.entitlement",
                "approve_entitlement",
                [[ent_a1["id"]]],
                2 if role in ("validator", "manager") else 4,
            ),
            ("g2p.entitlement", "action_cancel", [[ent_b1["id"]]], OK if role == "manager" else 4),
            ("res.users", "action_generate_api_key_for_device", [[w["users"]["agent"].uid], "Tablet"], 4),
            # private methods are not reachable
            (T, "_check_code", [ent_a1["code"]], 4),
            ("g2p.cycle", "_transition", [[w["cycle"]], "approve"], 4),
            # the redemption API
            (T, "lookup", [ent_a1["code"]], OK if reads == OK else 4),
            (T, "lookup", [ent_b1["code"]], OK if is_back else (2 if role == "agent" else 4)),
            (T, "redeem", [ent_a1["code"], 1.0, w["point_a"], f"X-{role}"], OK if role == "agent" else 4),
            (T, "redeem", [ent_b1["code"], 1.0, w["point_b"], f"Y-{role}"], 4),
            (T, "redeem", [ent_b1["code"], 1.0, w["point_a"], f"Z-{role}"], 2 if role == "agent" else 4),
            (T, "entitlements_for_service_point", [w["point_b"]], OK if is_back else 4),
            (T, "reverse", [f"ACC-{w['tag']}-R", w["point_b"], "not mine"], 4),
        ]
        wrong += expect(world, role, cells)
    assert not wrong, "\n".join(map(str, wrong))


def test_agent_never_reaches_point_b(world):
    agent = world["users"]["agent"]
    houses, ents = world["houses"], world["ents"]
    own = {houses["a1"], houses["a2"]}
    found = set(
        agent("res.partner", "search", [("is_registrant", "=", True), ("name", "ilike", world["tag"])])
    )
    assert found == own
    assert agent("res.partner", "name_search", f"Access house b1 {world['tag']}") == []
    groups = agent(
        "g2p.entitlement",
        "read_group",
        [("cycle_id", "=", world["cycle"])],
        ["service_point_id"],
        ["service_point_id"],
    )
    assert [g["service_point_id"][0] for g in groups] == [world["point_a"]]
    rows = agent("spp.entitlement.transaction", "search_read", [], fields=["service_point_id"])
    assert {row["service_point_id"][0] for row in rows} == {world["point_a"]}
    assert agent("spp.service.point", "search", []) == [world["point_a"]]
    codes = {
        row["code"]
        for row in agent("spp.entitlement.transaction", "entitlements_for_service_point", world["point_a"])
    }
    assert ents["a1"]["code"] in codes and ents["b1"]["code"] not in codes
    # health data: not even of their own households
    code, message = agent.outcome("res.partner", "read", [houses["a1"]], ["has_disability"])
    assert code == 4, message
    # a batch line for another point's entitlement is answered with an error, not done
    answer = agent(
        "spp.entitlement.transaction",
        "redeem_batch",
        world["point_a"],
        [{"code": ents["b1"]["code"], "quantity": 1.0, "reference": f"B-{world['tag']}"}],
    )
    assert answer[0]["error"].startswith("[wrong_service_point]"), answer


def test_portal_and_plain_users_see_nothing(world):
    for role in ("internal", "portal"):
        client = world["users"][role]
        code, answer = client.outcome("res.partner", "search", [("is_registrant", "=", True)])
        assert code == OK and answer == [], (role, answer)
        for model in ("g2p.program", "g2p.entitlement", "spp.entitlement.transaction", "spp.service.point"):
            code, answer = client.outcome(model, "search", [])
            assert code == 4, (role, model, answer)


# ----------------------------------------------------------------------------------
# Fuzz over the wire
# ----------------------------------------------------------------------------------
XML_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=120
)  # what an XML document can carry
WIRE = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(min_value=-(2**31), max_value=2**31 - 1),
        st.floats(),
        st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -5.0, 1e300]),
        XML_TEXT,
        st.sampled_from(
            ["'; DROP TABLE spp_entitlement_transaction; --", "A" * 3000, "%s", "7KQ2-MX4P-9", "𝕏" * 70]
        ),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(XML_TEXT, inner, max_size=3)),
    max_leaves=5,
)
WIRE_SETTINGS = settings(
    max_examples=150 if LONG else 15,
    deadline=None,
    database=None,
    derandomize=not LONG,
    suppress_health_check=list(HealthCheck),
)


def test_fuzz_redemption_api_over_xmlrpc(world):
    agent = world["users"]["agent"]
    T = "spp.entitlement.transaction"
    point_a = world["point_a"]
    defects = []

    state = [ledger(world, with_cycle=False)]

    def check(method, *args):
        code, answer = agent.outcome(T, method, *args)
        after = ledger(world, with_cycle=False)
        message = str(answer)
        if code != OK and (code not in (2, 4) or not message.startswith("[") or "]" not in message[:40]):
            defects.append((method, repr(args)[:200], code, message[:300]))
        elif code != OK and after != state[0]:
            defects.append((method, repr(args)[:200], "a refused call changed something"))
        state[0] = after

    @WIRE_SETTINGS
    @given(code=WIRE, quantity=WIRE, point=WIRE, reference=WIRE, reason=WIRE)
    def fuzz(code, quantity, point, reference, reason):
        check("lookup", code)
        check("redeem", code, quantity, point_a, "FZ-1")
        check("redeem", world["ents"]["a1"]["code"], quantity, point, reference)
        check("reverse", reference, point, reason)
        check("redeem_batch", point_a, [{"code": code, "quantity": quantity, "reference": reference}, code])
        check("redeem_batch", point, code)
        check("entitlements_for_service_point", point)

    fuzz()
    assert not defects, "\n".join(map(str, defects[:10]))
