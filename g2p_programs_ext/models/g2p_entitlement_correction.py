from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..refusal import coded


class G2PEntitlementCorrection(models.Model):
    """One change a user made to an entitlement (amount, quantity, validity, note): who,
    when, which field, from what to what. Written by the entitlements' ``write`` (as
    superuser, after its checks), never edited: the audit trail of draft corrections,
    which an auditor filters by user, field, cycle or program."""

    _name = "g2p.entitlement.correction"
    _description = "Entitlement correction"
    _order = "id desc"
    _rec_name = "field_description"

    res_model = fields.Char(string="Entitlement model", required=True, readonly=True, index=True)
    res_id = fields.Many2oneReference(
        string="Entitlement", model_field="res_model", required=True, readonly=True, index=True
    )
    cycle_id = fields.Many2one("g2p.cycle", readonly=True, index=True, ondelete="cascade")
    program_id = fields.Many2one("g2p.program", readonly=True, index=True, ondelete="cascade")
    company_id = fields.Many2one(related="program_id.company_id", store=True)
    field_name = fields.Char(string="Field", required=True, readonly=True)
    field_description = fields.Char(string="What", required=True, readonly=True)
    old_value = fields.Char(string="Before", readonly=True)
    new_value = fields.Char(string="After", readonly=True)
    user_id = fields.Many2one("res.users", string="By", required=True, readonly=True, index=True)
    date = fields.Datetime(string="When", required=True, readonly=True, default=fields.Datetime.now)

    @api.model
    def _format_value(self, field, value):
        """``value`` of ``field`` (as ``read(load=False)`` gives it) as the text stored
        in the log: dates in ISO 8601, numbers as Python prints them, empty as ''."""
        if value is False or value is None:
            return ""
        if field.type == "date":
            return fields.Date.to_string(value)
        return str(value)

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su:
            self.check_access_rights("create")
            raise self._immutable()
        return super().create(vals_list)

    def write(self, vals):
        if not self.env.su:
            self.check_access_rights("write")
            raise self._immutable()
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_never(self):
        if not self.env.su:
            raise self._immutable()

    def _immutable(self):
        return UserError(
            coded("immutable", _("Corrections are logged by the entitlements themselves, never edited."))
        )
