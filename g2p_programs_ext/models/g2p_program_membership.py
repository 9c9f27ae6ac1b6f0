from odoo import fields, models

MEMBERSHIP_STATES = [
    ("draft", "Draft"),
    ("enrolled", "Enrolled"),
    ("paused", "Paused"),
    ("exited", "Exited"),
    ("not_eligible", "Not eligible"),
]


class G2PProgramMembership(models.Model):
    _name = "g2p.program.membership"
    _description = "Program beneficiary"
    _order = "program_id, id"
    _rec_name = "partner_id"
    _check_company_auto = True

    program_id = fields.Many2one("g2p.program", required=True, index=True, ondelete="cascade")
    company_id = fields.Many2one(related="program_id.company_id", store=True, index=True)
    partner_id = fields.Many2one(
        "res.partner",
        string="Registrant",
        required=True,
        index=True,
        ondelete="restrict",
        domain=[("is_registrant", "=", True)],
    )
    state = fields.Selection(MEMBERSHIP_STATES, default="draft", required=True, index=True)
    enrollment_date = fields.Date()

    _sql_constraints = [
        (
            "program_partner_uniq",
            "unique(program_id, partner_id)",
            "A registrant is a member of a program once.",
        ),
    ]

    def action_pause(self):
        self.write({"state": "paused"})
        return True

    def action_exit(self):
        self.write({"state": "exited"})
        return True

    def action_enroll(self):
        self.write({"state": "enrolled", "enrollment_date": fields.Date.context_today(self)})
        return True
