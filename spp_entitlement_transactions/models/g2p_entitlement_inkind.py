from odoo import api, fields, models


class G2PEntitlementInkind(models.Model):
    """In-kind entitlements: what the redemption API needs to know about their figures
    (quantities in the entitlement's unit of measure). Redemptions only update
    ``quantity_redeemed``; spp_entitlement_in_kind posts the stock in batches."""

    _inherit = "g2p.entitlement.inkind"

    transaction_ids = fields.One2many(
        "spp.entitlement.transaction", "inkind_entitlement_id", string="Transactions"
    )

    # ------------------------------------------------------------------
    # Redemption hooks (see spp.entitlement.transaction)
    # ------------------------------------------------------------------
    def _redemption_total(self):
        """What the entitlement is for, in its unit of measure."""
        return self.quantity

    def _redemption_rounding(self):
        return self.uom_id.rounding or 0.001

    def _redemption_currency(self):
        # = currency_id (related through the cycle), read from the stored program_id: one
        # query less on every in-kind redemption
        return self.program_id.currency_id

    def _redemption_unit(self):
        return self.uom_id.name or ""

    def _redemption_product(self):
        return self.product_id

    def _redemption_uom(self):
        return self.uom_id

    @api.model
    def _redemption_link_field(self):
        return "inkind_entitlement_id"

    def _redemption_balance_field(self):
        return "quantity_balance"

    def _redemption_fields(self):
        return [*super()._redemption_fields(), "quantity", "uom_id", "product_id"]

    def _redemption_related_fields(self):
        return [*super()._redemption_related_fields(), "uom_id.rounding", "program_id.currency_id"]

    @api.model
    def _redemption_figure_field(self):
        return "quantity"
