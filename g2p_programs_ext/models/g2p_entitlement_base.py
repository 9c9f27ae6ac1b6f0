import logging

from psycopg2.extras import execute_values

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from .. import ern

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
        return super().create(vals_list)

    def write(self, vals):
        if not self.env.su:
            self.check_access_rights("write")
            self._check_lifecycle_vals([n for n in vals if n in LIFECYCLE_FIELDS])
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_only_drafts(self):
        """Only draft entitlements can be deleted: a pending or approved one is rejected or
        cancelled instead (which releases its stock and keeps the record)."""
        if self.env.su:
            return
        self.check_access_rights("unlink")
        self.flush_recordset(["state"])
        self.env.cr.execute(
            f"SELECT id FROM {self._table} WHERE id = ANY(%s) AND state != 'draft' LIMIT 1", [self.ids]
        )
        row = self.env.cr.fetchone()
        if row:
            raise UserError(
                _(
                    "[use_actions] Entitlement %s is not a draft: reject or cancel it instead of deleting it.",
                    self.browse(row[0]).display_name,
                )
            )

    @api.model
    def _check_lifecycle_vals(self, names):
        """Refuse (UserError ``[use_actions]``) to set the fields ``names`` (of
        LIFECYCLE_FIELDS) directly: states change through the actions (approve, reject,
        cancel, reset), figures through redemptions; a new entitlement is a draft."""
        if names:
            raise UserError(
                _(
                    "[use_actions] %(fields)s of entitlements cannot be set directly: use the actions "
                    "(approve, reject, cancel, reset to draft) and redemptions.",
                    fields=", ".join(sorted(names)),
                )
            )

    @api.model
    def _complete_vals(self, vals_list):
        """Hook: fill in values of new entitlements (in place) before they are created,
        by the ORM or in bulk. Each addon that adds a field to every entitlement fills it here.
        Returns ``vals_list``."""
        return vals_list

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
                _(
                    "[wrong_state] Entitlement %(name)s is %(state)s: it can only become %(target)s "
                    "from %(sources)s. Nothing was changed (%(count)s of %(total)s selected are in the wrong state).",
                    name=wrong.display_name,
                    state=labels[wrong.state],
                    target=labels[target],
                    sources=_(" or ").join(labels[s] for s in sources),
                    count=row[1],
                    total=len(self),
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
                _(
                    "[not_allowed] Only the group %s may do this on entitlements.",
                    self.env.ref(xmlid).display_name,
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

    def _before_approve(self):
        """Called after every check and before the state changes (in-kind: stock)."""

    def _release(self):
        """Called when approved entitlements are rejected, cancelled or expired (in-kind: stock)."""

    def _redeemed_quantity_field(self):
        """Name of the stored field holding what was redeemed (0 = nothing)."""
        raise NotImplementedError

    @api.model
    def _cycle_submitted(self, cycles):
        """Cycles went to ``to_approve``: their draft entitlements wait for validation."""
        drafts = self.sudo().search([("cycle_id", "in", cycles.ids), ("state", "=", "draft")])
        drafts._set_state(drafts._check_transition("submit"))
        if drafts:
            drafts._log_on_cycles(_("Submitted for validation"))

    @api.model
    def _cycle_cancelled(self, cycles):
        """Cycles were cancelled: their unredeemed entitlements are cancelled."""
        open_ones = self.sudo().search(
            [("cycle_id", "in", cycles.ids), ("state", "in", ENTITLEMENT_TRANSITIONS["cancel"][0])]
        )
        open_ones = open_ones.filtered(lambda e: not e[e._redeemed_quantity_field()])
        open_ones._do_cancel()

    # ------------------------------------------------------------------
    # Public methods (the contract)
    # ------------------------------------------------------------------
    def approve_entitlement(self):
        """Approve entitlements (the list's *Action > Approve*).

        Needs, for every entitlement: its cycle ``approved``, state
        ``pending_validation``, its manager's validation group set and the user in it.
        A batch where one entitlement fails a check is refused whole, naming it; nothing
        changes. Sets the ERN (``code``), ``date_approved`` and ``approved_by_id``.

        :return: True
        :raise UserError: wrong state, cycle not approved, no validation group.
        :raise AccessError: the user is not a validator or not in a validation group.
        """
        self._check_group("g2p_programs_ext.group_program_validator")
        self.check_access_rule("read")
        if not self:
            return True
        records = self.sudo().with_context(tracking_disable=True)
        target = records._check_transition("approve")
        cycles = records._cycles()
        not_approved = cycles.filtered(lambda c: c.state != "approved")
        if not_approved:
            raise UserError(
                _(
                    "[cycle_not_approved] Cycle %(cycle)s is %(state)s: entitlements can only be approved once "
                    "their cycle is approved. Ask a cycle approver to approve it first.",
                    cycle=not_approved[0].name,
                    state=dict(not_approved[0]._fields["state"].selection)[not_approved[0].state],
                )
            )
        cycles._check_unlocked()
        self._check_in_validation_groups(superuser_too=True)
        records._before_approve()
        records._approve_with_codes(target)
        records._log_on_cycles(_("Approved by %s", self.env.user.name))
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
                _(
                    "[bad_reason] %(reason)r is not a rejection reason; use one of %(reasons)s.",
                    reason=reason,
                    reasons=", ".join(dict(REJECTION_REASONS)),
                )
            )
        if note not in (False, None) and (not isinstance(note, str) or "\x00" in note):
            raise UserError(_("[bad_note] The rejection note is a text, not %r.", note))
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
                    _(
                        "[no_validation_group] Entitlement %(name)s: its entitlement manager on program "
                        "%(program)s has no validation group. A program manager sets one on the program's "
                        "entitlement manager.",
                        name=entitlement.display_name,
                        program=entitlement.program_id.name,
                    )
                )
            if not self.env.su and group not in user_groups:
                raise AccessError(
                    _(
                        "[not_in_validation_group] You are not in %(group)s, the validation group of the "
                        "entitlements of %(program)s (e.g. %(name)s).",
                        group=group.display_name,
                        program=entitlement.program_id.name,
                        name=entitlement.display_name,
                    )
                )

    def action_cancel(self):
        """Cancel entitlements (program managers). Approved in-kind entitlements give
        back their stock reservation. :return: True. :raise UserError: wrong state."""
        self._check_group("g2p_programs_ext.group_program_manager")
        self.check_access_rule("read")
        self.sudo()._do_cancel()
        return True

    def _do_cancel(self):
        if not self:
            return
        target = self._check_transition("cancel")
        self.filtered(lambda e: e.state in ("approved", "transferred"))._release()
        self._set_state(target, {"cancelled_by_id": self.env.uid, "date_cancelled": NOW_UTC})
        self._log_on_cycles(_("Cancelled by %s", self.env.user.name))

    def action_reset_to_draft(self):
        """Back to draft, only from pending validation, rejected or cancelled (program
        managers); the ERN and approval are cleared. :return: True. :raise UserError: wrong state."""
        self._check_group("g2p_programs_ext.group_program_manager")
        self.check_access_rule("read")
        records = self.sudo()
        target = records._check_transition("reset")
        records._set_state(target, dict.fromkeys(RESET_COLUMNS))
        records._log_on_cycles(_("Reset to draft by %s", self.env.user.name))
        return True

    # ------------------------------------------------------------------
    # ERN
    # ------------------------------------------------------------------
    def _approve_with_codes(self, target):
        """Set ``target``, a new unique ERN (kept when one exists), ``date_approved`` and
        ``approved_by_id`` on all of ``self``: one UPDATE per slice."""
        self.flush_recordset()
        codes = self._new_codes(len(self))
        for start in range(0, len(self.ids), SQL_BATCH):
            ids = self.ids[start : start + SQL_BATCH]
            self.env.cr.execute(
                f"""UPDATE {self._table} t
                    SET code = coalesce(t.code, v.code), state = %s, approved_by_id = %s,
                        date_approved = now() at time zone 'UTC',
                        write_uid = %s, write_date = now() at time zone 'UTC'
                    FROM unnest(%s::int[], %s::varchar[]) AS v(id, code) WHERE t.id = v.id""",
                [target, self.env.uid, self.env.uid, ids, codes[start : start + SQL_BATCH]],
            )
        self.invalidate_recordset()
        self.modified(["state", "code"])

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
