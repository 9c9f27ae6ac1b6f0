from odoo import fields, models

from .g2p_program_membership import MEMBERSHIP_STATES


class G2PCycleMembership(models.Model):
    _name = "g2p.cycle.membership"
    _description = "Cycle beneficiary"
    _order = "cycle_id, id"
    _rec_name = "partner_id"

    cycle_id = fields.Many2one("g2p.cycle", required=True, index=True, ondelete="cascade")
    program_id = fields.Many2one(related="cycle_id.program_id", store=True, index=True)
    company_id = fields.Many2one(related="cycle_id.company_id", store=True, index=True)
    partner_id = fields.Many2one(
        "res.partner", string="Beneficiary", required=True, index=True, ondelete="restrict"
    )
    state = fields.Selection(MEMBERSHIP_STATES, default="enrolled", required=True, index=True)

    _sql_constraints = [
        ("cycle_partner_uniq", "unique(cycle_id, partner_id)", "A beneficiary is a member of a cycle once."),
    ]
