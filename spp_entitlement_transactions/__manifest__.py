{
    "name": "SPP Entitlement Transactions",
    "summary": "Redemptions and reversals at service points, balances and the XML-RPC redemption API.",
    "version": "17.0.1.0.0",
    "author": "G2P In-kind Suite contributors",
    "website": "https://github.com/g2p-inkind/g2p-inkind-suite",
    "license": "LGPL-3",
    "category": "Social Protection",
    "depends": ["g2p_programs_ext", "spp_service_points", "spp_entitlement_in_kind"],
    "data": [],
    "development_status": "Alpha",
    "installable": True,
}
