{
    "name": "SPP Auto-update Entitlements",
    "summary": "Scheduled closing of ended cycles: redeemed, partially redeemed and expired entitlements (and, with spp_entitlement_in_kind, stock released).",
    "version": "17.0.1.0.0",
    "author": "G2P In-kind Suite contributors",
    "maintainers": ["g2p-inkind"],
    "website": "https://github.com/g2p-inkind/g2p-inkind-suite",
    "license": "LGPL-3",
    "category": "Social Protection",
    "depends": ["spp_entitlement_transactions"],
    "data": ["data/ir_cron_data.xml", "data/queue_job_data.xml", "views/g2p_cycle_views.xml"],
    "development_status": "Alpha",
    "installable": True,
}
