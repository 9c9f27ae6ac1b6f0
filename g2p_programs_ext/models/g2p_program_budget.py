from collections import defaultdict

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL

from .. import input_check
from ..refusal import coded


class G2PBudgetMixin(models.AbstractModel):
    """What a budget is, for a program or one cycle: an amount in the program's currency
    (``currency_id``, given by each budget model), checked on input, never negative. Each
    budget model names the record it belongs to in ``_budget_owner_field``."""

    _name = "g2p.budget.mixin"
    _description = "Budget (program or cycle)"
    _budget_owner_field = None

    currency_id = fields.Many2one("res.currency")
    amount = fields.Monetary(currency_field="currency_id", required=True, help="In the program's currency.")

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            input_check.check_vals(self, vals)
        return super().create(vals_list)

    def write(self, vals):
        input_check.check_vals(self, vals)
        return super().write(vals)

    @api.constrains("amount")
    def _check_amount(self):
        for budget in self:
            if budget.amount < 0:
                raise ValidationError(
                    coded("bad_value", _("A budget cannot be negative (%s given).", budget.amount))
                )

    def _compute_display_name(self):
        for budget in self:
            budget.display_name = _("Budget of %s", budget[self._budget_owner_field].name)


class G2PProgramBudget(models.Model):
    """What a program may commit to its beneficiaries, in the program's currency
    (OpenSPP's Entitlements guide: "Approval ensures ... Budget is available"). At most one
    per program; none: no check. Approval of entitlements beyond it is refused
    (``[over_budget]``, see ``g2p.entitlement.base._check_budget``)."""

    _name = "g2p.program.budget"
    _inherit = "g2p.budget.mixin"
    _description = "Program budget"
    _check_company_auto = True
    _budget_owner_field = "program_id"

    program_id = fields.Many2one("g2p.program", required=True, index=True, ondelete="cascade")
    company_id = fields.Many2one(related="program_id.company_id", store=True)
    currency_id = fields.Many2one(related="program_id.currency_id")
    note = fields.Char()

    _sql_constraints = [
        ("program_uniq", "unique(program_id)", "A program has one budget."),
    ]

    # ------------------------------------------------------------------
    # Sums and locks (shared with g2p.cycle.budget and the cycle's dashboard)
    # ------------------------------------------------------------------
    @api.model
    def _sums(self, program_ids=None, states=None, ids_by_model=None):
        """The value of entitlements, in each program's currency, summed per program and
        per cycle over every entitlement model (cash: initial amount; in-kind: total
        amount), in one grouped query.

        :param program_ids: list of g2p.program ids, or None with ``ids_by_model``
        :param states: entitlement states to count (None: any)
        :param ids_by_model: {entitlement model name: ids} to count only those; a value
            may also be an ``SQL`` condition on the model's table (e.g. a whole cycle's
            pending entitlements, without their ids in memory)
        :return: ({program id: float}, {cycle id: float})
        """
        arms = []
        currency_of = {}
        for model in self.env["g2p.cycle"]._entitlement_models():
            if ids_by_model is not None and not ids_by_model.get(model):
                continue
            Model = self.env[model]
            value, currency = Model._budget_value_field()
            currency_of[model] = currency
            # SQL: one grouped pass over 100,000 entitlements; flushed first, and budgets
            # count every entitlement of the program whoever asks (no record rule applies)
            Model.flush_model(["program_id", "cycle_id", "state", value])
            conditions = [SQL("TRUE")]
            if program_ids is not None:
                conditions.append(SQL("program_id = ANY(%s)", list(program_ids)))
            if states:
                conditions.append(SQL("state = ANY(%s)", list(states)))
            if ids_by_model is not None:
                selected = ids_by_model[model]
                conditions.append(
                    selected if isinstance(selected, SQL) else SQL("id = ANY(%s)", list(selected))
                )
            arms.append(
                SQL(
                    "SELECT %s AS model, program_id, cycle_id, SUM(%s) FROM %s WHERE %s GROUP BY program_id, cycle_id",
                    model,
                    SQL.identifier(value),
                    SQL.identifier(Model._table),
                    SQL(" AND ").join(conditions),
                )
            )
        by_program, by_cycle = defaultdict(float), defaultdict(float)
        if not arms:
            return by_program, by_cycle
        self.env.cr.execute(SQL(" UNION ALL ").join(arms))
        rows = self.env.cr.fetchall()
        programs = self.env["g2p.program"].sudo().browse({row[1] for row in rows})
        today = fields.Date.context_today(self)
        for model, program_id, cycle_id, total in rows:
            total = total or 0.0
            program = programs.browse(program_id)
            if currency_of[model] == "company" and program.company_id.currency_id != program.currency_id:
                total = program.company_id.currency_id._convert(
                    total, program.currency_id, program.company_id, today, round=False
                )
            by_program[program_id] += total
            by_cycle[cycle_id] += total
        return by_program, by_cycle

    @api.model
    def _lock_budgets(self, program_ids, cycle_ids):
        """Lock the budgets of ``program_ids`` and ``cycle_ids`` (ordered, so that two
        approvals do not deadlock) and touch them, so that a concurrent approval that
        waited fails to serialize and is retried by Odoo with a fresh snapshot.

        :return: the g2p.program.budget and g2p.cycle.budget records found (a list)."""
        found = []
        for Budget, column, ids in (
            (self.env["g2p.program.budget"].sudo(), "program_id", program_ids),
            (self.env["g2p.cycle.budget"].sudo(), "cycle_id", cycle_ids),
        ):
            if not ids:
                continue
            Budget.flush_model()
            # SQL: a row lock (FOR UPDATE) and a touch, which the ORM does not offer
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM %s WHERE %s = ANY(%s) ORDER BY id FOR UPDATE",
                    SQL.identifier(Budget._table),
                    SQL.identifier(column),
                    list(ids),
                ),
                # a concurrent approval fails to serialize here: expected, retried by Odoo
                log_exceptions=False,
            )
            budget_ids = [row[0] for row in self.env.cr.fetchall()]
            if budget_ids:
                self.env.cr.execute(
                    SQL(
                        "UPDATE %s SET write_uid = write_uid WHERE id = ANY(%s)",
                        SQL.identifier(Budget._table),
                        budget_ids,
                    )
                )
                Budget.invalidate_model()
                found += list(Budget.browse(budget_ids))
        return found


class G2PCycleBudget(models.Model):
    """What one cycle may commit, in the program's currency; optional, besides the
    program's budget (both are checked when both exist)."""

    _name = "g2p.cycle.budget"
    _inherit = "g2p.budget.mixin"
    _description = "Cycle budget"
    _check_company_auto = True
    _budget_owner_field = "cycle_id"

    cycle_id = fields.Many2one("g2p.cycle", required=True, index=True, ondelete="cascade")
    program_id = fields.Many2one(related="cycle_id.program_id", store=True)
    company_id = fields.Many2one(related="cycle_id.company_id", store=True)
    currency_id = fields.Many2one(related="cycle_id.program_id.currency_id")

    _sql_constraints = [
        ("cycle_uniq", "unique(cycle_id)", "A cycle has one budget."),
    ]


class G2PProgram(models.Model):
    """The program's budget as one field of its form (kept in g2p.program.budget)."""

    _inherit = "g2p.program"

    budget_ids = fields.One2many("g2p.program.budget", "program_id", string="Budgets")
    budget_amount = fields.Monetary(
        currency_field="currency_id",
        compute="_compute_budget_amount",
        inverse="_inverse_budget_amount",
        string="Budget",
        help="What the program may commit to beneficiaries (approved, transferred and redeemed "
        "entitlements), in its currency; empty: no check.",
    )

    @api.depends("budget_ids.amount")
    def _compute_budget_amount(self):
        for program in self:
            program.budget_amount = program.budget_ids[:1].amount

    def _inverse_budget_amount(self):
        for program in self:
            budget = program.budget_ids[:1]
            if not program.budget_amount:
                budget.unlink()
            elif budget:
                budget.amount = program.budget_amount
            else:
                self.env["g2p.program.budget"].create(
                    {"program_id": program.id, "amount": program.budget_amount}
                )
