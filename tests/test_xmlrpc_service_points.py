"""Service points over XML-RPC against a real server: an administrator sets up two
points and an agent with a device API key; the device logs in with that key and sees
only its own point; a wrong key is refused."""

import uuid

import pytest
from g2p_client import Client, Refusal

ADMIN = ("admin", "admin")


def test_agent_device_key_lists_only_own_points(odoo_server, test_db):
    common = odoo_server.proxy("common")
    as_admin = Client(odoo_server.url, test_db, *ADMIN)
    tag = uuid.uuid4().hex[:6].upper()
    point_ids = [
        as_admin("spp.service.point", "create", {"name": f"RPC point {tag} {n}", "code": f"RPC-{tag}-{n}"})
        for n in (1, 2)
    ]
    login = f"rpc_agent_{tag.lower()}"
    group_id = as_admin.ref("spp_service_points.group_service_point_agent")
    agent_id = as_admin(
        "res.users",
        "create",
        {
            "name": f"RPC agent {tag}",
            "login": login,
            "groups_id": [(6, 0, [group_id])],
            "service_point_ids": [(4, point_ids[0])],
        },
    )
    key = as_admin("res.users", "action_generate_api_key_for_device", [agent_id], "RPC test tablet")
    assert isinstance(key, str) and len(key) >= 32

    # The device: authenticates with the key (the agent has no password at all) ...
    uid = common.authenticate(test_db, login, key, {})
    assert uid == agent_id
    device = Client(odoo_server.url, test_db, login, key)
    assert device.uid == agent_id
    rows = device.call("spp.service.point", "search_read", [], fields=["code", "name"])
    assert [r["id"] for r in rows] == [point_ids[0]]
    assert rows[0]["code"] == f"RPC-{tag}-1"
    assert device.call("spp.service.point", "search_count", []) == 1
    with pytest.raises(Refusal) as denied:
        device.call("spp.service.point", "read", [point_ids[1]], ["name"])
    assert denied.value.faultCode == 4  # AccessError

    # ... a wrong key is refused, at login and on a call.
    wrong = key[:-1] + ("0" if key[-1] != "0" else "1")
    assert common.authenticate(test_db, login, wrong, {}) is False
    with pytest.raises(RuntimeError):
        Client(odoo_server.url, test_db, login, wrong)
    with pytest.raises(Refusal) as refused:
        Client(odoo_server.url, test_db, login, wrong, uid=uid).call(
            "spp.service.point", "search_read", [], fields=["code"]
        )
    assert refused.value.faultCode == 3  # AccessDenied

    # Only administrators make device keys.
    with pytest.raises(Refusal) as not_admin:
        device.call("res.users", "action_generate_api_key_for_device", [agent_id], "Mine")
    assert not_admin.value.faultCode == 4
    assert not_admin.value.error_code == "not_system"
