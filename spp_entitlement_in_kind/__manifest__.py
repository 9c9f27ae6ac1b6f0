{
    "name": "SPP In-kind Entitlements",
    "summary": "In-kind entitlements with real stock: availability check, reservation on approval, delivery posting and release.",
    "version": "17.0.1.0.0",
    "author": "G2P In-kind Suite contributors",
    "website": "https://github.com/g2p-inkind/g2p-inkind-suite",
    "license": "LGPL-3",
    "category": "Social Protection",
    "depends": ["g2p_programs_ext", "spp_service_points", "stock"],
    "data": [],
    "development_status": "Alpha",
    "installable": True,
}
