from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError

from .. import cel
from ..refusal import coded

# Above this many registrants passing the domain, the live count leaves the CEL
# expression out (it would take seconds at each keystroke): the program's Preview does it.
LIVE_CEL_LIMIT = 20000


class G2PProgramCreateWizard(models.TransientModel):
    """Create a program and its entitlement managers in one step (managers only).

    ``spp_entitlement_in_kind`` adds in-kind items, the inventory switch and the
    warehouse; each addon creates its own manager through ``_create_managers``.
    """

    _name = "g2p.program.create.wizard"
    _description = "Create a program"

    # ------------------------------------------------------------------
    # Program
    # ------------------------------------------------------------------
    name = fields.Char(required=True)
    company_id = fields.Many2one("res.company", required=True, default=lambda self: self.env.company)
    currency_id = fields.Many2one(
        "res.currency", required=True, default=lambda self: self.env.company.currency_id
    )
    target_type = fields.Selection(
        [("group", "Households"), ("individual", "Individuals")], default="group", required=True
    )
    start_date = fields.Date(required=True, default=fields.Date.context_today)
    cycle_duration = fields.Integer(default=30, required=True, help="Days in a cycle.")

    # ------------------------------------------------------------------
    # Eligibility, with the live count
    # ------------------------------------------------------------------
    eligibility_domain = fields.Text(
        default="[]",
        help="Odoo domain on registrants (res.partner); both it and the CEL expression must hold.",
    )
    eligibility_expression = fields.Text(
        string="Eligibility expression (CEL)",
        help="Optional CEL expression over `me` and `members`, e.g. "
        "`size(members.filter(m, m.age < 5)) > 0 || me.has_disability`.",
    )
    domain_count = fields.Integer(
        compute="_compute_eligible_count", string="Passing the domain", help="Registrants of the target type."
    )
    eligible_count = fields.Integer(
        compute="_compute_eligible_count",
        string="Eligible now",
        help="Registrants that pass the domain and the CEL expression today.",
    )
    eligibility_message = fields.Char(compute="_compute_eligible_count")

    # ------------------------------------------------------------------
    # Entitlements
    # ------------------------------------------------------------------
    validation_group_id = fields.Many2one(
        "res.groups",
        string="Validation group",
        required=True,
        default=lambda self: self.env.ref(
            "g2p_programs_ext.group_program_validator", raise_if_not_found=False
        ),
        help="Users in this group may approve the program's entitlements.",
    )
    cash_item_ids = fields.One2many("g2p.program.create.wizard.cash.item", "wizard_id", string="Cash items")
    max_amount = fields.Monetary(
        currency_field="currency_id", help="Cap on a beneficiary's cash total; 0: no cap."
    )
    transfer_fee = fields.Monetary(currency_field="currency_id", help="Fee per cash entitlement.")

    _sql_constraints = [
        ("cycle_duration_positive", "CHECK (cycle_duration > 0)", "A cycle lasts at least one day."),
    ]

    @api.depends("target_type", "eligibility_domain", "eligibility_expression")
    def _compute_eligible_count(self):
        """The domain in SQL, then the CEL expression on what the domain kept, as the
        program's preview does; a bad domain or expression shows its message instead."""
        Program = self.env["g2p.program"]
        for wizard in self:
            wizard.domain_count = wizard.eligible_count = 0
            wizard.eligibility_message = False
            program = Program.new(
                {
                    "name": wizard.name or _("New program"),
                    "target_type": wizard.target_type,
                    "eligibility_domain": wizard.eligibility_domain,
                    "eligibility_expression": wizard.eligibility_expression,
                }
            )
            try:
                candidates = program._candidate_ids()
                wizard.domain_count = len(candidates)
                text = (wizard.eligibility_expression or "").strip()
                if not text:
                    wizard.eligible_count = len(candidates)
                    continue
                counts = program._eligibility_counts(sql_only=True)
                if counts is not None:  # in SQL: counted at any size
                    wizard.eligible_count, errors = counts[0], counts[1]
                    if errors:
                        wizard.eligibility_message = _(
                            "%s registrant(s) skipped: the expression failed on them.", errors
                        )
                    continue
                if len(candidates) > LIVE_CEL_LIMIT:
                    cel.check_expression(text, _("The eligibility expression"))
                    wizard.eligibility_message = _(
                        "More than %s registrants pass the domain: the expression is counted once the "
                        "program exists (Preview with the expression).",
                        LIVE_CEL_LIMIT,
                    )
                    continue
                evaluator = cel.Evaluator(self.env, text, _("The eligibility expression"))
                wizard.eligible_count = len(program._eligible_ids(candidates, evaluator))
                if evaluator.errors:
                    wizard.eligibility_message = _(
                        "%(errors)s registrant(s) skipped: the expression failed on them (first: %(first)s).",
                        errors=evaluator.errors,
                        first=evaluator.first_error,
                    )
            except (UserError, ValidationError) as exc:
                wizard.eligibility_message = exc.args[0]

    @api.constrains("eligibility_domain")
    def _check_eligibility_domain(self):
        for wizard in self:
            self.env["g2p.program"]._parse_domain(wizard.eligibility_domain, _("The eligibility domain"))

    @api.constrains("eligibility_expression")
    def _check_eligibility_expression(self):
        for wizard in self:
            cel.check_expression(wizard.eligibility_expression, _("The eligibility expression"))

    # ------------------------------------------------------------------
    # Action
    # ------------------------------------------------------------------
    def action_create_program(self):
        """Create the ``g2p.program`` and one entitlement manager per kind of item given,
        as the current user (who needs the Program Manager role to create them).

        :return: an action opening the new program's form (dict).
        :raise UserError: no item at all (a program without items gives nothing).
        :raise ValidationError: a bad domain or CEL expression (the parser's message),
            a bad item.
        """
        self.ensure_one()
        if not self._has_items():
            raise UserError(
                coded("no_items", _("Program %s: add at least one cash or in-kind item.", self.name))
            )
        program = self.env["g2p.program"].create(self._prepare_program_vals())
        self._create_managers(program)
        program._message_log(body=_("Program created with the wizard."))
        return {
            "type": "ir.actions.act_window",
            "res_model": "g2p.program",
            "res_id": program.id,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "main",
        }

    # ------------------------------------------------------------------
    # Hooks
    # ------------------------------------------------------------------
    def _has_items(self):
        """Whether any item was given (extended by other kinds)."""
        return bool(self.cash_item_ids)

    def _prepare_program_vals(self):
        """Values of the g2p.program to create."""
        return {
            "name": self.name,
            "company_id": self.company_id.id,
            "currency_id": self.currency_id.id,
            "target_type": self.target_type,
            "eligibility_domain": self.eligibility_domain or "[]",
            "eligibility_expression": self.eligibility_expression or False,
            "start_date": self.start_date,
            "cycle_duration": self.cycle_duration,
        }

    def _create_managers(self, program):
        """Create the program's entitlement managers (the cash one when there are cash
        items); other addons add theirs with ``super()``."""
        if self.cash_item_ids:
            self.env["g2p.program.entitlement.manager.cash"].create(
                {
                    "program_id": program.id,
                    "validation_group_id": self.validation_group_id.id,
                    "max_amount": self.max_amount,
                    "transfer_fee": self.transfer_fee,
                    "item_ids": [(0, 0, line._prepare_item_vals()) for line in self.cash_item_ids],
                }
            )


class G2PProgramCreateWizardItemMixin(models.AbstractModel):
    """What the wizard's item lines share with the managers' items."""

    _name = "g2p.program.create.wizard.item.mixin"
    _description = "Program wizard item"

    sequence = fields.Integer(default=10)
    condition = fields.Text(help="Odoo domain on the beneficiary (res.partner); empty: everyone.")
    condition_expression = fields.Text(string="Condition (CEL)")
    formula = fields.Text(string="Formula (CEL)")
    multiplier_field = fields.Char(help="Integer field of the beneficiary, e.g. household_size.")
    max_multiplier = fields.Integer(default=0, help="0: no cap.")

    @api.constrains("condition_expression", "formula")
    def _check_expressions(self):
        for line in self:
            cel.check_expression(line.condition_expression, _("The condition of an item"))
            cel.check_expression(line.formula, _("The formula of an item"))

    def _prepare_item_vals(self):
        """Values of the manager item this line becomes."""
        self.ensure_one()
        return {
            "sequence": self.sequence,
            "condition": self.condition or False,
            "condition_expression": self.condition_expression or False,
            "formula": self.formula or False,
            "multiplier_field": self.multiplier_field or False,
            "max_multiplier": self.max_multiplier,
        }


class G2PProgramCreateWizardCashItem(models.TransientModel):
    _name = "g2p.program.create.wizard.cash.item"
    _inherit = ["g2p.program.create.wizard.item.mixin"]
    _description = "Program wizard: cash item"
    _order = "sequence, id"

    wizard_id = fields.Many2one("g2p.program.create.wizard", required=True, ondelete="cascade")
    currency_id = fields.Many2one(related="wizard_id.currency_id")
    amount = fields.Monetary(currency_field="currency_id", help="Per beneficiary, in the program's currency.")

    def _prepare_item_vals(self):
        return dict(super()._prepare_item_vals(), amount=self.amount)
