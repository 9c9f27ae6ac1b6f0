from odoo import fields, models


class G2PProgram(models.Model):
    _inherit = "g2p.program"

    entitlement_manager_inkind_ids = fields.One2many(
        "g2p.program.entitlement.manager.inkind", "program_id", string="In-kind entitlement manager"
    )
