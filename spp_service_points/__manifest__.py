{
    "name": "SPP Service Points",
    "summary": "Service points where beneficiaries collect their benefits, and the agents who serve them.",
    "version": "17.0.1.0.0",
    "author": "G2P In-kind Suite contributors",
    "website": "https://github.com/g2p-inkind/g2p-inkind-suite",
    "license": "LGPL-3",
    "category": "Social Protection",
    "depends": ["g2p_programs_ext", "stock"],
    "data": ["security/spp_service_points_groups.xml"],
    "development_status": "Alpha",
    "installable": True,
}
