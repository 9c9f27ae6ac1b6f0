"""The suite served by a real Odoo server: the five addons answer over XML-RPC."""

ADDONS = {
    "g2p_programs_ext",
    "spp_service_points",
    "spp_entitlement_in_kind",
    "spp_entitlement_transactions",
    "spp_auto_update_entitlements",
}


def test_xmlrpc_admin_sees_the_five_addons_installed(odoo_server, test_db):
    common = odoo_server.proxy("common")
    assert common.version()["server_version"].startswith("17.0")
    uid = common.authenticate(test_db, "admin", "admin", {})
    assert uid, "admin logs in"
    models = odoo_server.proxy("object")
    rows = models.execute_kw(
        test_db,
        uid,
        "admin",
        "ir.module.module",
        "search_read",
        [[("name", "in", sorted(ADDONS))]],
        {"fields": ["name", "state"]},
    )
    assert {r["name"]: r["state"] for r in rows} == dict.fromkeys(ADDONS, "installed")
