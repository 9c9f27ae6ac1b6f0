from odoo import fields, models


class SppServicePoint(models.Model):
    _inherit = "spp.service.point"

    transaction_ids = fields.One2many(
        "spp.entitlement.transaction", "service_point_id", string="Transactions"
    )

    def action_open_transactions(self):
        """Open the redemptions and reversals made at this service point (read-only)."""
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "spp_entitlement_transactions.spp_entitlement_transaction_action"
        )
        action["domain"] = [("service_point_id", "=", self.id)]
        action["context"] = {}
        return action
