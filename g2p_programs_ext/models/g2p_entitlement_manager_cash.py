import logging

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL, float_round

from ..refusal import coded

_logger = logging.getLogger(__name__)


class G2PEntitlementManagerCash(models.Model):
    _name = "g2p.program.entitlement.manager.cash"
    _inherit = ["g2p.program.entitlement.manager.base"]
    _description = "Cash entitlement manager"

    currency_id = fields.Many2one(related="program_id.currency_id")
    item_ids = fields.One2many(
        "g2p.program.entitlement.manager.cash.item", "manager_id", string="Items", copy=True
    )
    max_amount = fields.Monetary(
        currency_field="currency_id", help="Cap on a beneficiary's total in a cycle; 0: no cap."
    )
    transfer_fee = fields.Monetary(
        currency_field="currency_id", help="Fee per entitlement, in the program's currency."
    )

    _sql_constraints = [
        (
            "amounts_positive",
            "CHECK (max_amount >= 0 AND transfer_fee >= 0)",
            "Cap and fee cannot be negative.",
        ),
    ]

    @api.constrains("max_amount", "transfer_fee")
    def _check_amounts(self):
        for manager in self:
            if manager.max_amount < 0 or manager.transfer_fee < 0:
                raise ValidationError(
                    coded("bad_value", _("%s: the cap and the fee cannot be negative.", manager.display_name))
                )

    def _entitlement_model(self):
        return "g2p.entitlement"

    def _create_entitlements(self, model, vals_list):
        """Cash values are complete (related and computed fields given): one INSERT per
        batch, ``ON CONFLICT DO NOTHING`` on (cycle, beneficiary), so that a second or
        concurrent generation adds nothing. Returns how many were inserted."""
        return model._bulk_insert(vals_list, conflict=("cycle_id", "partner_id"))

    def _existing_keys(self, cycle, partner_ids):
        self.env["g2p.entitlement"].flush_model(["cycle_id", "partner_id"])
        self.env.cr.execute(
            "SELECT partner_id FROM g2p_entitlement WHERE cycle_id = %s AND partner_id = ANY(%s)",
            [cycle.id, list(partner_ids)],
        )
        return {row[0] for row in self.env.cr.fetchall()}

    def _generate_in_sql(self, cycle, partner_ids, state_vals):
        """Cash entitlements of ``partner_ids`` (res.partner ids, enrolled members of
        ``cycle``) that have none yet, in one ``INSERT ... SELECT``: the items' figures
        (domain, CEL condition and formula, multiplier) summed, capped at
        ``max_amount``, rounded to the currency as :meth:`_prepare_entitlements` does;
        none when the amount is 0. Returns (created, skipped), or None when an item runs
        per beneficiary."""
        self.ensure_one()
        if not self.item_ids:
            return 0, 0
        ids_sql = SQL("(SELECT id FROM ids)")
        # the household summary where it answers, one grouped pass over the members for the rest
        parts = self._items_sql(ids_sql, shared=True)
        if parts is None:
            return None
        Model = self.env["g2p.entitlement"].sudo()
        amount = SQL("r.amount")
        values = {
            **cycle._entitlement_common_vals(),
            **state_vals,
            "partner_id": SQL("p.id"),
            "initial_amount": amount,
            "balance": amount,
            "amount_redeemed": 0.0,
            "transfer_fee": self.transfer_fee,
            "currency_id": self.currency_id.id,
        }
        total = SQL(" + ").join([SQL("0.0::float8")] + [SQL("coalesce(%s, 0)", part[1]) for part in parts])
        skipped = SQL(" + ").join(SQL("(%s)::int", part[2]) for part in parts)
        capped = SQL("least(a.total, %s)", self.max_amount) if self.max_amount else SQL("a.total")
        source = SQL(
            "amounts a JOIN res_partner p ON p.id = a.pid "
            "CROSS JOIN LATERAL (SELECT g2p_float_round(%s, %s) AS amount OFFSET 0) r WHERE r.amount > 0",
            capped,
            self.currency_id.rounding,
        )
        # Raw SQL: a cycle's entitlements in one statement (the ORM would create them one
        # by one, computing per record what is given here). Flushed before; the model's
        # cache invalidated after; the caller checked the officer's rights.
        self._flush_for_sql(Model)
        self.env.cr.execute("SET LOCAL jit = off")  # compiling costs more than it saves here
        self.env.cr.execute("SET LOCAL work_mem = '64MB'")  # the members' grouped aggregates, in memory
        self.env.cr.execute(
            SQL(
                # The beneficiaries that already have one, read once before any row is
                # inserted (a hashed NOT IN), not probed per row: with the table's statistics
                # saying "empty" (analyzed before the first generation) the planner probed by
                # a sequential scan, which also reads the rows this statement inserts
                # (invisible to it, not skipped): quadratic. Filtered by the ids array (an
                # index condition, or a hashed test in a sequential scan), not joined with
                # them: a join misestimated as one row became a nested loop over the ids.
                """WITH ids AS MATERIALIZED (SELECT unnest(%(ids)s::int[]) AS id),
                   existing AS MATERIALIZED (
                       SELECT e.partner_id FROM g2p_entitlement e
                       WHERE e.cycle_id = %(cycle)s AND e.partner_id = ANY(%(ids)s::int[])),
                   amounts AS MATERIALIZED (
                       SELECT p.id AS pid, %(total)s AS total, %(skipped)s AS skipped
                       FROM res_partner p %(joins)s %(laterals)s
                       WHERE p.id IN (SELECT id FROM ids)
                         AND p.id NOT IN (SELECT partner_id FROM existing)),
                   ins AS (%(insert)s)
                   SELECT (SELECT count(*) FROM ins), (SELECT coalesce(sum(skipped), 0) FROM amounts)""",
                ids=list(partner_ids),
                total=total,
                skipped=skipped,
                joins=SQL(" ").join(part[3] for part in parts),
                laterals=SQL(" ").join(part[0] for part in parts),
                cycle=cycle.id,
                insert=Model._insert_select_sql(values, source, ("cycle_id", "partner_id")),
            )
        )
        created, skipped_count = self.env.cr.fetchone()
        Model.invalidate_model()
        if skipped_count:
            _logger.warning(
                "%s: skipped %d (beneficiary, item) pairs (CEL error or no positive figure, in SQL)",
                self.display_name,
                skipped_count,
            )
        return created, int(skipped_count)

    def _prepare_entitlements(self, cycle, partner_ids):
        """One cash entitlement per beneficiary: the sum of the items' amounts (in the
        program's currency), capped at ``max_amount``; none when it is 0.

        :return: (list of g2p.entitlement values, skipped count)
        """
        self.ensure_one()
        existing = self._existing_keys(cycle, partner_ids)
        todo = [pid for pid in partner_ids if pid not in existing]
        totals = dict.fromkeys(todo, 0.0)
        skipped = 0
        for item in self.item_ids:
            figures, item_skipped = item._figures(todo)
            skipped += item_skipped
            for pid, amount in figures.items():
                totals[pid] += amount
        rounding = self.currency_id.rounding
        # Related and computed values given outright: the ORM then computes nothing per record.
        common = cycle._entitlement_common_vals()
        vals = []
        for pid in todo:
            amount = totals[pid]
            if self.max_amount:
                amount = min(amount, self.max_amount)
            amount = float_round(amount, precision_rounding=rounding)
            if amount > 0:
                vals.append(
                    {
                        **common,
                        "partner_id": pid,
                        "initial_amount": amount,
                        "transfer_fee": self.transfer_fee,
                        "currency_id": self.currency_id.id,
                        "balance": amount,
                        "amount_redeemed": 0.0,
                    }
                )
        return vals, skipped


class G2PEntitlementManagerCashItem(models.Model):
    _name = "g2p.program.entitlement.manager.cash.item"
    _inherit = ["g2p.program.entitlement.item.mixin"]
    _description = "Cash entitlement item"

    manager_id = fields.Many2one(
        "g2p.program.entitlement.manager.cash", required=True, ondelete="cascade", index=True
    )
    currency_id = fields.Many2one(related="manager_id.currency_id")
    amount = fields.Monetary(currency_field="currency_id", help="Amount, in the program's currency.")

    @api.constrains("amount")
    def _check_amount(self):
        for item in self:
            if item.amount < 0:
                raise ValidationError(
                    coded("negative_amount", _("%s: the amount cannot be negative.", item._item_label()))
                )

    def _compute_display_name(self):
        for item in self:
            item.display_name = item.formula or "%s %s" % (item.amount, item.currency_id.name or "")

    def _base_figure(self):
        return self.amount

    def _base_variable(self):
        return "base_amount"
