from odoo import fields, models


class SppEntitlementTransaction(models.Model):
    """The in-kind side of the ledger of spp_entitlement_transactions: a transaction is
    for a cash entitlement or (here) an in-kind one, exactly one of the two."""

    _inherit = "spp.entitlement.transaction"

    inkind_entitlement_id = fields.Many2one(
        "g2p.entitlement.inkind", string="In-kind entitlement", index=True, ondelete="restrict", readonly=True
    )

    _sql_constraints = [
        (
            "one_entitlement",
            "CHECK ((entitlement_id IS NULL) <> (inkind_entitlement_id IS NULL))",
            "A transaction is for exactly one entitlement, cash or in-kind.",
        ),
    ]
