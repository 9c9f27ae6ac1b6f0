from odoo import fields, models


class G2PEntitlementBase(models.AbstractModel):
    """What cash and in-kind entitlements share about their transactions: the count on
    the form's button and the action it opens. Each model's ``transaction_ids`` and
    redemption hooks (``_redemption_link_field`` ...) are on the model itself."""

    _inherit = "g2p.entitlement.base"

    transaction_count = fields.Integer(compute="_compute_transaction_count", string="Number of transactions")

    def _compute_transaction_count(self):
        link = self._redemption_link_field()
        counts = dict(
            self.env["spp.entitlement.transaction"]._read_group([(link, "in", self.ids)], [link], ["__count"])
        )
        for entitlement in self:
            entitlement.transaction_count = counts.get(entitlement, 0)

    def action_open_transactions(self):
        """Open the redemptions and reversals of this entitlement (one record of a
        concrete entitlement model) in the read-only transaction list.

        :return: dict, an ``ir.actions.act_window``"""
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "spp_entitlement_transactions.spp_entitlement_transaction_action"
        )
        action["domain"] = [(self._redemption_link_field(), "=", self.id)]
        action["context"] = {}
        return action

    def _redemption_link_field(self):
        """Field of spp.entitlement.transaction that points at this model."""
        raise NotImplementedError
