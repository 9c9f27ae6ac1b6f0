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
        return "entitlement_id"

    def _redemption_balance_field(self):
        return "balance"

    def _redemption_fields(self):
        return [*super()._redemption_fields(), "currency_id", "initial_amount"]

    def _redemption_related_fields(self):
        return [*super()._redemption_related_fields(), "currency_id.rounding"]

    @api.model
    def _redemption_figure_field(self):
        """Field of spp.entitlement.transaction that holds the figure for this model."""
        return "amount"
