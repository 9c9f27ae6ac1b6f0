from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..refusal import coded


class G2PEntitlement(models.Model):
    _name = "g2p.entitlement"
    _inherit = ["g2p.entitlement.base"]
    _description = "Cash entitlement"

    currency_id = fields.Many2one(related="cycle_id.program_id.currency_id", store=True)
    initial_amount = fields.Monetary(
        currency_field="currency_id", readonly=True, help="In the program's currency."
    )
    transfer_fee = fields.Monetary(currency_field="currency_id", readonly=True)
    amount_redeemed = fields.Monetary(currency_field="currency_id", readonly=True, copy=False, default=0.0)
    balance = fields.Monetary(
        currency_field="currency_id",
        compute="_compute_balance",
        store=True,
        precompute=True,
        help="Initial amount less what was redeemed.",
    )

    _sql_constraints = [
        (
            "cycle_partner_uniq",
            "unique(cycle_id, partner_id)",
            "One cash entitlement per beneficiary and cycle.",
        ),
        ("code_uniq", "unique(code)", "ERNs are unique."),
        ("amount_positive", "CHECK (initial_amount > 0)", "A cash entitlement is for a positive amount."),
        (
            "redeemed_within",
            "CHECK (amount_redeemed >= 0 AND amount_redeemed <= initial_amount)",
            "Redeemed amount must stay between 0 and the entitlement.",
        ),
    ]

    @api.constrains("initial_amount")
    def _check_initial_amount(self):
        for entitlement in self:
            if entitlement.initial_amount <= 0:
                raise ValidationError(
                    coded(
                        "bad_amount",
                        _(
                            "Entitlement %(name)s: the amount must be positive (%(amount)s given).",
                            name=entitlement.display_name,
                            amount=entitlement.initial_amount,
                        ),
                    )
                )

    @api.depends("initial_amount", "amount_redeemed")
    def _compute_balance(self):
        for entitlement in self:
            entitlement.balance = entitlement.initial_amount - entitlement.amount_redeemed

    def _redeemed_quantity_field(self):
        return "amount_redeemed"

    def _budget_value_field(self):
        return "initial_amount", "program"

    def _manager_model(self):
        return "g2p.program.entitlement.manager.cash"

    def _compute_display_name(self):
        for entitlement in self:
            entitlement.display_name = entitlement.code or _(
                "Cash for %(name)s (%(cycle)s)",
                name=entitlement.partner_id.name,
                cycle=entitlement.cycle_id.name,
            )
