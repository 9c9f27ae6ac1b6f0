{
    "name": "G2P Programs (extended)",
    "summary": "Registry, programs, cycles, memberships, entitlement lifecycle, cash entitlements, CEL eligibility and queue_job processing.",
    "version": "17.0.1.0.0",
    "author": "G2P In-kind Suite contributors",
    "website": "https://github.com/g2p-inkind/g2p-inkind-suite",
    "license": "LGPL-3",
    "category": "Social Protection",
    "depends": ["base", "mail", "product", "queue_job"],
    "external_dependencies": {"python": ["cel-python"]},
    "data": ["security/g2p_programs_ext_groups.xml"],
    "development_status": "Alpha",
    "installable": True,
}
