from odoo import api, fields, models


class G2PEntitlement(models.Model):
    """Cash entitlements: their redemptions, and what the redemption API needs to know
    about their figures (amounts in the program's currency). ``service_point_id`` comes
    from spp_service_points."""

    _inherit = "g2p.entitlement"

    # ------------------------------------------------------------------
    # Redemptions
    # ------------------------------------------------------------------
    transaction_ids = fields.One2many("spp.entitlement.transaction", "entitlement_id", string="Transactions")
    transaction_count = fields.Integer(compute="_compute_transaction_count", string="Number of transactions")

    def _compute_transaction_count(self):
        counts = dict(
            self.env["spp.entitlement.transaction"]._read_group(
                [("entitlement_id", "in", self.ids)], ["entitlement_id"], ["__count"]
            )
        )
        for entitlement in self:
            entitlement.transaction_count = counts.get(entitlement, 0)

    def action_open_transactions(self):
        """Open the redemptions and reversals of this entitlement (read-only list)."""
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "spp_entitlement_transactions.spp_entitlement_transaction_action"
        )
        action["domain"] = [("entitlement_id", "=", self.id)]
        action["context"] = {}
        return action

    # ------------------------------------------------------------------
    # Redemption hooks (see spp.entitlement.transaction)
    # ------------------------------------------------------------------
    def _redemption_total(self):
        """What the entitlement is for, in its redemption unit (here: the currency)."""
        return self.initial_amount

    def _redemption_rounding(self):
        return self.currency_id.rounding or 0.01

    def _redemption_currency(self):
        return self.currency_id

    def _redemption_unit(self):
        return self.currency_id.name or ""

    def _redemption_product(self):
        return self.env["product.product"]

    def _redemption_uom(self):
        return self.env["uom.uom"]

    @api.model
    def _redemption_link_field(self):
        """Field of spp.entitlement.transaction that points at this model."""
        return "entitlement_id"

    @api.model
    def _redemption_figure_field(self):
        """Field of spp.entitlement.transaction that holds the figure for this model."""
        return "amount"
