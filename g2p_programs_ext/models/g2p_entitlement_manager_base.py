import logging

from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import SQL

from .. import cel, cel_sql, input_check
from ..refusal import coded

_logger = logging.getLogger(__name__)

BATCH_SIZE = 5000


class G2PEntitlementManagerBase(models.AbstractModel):
    """What every entitlement manager has: its program and its validation group.
    One manager of each kind per program (a program with several kinds is a basket)."""

    _name = "g2p.program.entitlement.manager.base"
    _description = "Entitlement manager"
    _check_company_auto = True

    name = fields.Char(required=True, default=lambda self: self._description)
    program_id = fields.Many2one("g2p.program", required=True, index=True, ondelete="cascade")
    company_id = fields.Many2one(related="program_id.company_id", store=True)
    validation_group_id = fields.Many2one(
        "res.groups",
        string="Validation group",
        help="Users in this group may approve the entitlements this manager makes. "
        "Approval is refused while it is empty.",
    )

    auto_submit = fields.Boolean(
        string="Submit automatically",
        help="Prepared entitlements go straight to Pending validation (submitted by whoever "
        "prepares them) instead of waiting in Draft for the cycle's submission.",
    )
    segregation_of_duties = fields.Boolean(
        default=True,
        help="Whoever submitted or corrected an entitlement, or approved its cycle, cannot "
        "approve it (refused [same_user]). Background jobs are exempt.",
    )

    _sql_constraints = [
        ("program_uniq", "unique(program_id)", "A program has at most one entitlement manager of each kind."),
    ]

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            input_check.check_vals(self, vals)
        return super().create(vals_list)

    def write(self, vals):
        input_check.check_vals(self, vals)
        return super().write(vals)

    def _entitlement_model(self):
        """Name of the entitlement model this manager makes."""
        raise NotImplementedError

    def _generated_state_vals(self):
        """The lifecycle values every entitlement this manager generates gets on top of
        the cycle's (``g2p.cycle._entitlement_common_vals``, a draft): with
        ``auto_submit``, pending validation, submitted by the current user now.
        :return: dict"""
        self.ensure_one()
        if not self.auto_submit:
            return {}
        return {
            "state": "pending_validation",
            "submitted_by_id": self.env.uid,
            "date_submitted": fields.Datetime.now(),
        }

    def _prepare_entitlements(self, cycle, partner_ids):
        """Values of the entitlements to create for ``partner_ids`` (res.partner ids,
        enrolled cycle members that have none yet). Returns (vals list, skipped count)."""
        raise NotImplementedError

    def _generate_in_sql(self, cycle, partner_ids, state_vals):
        """Generate the missing entitlements of ``partner_ids`` (res.partner ids, enrolled
        members of ``cycle``) in SQL, figures computed inside the ``INSERT ... SELECT``,
        with ``state_vals`` (:meth:`_generated_state_vals`) on each. Returns (created,
        skipped), or None when some item runs per beneficiary (then the caller uses
        :meth:`_prepare_entitlements` and :meth:`_create_entitlements`). None here:
        managers that can, override."""
        return None

    def _items_sql(self, ids_sql, shared=False):
        """[(lateral, figure, skipped, joins)] of each item (see the item's
        ``_sql_contribution``), or None when one of them runs per beneficiary. With
        ``shared``, the items' aggregates over ``members`` share one grouped join,
        given with the first item's joins (for one query over all the items). The
        context key ``cel_grouped_pass`` keeps every aggregate over ``members`` in the
        grouped pass (no household summary: the previous path, for comparisons)."""
        member_facts = not self.env.context.get("cel_grouped_pass")
        compiler = cel_sql.shared_compiler(ids_sql, member_facts=member_facts) if shared else None
        parts = []
        for index, item in enumerate(self.item_ids):
            part = item._sql_contribution(ids_sql, "i%d" % index, compiler)
            if part is None:
                return None
            parts.append(part)
        if compiler is not None and parts:
            lateral, figure, skipped, joins = parts[0]
            parts[0] = (lateral, figure, skipped, SQL("%s %s", compiler.joins(), joins))
        return parts

    def _flush_for_sql(self, model):
        """Flush everything before generation in SQL (``model``: the entitlement model's
        recordset): the statement reads the registry, the cycle and the managers, and
        what runs after it in the same transaction (approval) may read with SQL what the
        caller changed before (e.g. the manager's warehouse), as after the batched path's
        flush."""
        self.env.flush_all()

    def _create_entitlements(self, model, vals_list):
        """Create the entitlements ``vals_list`` (of ``model``, a recordset of the entitlement
        model). Returns how many were created. The ORM by default; a manager whose values
        are complete may insert them in bulk (see ``g2p.entitlement.base._bulk_insert``)."""
        model.create(vals_list)
        return len(vals_list)

    def _existing_keys(self, cycle, partner_ids):
        """Keys already generated for these beneficiaries (to stay idempotent)."""
        raise NotImplementedError


class G2PEntitlementItemMixin(models.AbstractModel):
    """What every entitlement item has: who it applies to (a domain and/or a CEL
    condition), a CEL formula for its figure, and a multiplier field with a cap."""

    _name = "g2p.program.entitlement.item.mixin"
    _description = "Entitlement item"
    _order = "sequence, id"

    sequence = fields.Integer(default=10)
    condition = fields.Text(help="Odoo domain on the beneficiary (res.partner); empty: everyone.")
    condition_expression = fields.Text(string="Condition (CEL)", help="CEL condition on `me` and `members`.")
    formula = fields.Text(
        string="Formula (CEL)",
        help="CEL expression giving the figure; `base_amount` / `base_quantity` hold the item's own.",
    )
    multiplier_field = fields.Char(
        help="Name of an integer field of the beneficiary (res.partner), e.g. household_size."
    )
    max_multiplier = fields.Integer(default=0, help="Cap on the multiplier; 0: no cap.")
    cel_path = fields.Char(
        compute="_compute_cel_path",
        string="CEL evaluated",
        help="Whether the condition and the formula run in SQL or per beneficiary, and why.",
    )

    _sql_constraints = [
        ("max_multiplier_positive", "CHECK (max_multiplier >= 0)", "The multiplier cap cannot be negative."),
    ]

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            input_check.check_vals(self, vals)
        return super().create(vals_list)

    def write(self, vals):
        input_check.check_vals(self, vals)
        return super().write(vals)

    @api.depends("condition_expression", "formula")
    def _compute_cel_path(self):
        for item in self:
            parts = []
            if item.condition_expression and item.condition_expression.strip():
                parts.append(_("condition %s", cel.path_label(item.condition_expression)))
            if item.formula and item.formula.strip():
                extra = {item._base_variable(): "double"}
                parts.append(_("formula %s", cel.path_label(item.formula, extra)))
            item.cel_path = "; ".join(parts)

    def _compiled_texts(self):
        """(condition, formula) compiled for SQL (cel_sql.Compiled, None when empty), or
        None when either has no SQL form (both then run per beneficiary; so does the
        context key ``cel_per_beneficiary``)."""
        self.ensure_one()
        if self.env.context.get("cel_per_beneficiary"):  # the tests' parity checks
            return None
        out = []
        for text, extra in (
            (self.condition_expression, {}),
            (self.formula, {self._base_variable(): "double"}),
        ):
            if not text or not text.strip():
                out.append(None)
                continue
            try:
                out.append(cel_sql.compile_expression(text, extra))
            except Exception:  # no SQL form, or does not parse (the save checks say why)
                return None
        return tuple(out)

    def _sql_parts(self, condition, formula, base, ids_sql, prefix="", compiler=None):
        """The item's condition and formula as SQL over the res_partner alias ``p``, for
        the registrants among ``ids_sql`` (an SQL subquery of ids): (ok, figure, joins),
        ok true/false/NULL (error), figure a positive finite float8 or NULL (an error,
        or not a positive finite number), joins the grouped LEFT JOINs they read (SQL,
        after ``FROM res_partner p``). ``condition`` / ``formula``: cel_sql.Compiled or
        None (then true / the item's figure ``base``); ``prefix`` keeps the aliases of
        two items apart in one query; ``compiler`` (cel_sql.shared_compiler): the
        aggregates over ``members`` go to its one grouped join (then not in ``joins``)."""
        today = fields.Date.context_today(self)
        extra = {self._base_variable(): base}
        facts = not self.env.context.get("cel_grouped_pass")  # see the manager's _items_sql
        ok, joins = SQL("true"), []
        if condition is not None:
            if compiler is not None:
                ok = condition.shared_part(compiler, "p", today)
            else:
                ok, join = condition.parts("p", today, ids_sql, prefix=prefix + "c", member_facts=facts)
                joins.append(join)
            if condition.type != "bool":
                ok = SQL("(CASE WHEN %s IS NULL THEN NULL ELSE false END)", ok)
        if formula is None or formula.type not in ("int", "double"):
            # no formula: the item's figure; a formula that is not a number: all skipped
            given = formula is None and base > 0  # no formula and no positive figure: nothing, not skipped
            figure = SQL("CAST(%s AS float8)", repr(float(base))) if given else SQL("NULL::float8")
        else:
            if compiler is not None:
                value = formula.shared_part(compiler, "p", today, extra)
            else:
                value, join = formula.parts(
                    "p", today, ids_sql, extra, prefix=prefix + "f", member_facts=facts
                )
                joins.append(join)
            guard = "v > 0" if formula.type == "int" else "v > 0 AND v < 'Infinity'"
            figure = SQL(
                "(SELECT CASE WHEN %s THEN v::float8 END FROM (SELECT %s AS v) f)" % (guard, "%s"), value
            )
        return ok, figure, SQL(" ").join(joins)

    def _sql_answers(self, partner_ids, condition, formula, base):
        """One SQL query: for each of ``partner_ids``, (id, condition answer, figure):
        answer true/false/NULL (error), figure a positive finite float or NULL (an
        error, or not a positive finite number); ``condition`` / ``formula`` are
        cel_sql.Compiled or None (then true / the item's figure ``base``)."""
        ids_sql = SQL("(SELECT unnest(%s::int[]))", list(partner_ids))
        ok, figure, joins = self._sql_parts(condition, formula, base, ids_sql)
        # Raw SQL: the item's condition and formula over a batch in one query (cel_sql);
        # reads only, after a flush of what it reads.
        self.env["res.partner"].flush_model()
        self.env["g2p.group.membership"].flush_model()
        self.env.cr.execute("SET LOCAL jit = off")  # compiling costs more than it saves here
        self.env.cr.execute(
            SQL(
                # OFFSET 0: the answer is computed once (not pulled up into both places)
                "SELECT p.id, c.ok, CASE WHEN c.ok THEN %s END FROM res_partner p %s "
                "CROSS JOIN LATERAL (SELECT %s AS ok OFFSET 0) c WHERE p.id = ANY(%s)",
                figure,
                joins,
                ok,
                list(partner_ids),
            )
        )
        return self.env.cr.fetchall()

    def _sql_contribution(self, ids_sql, prefix, compiler=None):
        """The item's figure and skipped flag as SQL over the res_partner alias ``p``
        (among ``ids_sql``, an SQL subquery of ids), for a generation's INSERT ... SELECT:
        the same answers as :meth:`_figures` (domain, CEL condition and formula,
        multiplier with its cap). Returns (lateral, figure, skipped, joins): ``lateral``
        a ``CROSS JOIN LATERAL`` (SQL) computing the answers once per registrant,
        ``figure`` float8 (NULL: nothing from this item), ``skipped`` boolean (a CEL
        error, or no positive figure from the formula), ``joins`` SQL after ``FROM
        res_partner p``; or None when the item runs per beneficiary (a text without SQL
        form, a multiplier field that is not a stored column). ``compiler``: see
        :meth:`_sql_parts`."""
        self.ensure_one()
        compiled = self._compiled_texts()
        if compiled is None:
            return None
        multiplier = None
        if self.multiplier_field:
            field = self.env["res.partner"]._fields.get(self.multiplier_field)
            if not (field and field.store and field.column_type):
                return None
            value = SQL("coalesce(p.%s, 0)", SQL.identifier(field.name))
            multiplier = SQL("least(%s, %s)", value, self.max_multiplier) if self.max_multiplier else value
        in_domain = SQL("true")
        if self.condition and self.condition.strip():
            domain = self.env["g2p.program"]._parse_domain(self.condition, self._item_label())
            query = self.env["res.partner"].sudo().with_context(active_test=False)._search(domain)
            in_domain = SQL("(p.id IN %s)", query.subselect())
        condition, formula = compiled
        ok, figure, joins = self._sql_parts(
            condition, formula, float(self._base_figure() or 0.0), ids_sql, prefix=prefix, compiler=compiler
        )
        alias = SQL.identifier(prefix + "a")
        lateral = SQL(
            # OFFSET 0: each answer computed once, read twice below
            "CROSS JOIN LATERAL (SELECT %s AS d, %s AS ok, %s AS fig %s OFFSET 0) %s",
            in_domain,
            ok,
            figure,
            SQL(", %s AS mul", multiplier) if multiplier is not None else SQL(),
            alias,
        )
        a = lambda name: SQL("%s.%s", alias, SQL.identifier(name))  # noqa: E731
        if multiplier is None:
            contribution = SQL("CASE WHEN %s AND %s THEN %s END", a("d"), a("ok"), a("fig"))
        else:
            contribution = SQL(
                "CASE WHEN %s AND %s AND %s > 0 THEN %s * %s::float8 END",
                a("d"),
                a("ok"),
                a("mul"),
                a("fig"),
                a("mul"),
            )
        skipped = SQL(
            "coalesce(%s AND (%s IS NULL OR (%s AND %s IS NULL AND %s)), false)",
            a("d"),
            a("ok"),
            a("ok"),
            a("fig"),
            SQL("true") if formula is not None else SQL("false"),
        )
        return lateral, contribution, skipped, joins

    def _item_label(self):
        self.ensure_one()
        return _("Item %s", self.display_name)

    @api.constrains("condition")
    def _check_condition(self):
        for item in self:
            self.env["g2p.program"]._parse_domain(
                item.condition, _("The condition of %s", item._item_label())
            )

    @api.constrains("condition_expression", "formula")
    def _check_expressions(self):
        for item in self:
            cel.check_expression(item.condition_expression, _("The condition of %s", item._item_label()))
            cel.check_expression(item.formula, _("The formula of %s", item._item_label()))

    @api.constrains("max_multiplier")
    def _check_max_multiplier(self):
        for item in self:
            if item.max_multiplier < 0:
                raise ValidationError(
                    coded(
                        "bad_value",
                        _(
                            "%s: the multiplier cap cannot be negative (0: no cap).",
                            item._item_label(),
                        ),
                    )
                )

    @api.constrains("multiplier_field")
    def _check_multiplier_field(self):
        for item in self.filtered("multiplier_field"):
            field = self.env["res.partner"]._fields.get(item.multiplier_field)
            if not field or field.type != "integer":
                raise ValidationError(
                    coded(
                        "bad_multiplier_field",
                        _(
                            "%(item)s: %(field)s is not an integer field of registrants "
                            "(e.g. household_size).",
                            item=item._item_label(),
                            field=item.multiplier_field,
                        ),
                    )
                )

    def _base_figure(self):
        """The item's own figure (amount or quantity), a float."""
        raise NotImplementedError

    def _base_variable(self):
        """The CEL name the formula reads the item's figure from."""
        raise NotImplementedError

    def _figures(self, partner_ids):
        """The item's figure for each of ``partner_ids`` (res.partner ids).

        figure = formula result (else the item's own), times the multiplier field's
        value when one is set (capped at max_multiplier unless 0). Beneficiaries outside
        the condition get none; on whom a CEL expression fails, or whose formula gives
        something that is not a positive finite number, are skipped and counted.

        :return: ({partner id: figure (float, > 0)}, skipped count)
        """
        self.ensure_one()
        ids = list(partner_ids)
        compiled = self._compiled_texts()
        if self.condition and self.condition.strip():
            domain = self.env["g2p.program"]._parse_domain(self.condition, self._item_label())
            ids = (
                self.env["res.partner"]
                .sudo()
                .with_context(active_test=False)
                ._search([("id", "in", ids), *domain], order="id")
                .get_result_ids()
            )
        skipped = 0
        base = float(self._base_figure() or 0.0)
        if compiled is not None and ids:
            condition, formula = compiled
            figures = {}
            for pid, ok, figure in self._sql_answers(ids, condition, formula, base):
                if ok is None:
                    skipped += 1
                elif ok and figure is None:
                    skipped += 1 if formula is not None else 0
                elif ok:
                    figures[pid] = figure
            if skipped:
                _logger.warning(
                    "%s: skipped %d beneficiaries (CEL error or no positive figure, in SQL)",
                    self._item_label(),
                    skipped,
                )
            return self._apply_multiplier(figures), skipped
        if self.condition_expression and self.condition_expression.strip():
            evaluator = cel.Evaluator(self.env, self.condition_expression, self._item_label())
            results = evaluator.results(ids)
            ids = [pid for pid in ids if results.get(pid) is True]
            skipped += evaluator.errors
            evaluator.log_errors()
        if self.formula and self.formula.strip():
            evaluator = cel.Evaluator(self.env, self.formula, self._item_label())
            raw = evaluator.results(ids, {self._base_variable(): base})
            evaluator.log_errors()
            figures = {}
            for pid in ids:
                value = cel.positive_number(raw.get(pid))
                if value is None:
                    skipped += 1
                else:
                    figures[pid] = value
        else:
            figures = dict.fromkeys(ids, base) if base > 0 else {}
        return self._apply_multiplier(figures), skipped

    def _apply_multiplier(self, figures):
        """``figures`` ({partner id: float}) times the multiplier field (capped), those
        whose multiplier is not positive left out."""
        if self.multiplier_field and figures:
            values = self._multipliers(list(figures))
            figures = {pid: fig * values[pid] for pid, fig in figures.items() if values.get(pid, 0) > 0}
        return figures

    def _multipliers(self, partner_ids):
        Partner = self.env["res.partner"].sudo()
        field = Partner._fields[self.multiplier_field]
        if field.store and field.column_type:
            # a stored field (e.g. household_size): one query, no ORM read per batch
            Partner.flush_model([field.name])
            self.env.cr.execute(
                SQL(
                    "SELECT id, %s FROM res_partner WHERE id = ANY(%s)",
                    SQL.identifier(field.name),
                    list(partner_ids),
                )
            )
            rows = self.env.cr.fetchall()
        else:
            partners = Partner.browse(partner_ids)
            rows = [
                (row["id"], row[field.name])
                for start in range(0, len(partner_ids), BATCH_SIZE)
                for row in partners[start : start + BATCH_SIZE].read([field.name])
            ]
        values = {}
        for partner_id, value in rows:
            value = value or 0
            values[partner_id] = min(value, self.max_multiplier) if self.max_multiplier else value
        return values

    def action_preview(self):
        """Count, over the program's enrolled beneficiaries now, how many the item gives
        something to and how many it would skip (CEL error or a non-positive figure).
        :return: a notification action (dict)."""
        self.ensure_one()
        program = self.manager_id.program_id
        partner_ids = program.program_membership_ids.filtered(lambda m: m.state == "enrolled").partner_id.ids
        if not partner_ids:
            raise UserError(
                coded("nothing_to_preview", _("Program %s has no enrolled beneficiary yet.", program.name))
            )
        figures, skipped = self._figures(partner_ids)
        total = sum(figures.values())
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": _("Preview of %s", self._item_label()),
                "message": _(
                    "%(given)s of %(all)s beneficiaries get something (total %(total)s); %(skipped)s would be skipped.",
                    given=len(figures),
                    all=len(partner_ids),
                    total=round(total, 2),
                    skipped=skipped,
                ),
                "sticky": True,
                "type": "warning" if skipped else "info",
            },
        }
