"""The suite served by a real Odoo server: the five addons answer over XML-RPC."""

from g2p_client import Client

ADDONS = {
    "g2p_programs_ext",
    "spp_service_points",
    "spp_entitlement_in_kind",
    "spp_entitlement_transactions",
    "spp_auto_update_entitlements",
}


def test_xmlrpc_admin_sees_the_five_addons_installed(odoo_server, test_db):
    assert odoo_server.proxy("common").version()["server_version"].startswith("17.0")
    admin = Client(odoo_server.url, test_db, "admin", "admin")
    rows = admin.call(
        "ir.module.module", "search_read", [("name", "in", sorted(ADDONS))], fields=["name", "state"]
    )
    assert {r["name"]: r["state"] for r in rows} == dict.fromkeys(ADDONS, "installed")
