from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..models.g2p_entitlement_base import REJECTION_REASONS
from ..refusal import coded


class G2PEntitlementRejectWizard(models.TransientModel):
    _name = "g2p.entitlement.reject.wizard"
    _description = "Reject entitlements"

    res_model = fields.Char(required=True, readonly=True)
    res_ids = fields.Json(required=True, readonly=True)
    entitlement_count = fields.Integer(compute="_compute_entitlement_count")
    rejection_reason = fields.Selection(REJECTION_REASONS, string="Reason", required=True)
    rejection_note = fields.Text(string="Note")

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        model = self.env.context.get("active_model")
        if model in self.env["g2p.cycle"]._entitlement_models():
            values["res_model"] = model
            values["res_ids"] = self.env.context.get("active_ids") or []
        return values

    @api.depends("res_ids")
    def _compute_entitlement_count(self):
        for wizard in self:
            wizard.entitlement_count = len(wizard.res_ids or [])

    def action_confirm(self):
        """Reject the selected entitlements with the reason and note. :return: an action closing the wizard."""
        self.ensure_one()
        if self.res_model not in self.env["g2p.cycle"]._entitlement_models():
            raise UserError(coded("bad_model", _("%s are not entitlements.", self.res_model)))
        self.env[self.res_model].browse(self.res_ids).action_reject(
            self.rejection_reason, self.rejection_note
        )
        return {"type": "ir.actions.act_window_close"}
