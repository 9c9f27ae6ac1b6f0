import logging

from psycopg2.extras import execute_values

from odoo import _, api, fields, models
from odoo.addons.queue_job.delay import chain
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL

from .. import ern, input_check
from ..refusal import coded

_logger = logging.getLogger(__name__)

ENTITLEMENT_STATES = [
    ("draft", "Draft"),
    ("pending_validation", "Pending validation"),
    ("approved", "Approved"),
    ("transferred", "Transferred"),
    ("redeemed", "Redeemed"),
    ("partially_redeemed", "Partially redeemed"),
    ("rejected", "Rejected"),
    ("cancelled", "Cancelled"),
    ("expired", "Expired"),
]
# Action -> (the states it may start from, the state it leads to). Anything else is refused.
ENTITLEMENT_TRANSITIONS = {
    "submit": (("draft",), "pending_validation"),
    "approve": (("pending_validation",), "approved"),
    "transfer": (("approved",), "transferred"),
    "redeem": (("approved", "transferred"), "redeemed"),
    "redeem_partially": (("approved", "transferred"), "partially_redeemed"),
    "reverse": (("redeemed",), "approved"),
    "reject": (("draft", "pending_validation", "approved"), "rejected"),
    "cancel": (("draft", "pending_validation", "approved", "transferred"), "cancelled"),
    "expire": (("approved", "transferred"), "expired"),
    "reset": (("pending_validation", "rejected", "cancelled"), "draft"),
}
REJECTION_REASONS = [
    ("declined", "Declined by the beneficiary"),
    ("account_missing", "Account missing"),
    ("other", "Other"),
]
SQL_BATCH = 5000
# The database's time in UTC, as Odoo stores datetimes (a value for _set_state).
NOW_UTC = SQL("now() at time zone 'UTC'")
# What a reset to draft clears (the ERN, the approval, the rejection, the cancellation).
RESET_COLUMNS = (
    "code",
    "date_submitted",
    "submitted_by_id",
    "date_approved",
    "approved_by_id",
    "rejection_reason",
    "rejection_note",
    "date_rejected",
    "rejected_by_id",
    "date_cancelled",
    "cancelled_by_id",
)
# What the lifecycle methods and the redemption ledger own: nobody but the superuser (the
# suite's own code, after its checks) writes them with create/write, over RPC or not.
LIFECYCLE_FIELDS = frozenset(
    {
        "state",
        "code",
        "date_approved",
        "approved_by_id",
        "rejection_reason",
        "rejection_note",
        "date_rejected",
        "rejected_by_id",
        "date_cancelled",
        "cancelled_by_id",
        "date_submitted",
        "submitted_by_id",
        "partner_id",
        "cycle_id",
        "initial_amount",
        "amount_redeemed",
        "balance",
        "quantity",
        "quantity_redeemed",
        "quantity_balance",
    }
)
# Of those, what a new (draft) entitlement may give.
CREATE_FIELDS = frozenset({"partner_id", "cycle_id", "initial_amount", "quantity", "state"})
# What an officer may correct on a draft (OpenSPP's Entitlements guide, "Modifying
# entitlements": adjust amounts, change validity dates, add notes); each change is logged
# (g2p.entitlement.correction). The figures (amount, quantity) only in draft; the dates
# also later, by program managers (as before).
CORRECTION_FIGURES = frozenset({"initial_amount", "quantity"})
CORRECTION_FIELDS = CORRECTION_FIGURES | {"valid_from", "valid_until", "note"}
# Cycle states in which single entitlements are submitted (a draft cycle's are submitted
# with the cycle, by ``to_approve``).
SUBMIT_CYCLE_STATES = ("to_approve", "approved")
# What approval commits to the budget: the entitlements in these states.
COMMITTED_STATES = ("approved", "transferred", "redeemed", "partially_redeemed")


class G2PEntitlementBase(models.AbstractModel):
    """The entitlement lifecycle, shared by cash (``g2p.entitlement``) and in-kind
    (``g2p.entitlement.inkind``) entitlements.

    Batch operations write the state with one SQL statement per slice and log one
    message on the cycle, not one per entitlement."""

    _name = "g2p.entitlement.base"
    _description = "Entitlement lifecycle"
    _inherit = ["mail.thread"]
    _order = "id desc"
    _check_company_auto = True

    # ------------------------------------------------------------------
    # Who and when
    # ------------------------------------------------------------------
    # code and cycle_id: no index of their own, each model's unique constraints
    # (code_uniq; cycle_id first in the cycle/partner one) index them; a duplicate index
    # costs every insert, and every redemption's update, one more index entry.
    code = fields.Char(string="ERN", readonly=True, copy=False, help="Entitlement reference number.")
    partner_id = fields.Many2one(
        "res.partner", string="Beneficiary", required=True, index=True, ondelete="restrict", readonly=True
    )
    cycle_id = fields.Many2one("g2p.cycle", required=True, ondelete="restrict", readonly=True)
    program_id = fields.Many2one(related="cycle_id.program_id", store=True, index=True)
    company_id = fields.Many2one(related="cycle_id.company_id", store=True, index=True)
    valid_from = fields.Date(compute="_compute_validity", store=True, readonly=False, precompute=True)
    valid_until = fields.Date(compute="_compute_validity", store=True, readonly=False, precompute=True)

    # ------------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------------
    state = fields.Selection(ENTITLEMENT_STATES, default="draft", required=True, index=True, readonly=True)
    date_approved = fields.Datetime(readonly=True, copy=False)
    approved_by_id = fields.Many2one("res.users", readonly=True, copy=False)
    rejection_reason = fields.Selection(REJECTION_REASONS, readonly=True, copy=False)
    rejection_note = fields.Text(readonly=True, copy=False)
    date_rejected = fields.Datetime(readonly=True, copy=False)
    rejected_by_id = fields.Many2one("res.users", readonly=True, copy=False)
    date_cancelled = fields.Datetime(readonly=True, copy=False)
    cancelled_by_id = fields.Many2one("res.users", readonly=True, copy=False)
    date_submitted = fields.Datetime(readonly=True, copy=False)
    submitted_by_id = fields.Many2one("res.users", readonly=True, copy=False)

    # ------------------------------------------------------------------
    # Corrections (drafts: amount, quantity, validity, note)
    # ------------------------------------------------------------------
    note = fields.Text(copy=False, help="The officer's note on this entitlement (each change is logged).")
    correction_ids = fields.One2many(
        "g2p.entitlement.correction",
        "res_id",
        string="Corrections",
        readonly=True,
        help="Who changed what on this entitlement, when, from what to what.",
    )

    @api.depends("cycle_id")
    def _compute_validity(self):
        for entitlement in self:
            if not entitlement.valid_from:
                entitlement.valid_from = entitlement.cycle_id.start_date
            if not entitlement.valid_until:
                entitlement.valid_until = entitlement.cycle_id.end_date

    def _compute_display_name(self):
        for entitlement in self:
            entitlement.display_name = entitlement.code or _(
                "Draft entitlement of %s", entitlement.partner_id.name
            )

    def _check_validity(self):
        """Refuse (ValidationError ``[bad_validity]``) an entitlement of ``self`` valid
        until a day before it is valid from. Checked on users' creates and writes (the
        suite's own code and tests may date an entitlement in the past to expire it)."""
        for entitlement in self:
            if (
                entitlement.valid_from
                and entitlement.valid_until
                and entitlement.valid_until < entitlement.valid_from
            ):
                raise ValidationError(
                    coded(
                        "bad_validity",
                        _(
                            "Entitlement %(name)s would be valid until %(until)s, before it is valid from "
                            "%(from)s: give an end on or after the start.",
                            name=entitlement.display_name,
                            until=entitlement.valid_until,
                            **{"from": entitlement.valid_from},
                        ),
                    )
                )

    # ------------------------------------------------------------------
    # Creation
    # ------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su:
            self.check_access_rights("create")  # a role without the right hears so first
            for vals in vals_list:
                names = [n for n in vals if n in LIFECYCLE_FIELDS - CREATE_FIELDS and vals[n]]
                if vals.get("state", "draft") != "draft":
                    names.append("state")
                self._check_lifecycle_vals(names)
        self._complete_vals(vals_list)
        records = super().create(vals_list)
        if not self.env.su:
            records._check_validity()
        return records

    def write(self, vals):
        """Officers correct drafts (CORRECTION_FIELDS: amount, quantity, validity, note);
        program managers also write the other non-lifecycle fields and the validity of
        entitlements past draft. Each correction is logged (:meth:`_log_corrections`).

        :raise AccessError: ``[not_allowed]`` an officer writes an entitlement that is
            not a draft, or a field that is not a correction.
        :raise UserError: ``[use_actions]`` a lifecycle field, or a figure (amount,
            quantity) of an entitlement that is not a draft."""
        if self.env.su:
            return super().write(vals)
        self.check_access_rights("write")
        if not self.env.user.has_group("g2p_programs_ext.group_program_manager"):
            others = sorted(n for n in vals if n not in CORRECTION_FIELDS)
            if others:
                raise AccessError(
                    coded(
                        "not_allowed",
                        _(
                            "Program officers correct the amount, quantity, validity and note of draft "
                            "entitlements only, not %s.",
                            ", ".join(others),
                        ),
                    )
                )
            self._check_drafts(sorted(vals), AccessError, "not_allowed")
        self._check_lifecycle_vals([n for n in vals if n in LIFECYCLE_FIELDS - CORRECTION_FIELDS])
        input_check.check_vals(self, vals)
        corrected = [n for n in vals if n in CORRECTION_FIELDS and n in self._fields]
        figures = [n for n in corrected if n in CORRECTION_FIGURES]
        if figures:
            self._check_drafts(figures)
        old = self._correction_values(corrected)
        res = super().write(vals)
        if "valid_from" in vals or "valid_until" in vals:
            self._check_validity()
        self._log_corrections(old)
        return res

    @api.ondelete(at_uninstall=False)
    def _unlink_only_drafts(self):
        """Only draft entitlements can be deleted: a pending or approved one is rejected or
        cancelled instead (which releases its stock and keeps the record)."""
        if self.env.su:
            return
        self.check_access_rights("unlink")
        first = self._first_with_state(("draft",), exclude=True)
        if first:
            raise UserError(
                coded(
                    "use_actions",
                    _(
                        "Entitlement %s is not a draft: reject or cancel it instead of deleting it.",
                        self.browse(first).display_name,
                    ),
                )
            )

    def _first_with_state(self, states, exclude=False):
        """The smallest id of ``self`` whose state is in ``states`` (with ``exclude``:
        is not), or None. Raw SQL: a check over up to 100,000 records that reads no
        column into the cache; the states are flushed first, nothing is written."""
        self.flush_recordset(["state"])
        self.env.cr.execute(
            SQL(
                "SELECT id FROM %s WHERE id = ANY(%s) AND %s state IN %s ORDER BY id LIMIT 1",
                SQL.identifier(self._table),
                self.ids,
                SQL("NOT") if exclude else SQL(""),
                tuple(states),
            )
        )
        row = self.env.cr.fetchone()
        return row[0] if row else None

    def _check_drafts(self, names, error=UserError, code="use_actions"):
        """Raise ``error`` (``[code]``) unless every entitlement of ``self`` is a draft:
        the fields ``names`` only change in draft (after, cancel and recreate)."""
        first = self._first_with_state(("draft",), exclude=True)
        if first:
            raise error(
                coded(
                    code,
                    _(
                        "%(fields)s of entitlement %(name)s cannot change: it is not a draft. Reset it to "
                        "draft first (pending or rejected), or cancel it and create another.",
                        fields=", ".join(sorted(names)),
                        name=self.browse(first).display_name,
                    ),
                )
            )

    def _correction_values(self, names):
        """{entitlement id: {field: value}} the values of ``names`` before a correction
        (one read for the batch). :return: dict"""
        if not names or not self:
            return {}
        return {row["id"]: row for row in self.sudo().read(names, load=False)}

    def _log_corrections(self, old):
        """Log what changed since ``old`` (from :meth:`_correction_values`): one
        g2p.entitlement.correction row per entitlement and field that changed, created in
        one batch, and one message per cycle summing the batch up."""
        if not old:
            return
        Correction = self.env["g2p.entitlement.correction"].sudo()
        records = self.sudo().browse(list(old))
        new = {
            row["id"]: row
            for row in records.read([n for n in next(iter(old.values())) if n != "id"], load=False)
        }
        vals_list = []
        for entitlement in records:
            before, after = old[entitlement.id], new[entitlement.id]
            for name in before:
                if name == "id" or before[name] == after[name]:
                    continue
                field = self._fields[name]
                vals_list.append(
                    {
                        "res_model": self._name,
                        "res_id": entitlement.id,
                        "cycle_id": entitlement.cycle_id.id,
                        "program_id": entitlement.program_id.id,
                        "field_name": name,
                        "field_description": field._description_string(self.env),
                        "old_value": Correction._format_value(field, before[name]),
                        "new_value": Correction._format_value(field, after[name]),
                        "user_id": self.env.uid,
                    }
                )
        if not vals_list:
            return
        Correction.create(vals_list)
        changed = records.browse(sorted({v["res_id"] for v in vals_list}))
        labels = sorted({v["field_description"] for v in vals_list})
        changed._log_on_cycles(
            _("Corrected by %(user)s: %(fields)s", user=self.env.user.name, fields=", ".join(labels))
        )

    @api.model
    def _check_lifecycle_vals(self, names):
        """Refuse (UserError ``[use_actions]``) to set the fields ``names`` (of
        LIFECYCLE_FIELDS) directly: states change through the actions (approve, reject,
        cancel, reset), figures through redemptions; a new entitlement is a draft."""
        if names:
            raise UserError(
                coded(
                    "use_actions",
                    _(
                        "%(fields)s of entitlements cannot be set directly: use the actions "
                        "(approve, reject, cancel, reset to draft) and redemptions.",
                        fields=", ".join(sorted(names)),
                    ),
                )
            )

    @api.model
    def _complete_vals(self, vals_list):
        """Hook: fill in values of new entitlements (in place) before they are created,
        by the ORM or in bulk. Each addon that adds a field to every entitlement fills it here,
        and in :meth:`_complete_sql` (generation in SQL). Returns ``vals_list``."""
        return vals_list

    @api.model
    def _complete_sql(self, values):
        """Hook, the SQL twin of :meth:`_complete_vals` for generation in one
        ``INSERT ... SELECT`` (:meth:`_insert_select_sql`): add to ``values`` ({field
        name: SQL expression over the beneficiary, res_partner aliased ``p``, or a
        constant}) the fields an addon fills in ``_complete_vals``, where missing.
        Returns ``values``."""
        return values

    @api.model
    def _insert_select_sql(self, values, source, conflict):
        """SQL of ``INSERT INTO <table> (...) SELECT ... FROM <source>``: new entitlements
        in one statement, for generation at scale (the SQL twin of :meth:`_bulk_insert`).

        ``values``: {field name: an ``SQL`` expression over ``source`` (the beneficiary
        is res_partner aliased ``p``), or a constant (ids, numbers, dates, selection
        keys; False is NULL but for booleans)}; it must give every stored field that is
        computed or related; :meth:`_complete_sql` adds the addons' fields;
        ``create_uid``/``write_uid``/dates are added. Rows that would break the unique
        constraint on the ``conflict`` columns are skipped (``ON CONFLICT DO
        NOTHING``). The statement ``RETURNING 1`` for each row inserted; the caller
        flushes before and invalidates the model after.

        :return: SQL"""
        values = self._complete_sql(dict(values))
        now = fields.Datetime.now()
        values.update(create_uid=self.env.uid, write_uid=self.env.uid, create_date=now, write_date=now)
        columns, exprs = [], []
        for name, value in values.items():
            field = self._fields[name]
            if field.type in ("one2many", "many2many") or not field.store:
                raise ValueError("_insert_select_sql takes stored, non-relational-list fields only")
            columns.append(SQL.identifier(name))
            if isinstance(value, SQL) and field.column_type[0] == "numeric":
                # a double through its shortest text, as psycopg2 sends a Python float:
                # the same digits as _bulk_insert writes (a direct cast keeps only 15)
                value = SQL("CAST(CAST(CAST(%s AS float8) AS text) AS numeric)", value)
            elif not isinstance(value, SQL):
                if field.type == "boolean":
                    value = bool(value)
                elif value is False:
                    value = None
                # typed: a bare NULL or text literal would not fit an integer column
                value = SQL("CAST(%s AS %s)", value, SQL(field.column_type[1]))
            exprs.append(value)
        return SQL(
            "INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT (%s) DO NOTHING RETURNING 1",
            SQL.identifier(self._table),
            SQL(", ").join(columns),
            SQL(", ").join(exprs),
            source,
            SQL(", ").join(SQL.identifier(c) for c in conflict),
        )

    @api.model
    def _bulk_insert(self, vals_list, conflict=()):
        """Insert new entitlements with one SQL INSERT per batch: for generation at scale,
        where the ORM's per-record work (defaults, computes, chatter) is not needed.

        ``vals_list`` must give every stored field that is computed or related (the
        caller's job); ``create_uid``/``write_uid``/dates are added. Rows that would break
        the unique constraint on the ``conflict`` columns are skipped
        (``ON CONFLICT DO NOTHING``): generation stays idempotent under concurrency.

        :return: int, the number of rows inserted.
        """
        if not vals_list:
            return 0
        self._complete_vals(vals_list)
        names = sorted({name for vals in vals_list for name in vals})
        fields_ = [self._fields[name] for name in names]
        if any(f.type in ("one2many", "many2many") or not f.store for f in fields_):
            raise ValueError("_bulk_insert takes stored, non-relational-list fields only")
        columns = [*names, "create_uid", "write_uid", "create_date", "write_date"]
        now = fields.Datetime.now()
        # Values are plain (ids, numbers, dates, selection keys): False means NULL but for
        # booleans. (Field.convert_to_column would read the currency of every monetary.)
        booleans = {f.name for f in fields_ if f.type == "boolean"}
        rows = [
            [
                bool(vals.get(name))
                if name in booleans
                else (vals.get(name) if vals.get(name) is not False else None)
                for name in names
            ]
            + [self.env.uid, self.env.uid, now, now]
            for vals in vals_list
        ]
        self.flush_model()
        query = "INSERT INTO {table} ({columns}) VALUES %s {conflict} RETURNING id".format(
            table=self._table,
            columns=", ".join('"%s"' % c for c in columns),
            conflict="ON CONFLICT (%s) DO NOTHING" % ", ".join(conflict) if conflict else "",
        )
        inserted = execute_values(self.env.cr._obj, query, rows, page_size=len(rows), fetch=True)
        self.invalidate_model()
        return len(inserted)

    # ------------------------------------------------------------------
    # Transitions
    # ------------------------------------------------------------------
    def _check_transition(self, action):
        """Return the state ``action`` leads to; raise UserError naming the first
        entitlement of ``self`` whose state does not allow it (nothing changes)."""
        sources, target = ENTITLEMENT_TRANSITIONS[action]
        labels = dict(ENTITLEMENT_STATES)
        if not self:
            return target
        self.flush_recordset(["state"])
        # One query for the whole batch (reading state record by record would prefetch every column).
        self.env.cr.execute(
            f"SELECT id, count(*) OVER () FROM {self._table} WHERE id = ANY(%s) AND state NOT IN %s ORDER BY id LIMIT 1",
            [self.ids, tuple(sources)],
        )
        row = self.env.cr.fetchone()
        if row:
            wrong = self.browse(row[0])
            raise UserError(
                coded(
                    "wrong_state",
                    _(
                        "Entitlement %(name)s is %(state)s: it can only become %(target)s "
                        "from %(sources)s. Nothing was changed (%(count)s of %(total)s selected are in the wrong state).",
                        name=wrong.display_name,
                        state=labels[wrong.state],
                        target=labels[target],
                        sources=_(" or ").join(labels[s] for s in sources),
                        count=row[1],
                        total=len(self),
                    ),
                )
            )
        return target

    def _set_state(self, target, values=None):
        """Write ``target`` on all of ``self`` with one UPDATE per slice (no per-record
        chatter or tracking), and ``values`` ({column: value, or an ``SQL`` expression
        such as ``NOW_UTC``}) with it; callers check the transition and log once per batch.

        SQL, not ``write``: batches of up to 100,000 entitlements (``write`` would track
        and post per record, 57x slower); the callers checked the user's rights. The
        cache stays right: flushed before, invalidated and ``state`` marked modified after."""
        self.flush_recordset()
        assignments = [
            SQL("state = %s", target),
            SQL("write_uid = %s", self.env.uid),
            SQL("write_date = %s", NOW_UTC),
            *(SQL("%s = %s", SQL.identifier(column), value) for column, value in (values or {}).items()),
        ]
        for start in range(0, len(self.ids), SQL_BATCH):
            ids = self.ids[start : start + SQL_BATCH]
            self.env.cr.execute(
                SQL(
                    "UPDATE %s SET %s WHERE id = ANY(%s)",
                    SQL.identifier(self._table),
                    SQL(", ").join(assignments),
                    ids,
                )
            )
        self.invalidate_recordset()
        self.modified(["state"])

    def _cycles(self):
        """The cycles (g2p.cycle) of the entitlements ``self``, in SQL: ``self.cycle_id``
        would fetch every column of every entitlement (100,000 rows in an approval)."""
        if not self:
            return self.env["g2p.cycle"]
        self.flush_recordset(["cycle_id"])
        self.env.cr.execute(f"SELECT DISTINCT cycle_id FROM {self._table} WHERE id = ANY(%s)", [self.ids])
        return self.env["g2p.cycle"].browse(sorted(row[0] for row in self.env.cr.fetchall()))

    def _log_on_cycles(self, message):
        """One message per cycle for a batch operation on its entitlements (counted in SQL)."""
        if not self:
            return
        self.flush_recordset(["cycle_id"])
        self.env.cr.execute(
            f"SELECT cycle_id, count(*) FROM {self._table} WHERE id = ANY(%s) GROUP BY cycle_id", [self.ids]
        )
        for cycle_id, count in self.env.cr.fetchall():
            self.env["g2p.cycle"].browse(cycle_id)._message_log(
                body=_("%(msg)s (%(count)s %(model)s)", msg=message, count=count, model=self._description)
            )

    def _check_group(self, xmlid):
        if not self.env.su and not self.env.user.has_group(xmlid):
            raise AccessError(
                coded(
                    "not_allowed",
                    _(
                        "Only the group %s may do this on entitlements.",
                        self.env.ref(xmlid).display_name,
                    ),
                )
            )

    # ------------------------------------------------------------------
    # Hooks for the entitlement models
    # ------------------------------------------------------------------
    def _manager_model(self):
        """Name of the entitlement manager model that makes entitlements of this model."""
        raise NotImplementedError

    def _validation_groups(self):
        """{entitlement id: res.groups} the validation group of the manager that made each
        entitlement (an empty recordset where the manager has none)."""
        if not self:
            return {}
        # SQL: reading program_id through the ORM would fetch every column of 100,000 rows
        self.flush_recordset(["program_id"])
        self.env.cr.execute(f"SELECT id, program_id FROM {self._table} WHERE id = ANY(%s)", [self.ids])
        program_of = dict(self.env.cr.fetchall())
        managers = (
            self.env[self._manager_model()]
            .sudo()
            .search([("program_id", "in", list(set(program_of.values())))])
        )
        by_program = {m.program_id.id: m.validation_group_id for m in managers}
        return {eid: by_program.get(program_of.get(eid)) for eid in self.ids}

    @api.model
    def _cycle_validation_group(self, cycle):
        """res.groups: the validation group of this model's entitlement manager on
        ``cycle``'s program (as :meth:`_validation_groups` gives it to each of the
        cycle's entitlements), an empty recordset when it has none."""
        managers = self.env[self._manager_model()].sudo().search([("program_id", "=", cycle.program_id.id)])
        by_program = {m.program_id.id: m.validation_group_id for m in managers}
        return by_program.get(cycle.program_id.id, self.env["res.groups"])

    def _before_approve(self):
        """Called after every check and before the state changes."""

    def _approval_values(self):
        """Hook: values that the approval's own UPDATE writes on ``self`` with the state,
        so that no row is updated twice in the transaction (a second UPDATE of a row
        costs about three times the first: PostgreSQL checks all its foreign keys again).
        Called after :meth:`_before_approve`; may refuse (in-kind: the stock check).

        :return: dict {column of a many2one: {entitlement id: record id}}; an entitlement
            left out keeps its value. Empty here."""
        return {}

    def _after_approve(self):
        """Hook: called right after the approval's UPDATE, in the same transaction
        (in-kind: reserve the stock of the allocations just written)."""

    def _check_before_approve(self):
        """Refuse, writing nothing, what :meth:`_before_approve` would refuse for all of
        ``self`` (in-kind: the stock check). Called for a whole cycle before its approval
        runs as jobs, so that a shortage refuses everything before any job."""

    @api.model
    def _check_cycle_before_approve(self, cycle):
        """:meth:`_check_before_approve` for every pending entitlement of this model in
        ``cycle`` (g2p.cycle), without their ids in memory (in-kind: the stock check
        summed in PostgreSQL). Writes nothing. Nothing here."""

    def _release(self):
        """Called when approved entitlements are rejected, cancelled or expired (in-kind: stock)."""

    def _redeemed_quantity_field(self):
        """Name of the stored field holding what was redeemed (0 = nothing)."""
        raise NotImplementedError

    @api.model
    def _cycle_submitted(self, cycles, id_range=None, log=True):
        """Cycles (g2p.cycle) go to ``to_approve``: their draft entitlements (those with
        ids in ``id_range`` = (first, last), both included, when given) wait for
        validation, submitted by the user now; with ``log`` one message per cycle.
        :return: int, the number of entitlements submitted."""
        domain = [("cycle_id", "in", cycles.ids), ("state", "=", "draft")]
        if id_range:
            domain += [("id", ">=", id_range[0]), ("id", "<=", id_range[1])]
        drafts = self.sudo().search(domain, order="id")
        drafts._set_state(
            drafts._check_transition("submit"),
            {"submitted_by_id": self.env.uid, "date_submitted": NOW_UTC},
        )
        if drafts and log:
            drafts._log_on_cycles(_("Submitted for validation"))
        return len(drafts)

    @api.model
    def _cycle_entitlement_ids(self, cycle, states, id_range=None, unredeemed=False):
        """Ids (ascending) of the entitlements of ``cycle`` (g2p.cycle) in ``states``,
        with ids in ``id_range`` ((first, last), both included) when given, and with
        ``unredeemed`` only those with nothing redeemed. SQL: ``search`` would also read
        their rows into the cache (millions at national scale); flushed first, reads only."""
        self.flush_model(["cycle_id", "state", self._redeemed_quantity_field()])
        first, last = id_range or (None, None)
        self.env.cr.execute(
            SQL(
                """SELECT id FROM %s WHERE cycle_id = %s AND state IN %s
                      AND (%s::int IS NULL OR id >= %s) AND (%s::int IS NULL OR id <= %s) %s
                    ORDER BY id""",
                SQL.identifier(self._table),
                cycle.id,
                tuple(states),
                first,
                first,
                last,
                last,
                SQL("AND coalesce(%s, 0) = 0", SQL.identifier(self._redeemed_quantity_field()))
                if unredeemed
                else SQL(""),
            )
        )
        return [row[0] for row in self.env.cr.fetchall()]

    @api.model
    def _cycle_cancelled(self, cycles, id_range=None, log=True):
        """Cycles (g2p.cycle) are cancelled: their open entitlements with nothing
        redeemed (those with ids in ``id_range`` = (first, last) when given) are
        cancelled, the stock of approved ones released; with ``log`` one message per
        cycle. :return: int, the number of entitlements cancelled."""
        ids = []
        for cycle in cycles:
            ids += self._cycle_entitlement_ids(
                cycle, ENTITLEMENT_TRANSITIONS["cancel"][0], id_range, unredeemed=True
            )
        records = self.sudo().browse(ids)
        records._do_cancel(log=log)
        return len(records)

    # ------------------------------------------------------------------
    # Public methods (the contract)
    # ------------------------------------------------------------------
    def approve_entitlement(self):
        """Approve entitlements (the list's *Action > Approve*).

        Needs, for every entitlement: its cycle ``approved``, state
        ``pending_validation``, its manager's validation group set and the user in it.
        A batch where one entitlement fails a check is refused whole, naming it; nothing
        changes. Sets the ERN (``code``), ``date_approved`` and ``approved_by_id``.

        A selection larger than the async threshold (system parameter
        ``g2p_programs_ext.async_threshold``) is checked whole in the request (every
        check above, the budgets and, in-kind, the stock), then its cycles are locked and
        queue_job jobs approve it in slices of ``g2p_programs_ext.job_batch_size``, one
        after the other; the last job of each cycle unlocks it with one message. A job
        run twice approves nothing twice; one that fails for good unlocks the cycles
        (what earlier jobs approved stays approved; approving the selection again
        approves the rest).

        :return: True
        :raise UserError: wrong state, cycle not approved or locked, no validation group,
            ``[over_budget]``, ``[out_of_stock]`` (in-kind).
        :raise AccessError: the user is not a validator or not in a validation group.
        """
        self._check_group("g2p_programs_ext.group_program_validator")
        self.check_access_rule("read")
        if not self:
            return True
        if len(self) > self.env["g2p.program"]._async_threshold():
            return self._approve_async()
        target = self._check_approval()
        records = self.sudo().with_context(tracking_disable=True)
        records._check_budget()
        records._approve_checked(target)
        return True

    def _check_approval(self, in_job=False):
        """Every check of :meth:`approve_entitlement` on ``self`` (the user's recordset)
        but the budget: state, cycle approved and (unless ``in_job``: the cycle's own
        approval jobs run while it is locked) not locked, validation groups, segregation
        of duties. Writes nothing.

        :return: the target state
        :raise UserError, AccessError: as :meth:`approve_entitlement`."""
        records = self.sudo().with_context(tracking_disable=True)
        target = records._check_transition("approve")
        cycles = records._cycles()
        not_approved = cycles.filtered(lambda c: c.state != "approved")
        if not_approved:
            raise UserError(
                coded(
                    "cycle_not_approved",
                    _(
                        "Cycle %(cycle)s is %(state)s: entitlements can only be approved once "
                        "their cycle is approved. Ask a cycle approver to approve it first.",
                        cycle=not_approved[0].name,
                        state=dict(not_approved[0]._fields["state"].selection)[not_approved[0].state],
                    ),
                )
            )
        if not in_job:
            cycles._check_unlocked()
        self._check_in_validation_groups(superuser_too=True)
        self._check_segregation()
        return target

    def _approve_async(self):
        """:meth:`approve_entitlement` above the async threshold: check ``self`` (the
        user's selection) whole, writing nothing, lock its cycles, queue the approval
        jobs (slices of the selection, run one after the other: in-kind reservations and
        budgets serialize on the cycles' and budgets' rows anyway), then one unlock job
        per cycle. :return: True"""
        self._check_approval()
        self.sudo()._check_before_approve()
        self._check_budget_for({self._name: self.ids})
        cycles = self.sudo()._cycles()
        cycles._lock_rows(touch=False)  # two validators at once: the second waits, then is refused [locked]
        cycles.invalidate_recordset(["locked"])
        cycles._check_unlocked()
        cycles._lock(_("approving the selected entitlements"))
        self.flush_recordset(["cycle_id"])
        self.env.cr.execute(
            SQL(
                "SELECT cycle_id, count(*) FROM %s WHERE id = ANY(%s) GROUP BY cycle_id",
                SQL.identifier(self._table),
                self.ids,
            )
        )
        per_cycle = dict(self.env.cr.fetchall())
        size = self.env["g2p.program"]._job_batch_size()
        ids = sorted(self.ids)
        jobs = [
            cycles.delayable(
                description=_(
                    "Approve %(n)s selected %(m)s from id %(a)s",
                    n=len(ids[i : i + size]),
                    m=self._description,
                    a=ids[i],
                )
            )._job_approve_selected(self._name, ids[i : i + size])
            for i in range(0, len(ids), size)
        ]
        user = self.env.user.name
        jobs += [
            cycle.delayable(description=_("%s: selected entitlements approved", cycle.name))._job_unlock(
                _(
                    "%(n)s selected %(m)s approved by %(user)s.",
                    n=per_cycle[cycle.id],
                    m=self._description,
                    user=user,
                )
            )
            for cycle in cycles
        ]
        chain(*jobs).delay()
        for cycle in cycles:
            cycle._message_log(
                body=_(
                    "Approval of %(n)s selected %(m)s queued by %(user)s: the cycle is locked until its jobs end.",
                    n=per_cycle[cycle.id],
                    m=self._description,
                    user=user,
                )
            )
        return True

    def _approve_checked(self, target, log=True):
        """Approve ``self`` (sudo, checked by :meth:`_check_approval` and
        :meth:`_check_budget`): :meth:`_before_approve`, then ``target``, the ERNs, who
        and when and :meth:`_approval_values` in one UPDATE per slice (in-kind: the
        stock checked and the allocations), then :meth:`_after_approve` (in-kind: the
        reservation); with ``log``, one message per cycle."""
        self._before_approve()
        self._approve_with_codes(target, self._approval_values())
        self._after_approve()
        if log:
            self._log_on_cycles(_("Approved by %s", self.env.user.name))

    def action_submit(self):
        """Submit draft entitlements for approval (OpenSPP's *Submit for approval*): each
        becomes ``pending_validation``, with ``submitted_by_id`` and ``date_submitted``.
        The entitlements of a draft cycle are submitted with the cycle
        (``g2p.cycle.to_approve``); these here belong to a cycle that is ``to_approve`` or
        ``approved`` (typically a draft reset after a rejection and corrected). A batch
        with one entitlement that fails a check is refused whole; nothing changes.

        :return: True
        :raise UserError: ``[wrong_state]`` not a draft; ``[wrong_cycle_state]`` its cycle
            is neither to approve nor approved.
        :raise AccessError: the user is not a program officer.
        """
        self._check_group("g2p_programs_ext.group_program_officer")
        self.check_access_rule("read")
        if not self:
            return True
        records = self.sudo().with_context(tracking_disable=True)
        target = records._check_transition("submit")
        cycles = records._cycles()
        wrong = cycles.filtered(lambda c: c.state not in SUBMIT_CYCLE_STATES)
        if wrong:
            labels = dict(wrong[0]._fields["state"].selection)
            raise UserError(
                coded(
                    "wrong_cycle_state",
                    _(
                        "Cycle %(cycle)s is %(state)s: single entitlements are submitted while it is "
                        "%(allowed)s. A draft cycle's entitlements are submitted with the cycle (Submit for "
                        "approval on the cycle). Nothing was submitted.",
                        cycle=wrong[0].name,
                        state=labels[wrong[0].state],
                        allowed=_(" or ").join(labels[s] for s in SUBMIT_CYCLE_STATES),
                    ),
                )
            )
        cycles._check_unlocked()
        records._set_state(
            target,
            {"submitted_by_id": self.env.uid, "date_submitted": NOW_UTC},
        )
        records._log_on_cycles(_("Submitted for approval by %s", self.env.user.name))
        return True

    def action_reject(self, reason, note=False):
        """Reject entitlements (draft, pending validation or approved) with ``reason``
        (one of ``declined``, ``account_missing``, ``other``) and an optional note.
        Approved in-kind entitlements give back their stock reservation.

        :return: True
        :raise UserError: wrong state, unknown reason (``[bad_reason]``), a note that is
            not a text (``[bad_note]``).
        :raise AccessError: the user is not a validator, or not in the validation group
            of the entitlements' manager (``[not_in_validation_group]``).
        """
        self._check_group("g2p_programs_ext.group_program_validator")
        self.check_access_rule("read")
        if not isinstance(reason, str) or reason not in dict(REJECTION_REASONS):
            raise UserError(
                coded(
                    "bad_reason",
                    _(
                        "%(reason)r is not a rejection reason; use one of %(reasons)s.",
                        reason=reason,
                        reasons=", ".join(dict(REJECTION_REASONS)),
                    ),
                )
            )
        if note not in (False, None) and (not isinstance(note, str) or "\x00" in note):
            raise UserError(coded("bad_note", _("The rejection note is a text, not %r.", note)))
        self._check_in_validation_groups()
        records = self.sudo()
        target = records._check_transition("reject")
        records.filtered(lambda e: e.state == "approved")._release()
        records._set_state(
            target,
            {
                "rejection_reason": reason,
                "rejection_note": note or None,
                "rejected_by_id": self.env.uid,
                "date_rejected": NOW_UTC,
            },
        )
        labels = dict(REJECTION_REASONS)
        records._log_on_cycles(
            _(
                "Rejected by %(user)s: %(reason)s. %(note)s",
                user=self.env.user.name,
                reason=labels[reason],
                note=note or "",
            )
        )
        if len(records) == 1:
            records._message_log(
                body=_("Rejected: %(reason)s. %(note)s", reason=labels[reason], note=note or "")
            )
        return True

    def _check_in_validation_groups(self, superuser_too=False):
        """Raise unless the user is in the validation group of the manager that made each
        entitlement of ``self``. The superuser passes, unless ``superuser_too`` (approval:
        a manager without a validation group is refused to everyone).

        :raise UserError: ``[no_validation_group]`` a manager has none.
        :raise AccessError: ``[not_in_validation_group]``."""
        if not self or (self.env.su and not superuser_too):
            return
        groups = self.sudo()._validation_groups()
        user_groups = self.env.user.groups_id
        for entitlement in self:
            group = groups.get(entitlement.id)
            if not group:
                raise UserError(
                    coded(
                        "no_validation_group",
                        _(
                            "Entitlement %(name)s: its entitlement manager on program "
                            "%(program)s has no validation group. A program manager sets one on the program's "
                            "entitlement manager.",
                            name=entitlement.display_name,
                            program=entitlement.program_id.name,
                        ),
                    )
                )
            if not self.env.su and group not in user_groups:
                raise AccessError(
                    coded(
                        "not_in_validation_group",
                        _(
                            "You are not in %(group)s, the validation group of the "
                            "entitlements of %(program)s (e.g. %(name)s).",
                            group=group.display_name,
                            program=entitlement.program_id.name,
                            name=entitlement.display_name,
                        ),
                    )
                )

    def _check_segregation(self):
        """Segregation of duties (OpenSPP's Entitlements guide, "Separate
        preparer/approver"; UNICEF HOPE's incompatible roles): the user about to approve
        ``self`` did not submit nor correct any of them, nor approve their cycle, where the
        entitlement manager of their program has ``segregation_of_duties`` on (the
        default). Jobs and the suite's own code (``env.su``) are exempt; every real user,
        administrators included, is not. One query for the batch.

        :raise UserError: ``[same_user]`` naming the entitlement and the earlier step."""
        if self.env.su or not self:
            return
        program_of, managers = self.sudo()._program_managers()
        programs = [pid for pid, manager in managers.items() if manager.segregation_of_duties]
        self.flush_recordset(["submitted_by_id", "program_id", "cycle_id"])
        self._check_segregation_of(SQL("e.id = ANY(%s)", self.ids), programs)

    @api.model
    def _check_cycle_segregation(self, cycle):
        """:meth:`_check_segregation` for every pending entitlement of this model in
        ``cycle`` (g2p.cycle), in one query whatever their number (a whole cycle at
        national scale: no id list in memory).

        :raise UserError: ``[same_user]``, as :meth:`_check_segregation`."""
        if self.env.su:
            return
        manager = (
            self.env[self._manager_model()].sudo().search([("program_id", "=", cycle.program_id.id)], limit=1)
        )
        if not manager.segregation_of_duties:
            return
        self.flush_model(["submitted_by_id", "program_id", "cycle_id", "state"])
        self._check_segregation_of(
            SQL("e.cycle_id = %s AND e.state = 'pending_validation'", cycle.id), [cycle.program_id.id]
        )

    @api.model
    def _check_segregation_of(self, condition, programs):
        """Raise ``[same_user]`` for the first entitlement of this model matching
        ``condition`` (SQL on alias ``e``) in ``programs`` (ids, their managers keeping
        duties apart) that the user submitted, corrected, or whose cycle they approved."""
        if not programs:
            return
        self.env["g2p.entitlement.correction"].flush_model()
        self.env["g2p.cycle"].flush_model(["approved_by_id"])
        # SQL: three facts of 100,000 rows in one pass, no ORM read of the entitlements
        corrected = SQL(
            "EXISTS (SELECT 1 FROM g2p_entitlement_correction k WHERE k.res_model = %s"
            " AND k.res_id = e.id AND k.user_id = %s)",
            self._name,
            self.env.uid,
        )
        self.env.cr.execute(
            SQL(
                """SELECT e.id, e.submitted_by_id = %(uid)s, %(corrected)s, c.approved_by_id = %(uid)s
                     FROM %(table)s e JOIN g2p_cycle c ON c.id = e.cycle_id
                    WHERE %(condition)s AND e.program_id = ANY(%(programs)s)
                      AND (e.submitted_by_id = %(uid)s OR c.approved_by_id = %(uid)s OR %(corrected)s)
                    ORDER BY e.id LIMIT 1""",
                uid=self.env.uid,
                corrected=corrected,
                table=SQL.identifier(self._table),
                condition=condition,
                programs=programs,
            )
        )
        row = self.env.cr.fetchone()
        if not row:
            return
        entitlement = self.sudo().browse(row[0])
        if row[1]:
            step = _("you submitted it for approval")
        elif row[2]:
            step = _("you corrected it")
        else:
            step = _("you approved its cycle %s", entitlement.cycle_id.name)
        raise UserError(
            coded(
                "same_user",
                _(
                    "You cannot approve entitlement %(name)s: %(step)s, and the entitlement manager of "
                    "%(program)s keeps preparing and approving apart (segregation of duties). Another "
                    "validator approves it. Nothing was approved.",
                    name=entitlement.display_name,
                    step=step,
                    program=entitlement.program_id.name,
                ),
            )
        )

    def _program_managers(self):
        """({entitlement id: program id}, {program id: entitlement manager}) for
        ``self``, read in SQL (not every column of 100,000 rows)."""
        if not self:
            return {}, {}
        self.flush_recordset(["program_id"])
        self.env.cr.execute(
            SQL("SELECT id, program_id FROM %s WHERE id = ANY(%s)", SQL.identifier(self._table), self.ids)
        )
        program_of = dict(self.env.cr.fetchall())
        managers = (
            self.env[self._manager_model()]
            .sudo()
            .search([("program_id", "in", list(set(program_of.values())))])
        )
        return program_of, {m.program_id.id: m for m in managers}

    def _check_budget(self):
        """Refuse to approve ``self`` (pending entitlements) beyond a budget: per program
        with a budget (g2p.program.budget), what is committed (COMMITTED_STATES, every
        entitlement model, valued by :meth:`_budget_value_field`) plus what ``self`` asks
        must stay within it; the same per cycle with a cycle budget (g2p.cycle.budget).
        No budget: no check. The budget rows are locked first, so two approvals at once
        do not both pass (the one that waited fails to serialize and is retried, seeing
        what the first committed).

        :raise UserError: ``[over_budget]`` naming the budget, the committed and the asked
            amounts (in the program's currency). Nothing changes."""
        if self:
            self._check_budget_for({self._name: self.ids})

    @api.model
    def _check_budget_for(self, ids_by_model):
        """:meth:`_check_budget` for entitlements of several models at once
        (``ids_by_model``: {entitlement model name: ids}), e.g. a whole cycle's cash and
        in-kind entitlements before its approval jobs.

        :raise UserError: ``[over_budget]``, as :meth:`_check_budget`."""
        Budget = self.env["g2p.program.budget"].sudo()
        asked_program, asked_cycle = Budget._sums(ids_by_model=ids_by_model)
        budgets = Budget._lock_budgets(list(asked_program), list(asked_cycle))
        if not budgets:
            return
        committed_program, committed_cycle = Budget._sums(
            program_ids=list(asked_program), states=COMMITTED_STATES
        )
        for budget in budgets:
            if budget._name == "g2p.cycle.budget":
                key, asked, committed = budget.cycle_id.id, asked_cycle, committed_cycle
                label = _("cycle %s", budget.cycle_id.name)
            else:
                key, asked, committed = budget.program_id.id, asked_program, committed_program
                label = _("program %s", budget.program_id.name)
            currency = budget.currency_id
            total = committed.get(key, 0.0) + asked.get(key, 0.0)
            if currency.compare_amounts(total, budget.amount) > 0:
                raise UserError(
                    coded(
                        "over_budget",
                        _(
                            "Approving these entitlements would go over the budget of %(label)s: budget "
                            "%(budget)s, already committed %(committed)s, asked %(asked)s (%(over)s over). "
                            "Nothing was approved: approve fewer entitlements, or a program manager raises "
                            "the budget.",
                            label=label,
                            budget=currency.format(budget.amount),
                            committed=currency.format(committed.get(key, 0.0)),
                            asked=currency.format(asked.get(key, 0.0)),
                            over=currency.format(total - budget.amount),
                        ),
                    )
                )

    def _budget_value_field(self):
        """(stored field giving an entitlement's value, ``"program"`` or ``"company"``: the
        currency it is in). Cash: the initial amount, in the program's currency."""
        raise NotImplementedError

    def action_cancel(self):
        """Cancel entitlements (program managers). Approved in-kind entitlements give
        back their stock reservation. :return: True. :raise UserError: wrong state."""
        self._check_group("g2p_programs_ext.group_program_manager")
        self.check_access_rule("read")
        self.sudo()._do_cancel()
        return True

    def _do_cancel(self, log=True):
        """Cancel ``self`` (checked by the caller), releasing the stock of the approved
        or transferred ones; with ``log`` one message per cycle. :return: None"""
        if not self:
            return
        target = self._check_transition("cancel")
        self._with_state(("approved", "transferred"))._release()
        self._set_state(target, {"cancelled_by_id": self.env.uid, "date_cancelled": NOW_UTC})
        if log:
            self._log_on_cycles(_("Cancelled by %s", self.env.user.name))

    def _with_state(self, states):
        """The records of ``self`` whose state is in ``states``. Raw SQL: ``filtered``
        would read every column of every record into the cache (a whole cycle when it is
        cancelled); the states are flushed first, nothing is written."""
        if not self:
            return self
        self.flush_recordset(["state"])
        self.env.cr.execute(
            SQL(
                "SELECT id FROM %s WHERE id = ANY(%s) AND state IN %s ORDER BY id",
                SQL.identifier(self._table),
                self.ids,
                tuple(states),
            )
        )
        return self.browse([row[0] for row in self.env.cr.fetchall()])

    def action_reset_to_draft(self):
        """Back to draft, only from pending validation, rejected or cancelled, so that an
        officer corrects and submits it again (OpenSPP's *Manage entitlements* guide: the
        Program Officer owns Draft). Program officers reset pending and rejected
        entitlements; a cancelled one only a program manager. The ERN, the approval, the
        rejection, the cancellation and the submission are cleared; the correction log
        stays.

        :return: True
        :raise UserError: ``[wrong_state]`` a state that cannot be reset.
        :raise AccessError: the user is not an officer; ``[not_allowed]`` an officer
            resets a cancelled entitlement.
        """
        self._check_group("g2p_programs_ext.group_program_officer")
        self.check_access_rule("read")
        records = self.sudo()
        target = records._check_transition("reset")
        if not self.env.su and not self.env.user.has_group("g2p_programs_ext.group_program_manager"):
            cancelled = records._first_with_state(("cancelled",))
            if cancelled:
                raise AccessError(
                    coded(
                        "not_allowed",
                        _(
                            "Entitlement %s is cancelled: only a program manager resets a cancelled "
                            "entitlement to draft.",
                            records.browse(cancelled).display_name,
                        ),
                    )
                )
        records._set_state(target, dict.fromkeys(RESET_COLUMNS))
        records._log_on_cycles(_("Reset to draft by %s", self.env.user.name))
        return True

    # ------------------------------------------------------------------
    # ERN
    # ------------------------------------------------------------------
    def _approve_with_codes(self, target, values=None):
        """Set ``target``, a new unique ERN (kept when one exists), ``date_approved`` and
        ``approved_by_id`` on all of ``self``, and ``values`` ({many2one column:
        {entitlement id: record id}}, see :meth:`_approval_values`): one UPDATE per slice."""
        self.flush_recordset()
        values = values or {}
        columns = sorted(values)
        codes = self._new_codes(len(self))
        for start in range(0, len(self.ids), SQL_BATCH):
            ids = self.ids[start : start + SQL_BATCH]
            # Raw SQL: one UPDATE for 5,000 rows, each with its own ERN (the ORM would write
            # per value, with tracking); the callers checked the rights; flushed before,
            # invalidated and marked modified after.
            self.env.cr.execute(
                SQL(
                    """UPDATE %(table)s t
                          SET code = coalesce(t.code, v.code), state = %(target)s, approved_by_id = %(uid)s,
                              date_approved = now() at time zone 'UTC',
                              write_uid = %(uid)s, write_date = now() at time zone 'UTC'%(extra_set)s
                         FROM unnest(%(ids)s::int[], %(codes)s::varchar[]%(extra_arrays)s) AS v(id, code%(extra_names)s)
                        WHERE t.id = v.id""",
                    table=SQL.identifier(self._table),
                    target=target,
                    uid=self.env.uid,
                    ids=ids,
                    codes=codes[start : start + SQL_BATCH],
                    extra_set=SQL("").join(
                        SQL(", %s = coalesce(v.%s, t.%s)", *[SQL.identifier(c)] * 3) for c in columns
                    ),
                    extra_arrays=SQL("").join(
                        SQL(", %s::int[]", [values[c].get(i) for i in ids]) for c in columns
                    ),
                    extra_names=SQL("").join(SQL(", %s", SQL.identifier(c)) for c in columns),
                )
            )
        self.invalidate_recordset()
        self.modified(["state", "code", *columns])

    @api.model
    def _new_codes(self, count):
        """``count`` new ERNs (display form), unused by every entitlement model."""
        codes = set()
        while len(codes) < count:
            batch = {ern.display(ern.generate()) for _i in range(count - len(codes))}
            batch -= codes
            codes |= batch - self._codes_in_use(batch)
        return list(codes)

    @api.model
    def _codes_in_use(self, codes):
        used = set()
        for model in self.env["g2p.cycle"]._entitlement_models():
            table = self.env[model]._table
            self.env.cr.execute(f"SELECT code FROM {table} WHERE code = ANY(%s)", [list(codes)])
            used |= {row[0] for row in self.env.cr.fetchall()}
        return used

    # ------------------------------------------------------------------
    # Expiry (daily scheduled action)
    # ------------------------------------------------------------------
    @api.model
    def _cron_expire(self):
        """Approved entitlements past ``valid_until`` with nothing redeemed become
        ``expired`` (and release their stock), for every entitlement model."""
        today = fields.Date.context_today(self)
        for model in self.env["g2p.cycle"]._entitlement_models():
            Model = self.env[model].sudo()
            expired = Model.search(
                [
                    ("state", "in", ENTITLEMENT_TRANSITIONS["expire"][0]),
                    ("valid_until", "<", today),
                    (Model._redeemed_quantity_field(), "=", 0),
                ]
            )
            if expired:
                expired._release()
                expired._set_state(expired._check_transition("expire"))
                expired._log_on_cycles(_("Expired: valid until passed with nothing redeemed"))
        return True
