import logging

from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.addons.queue_job.delay import chain, group
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from ..refusal import coded
from .g2p_entitlement_base import COMMITTED_STATES, ENTITLEMENT_TRANSITIONS, NOW_UTC

_logger = logging.getLogger(__name__)

CYCLE_STATES = [
    ("draft", "Draft"),
    ("to_approve", "To approve"),
    ("approved", "Approved"),
    ("distributed", "Distributed"),
    ("ended", "Ended"),
    ("cancelled", "Cancelled"),
]
# Transition table: method -> (states it may start from, target state, group allowed).
CYCLE_TRANSITIONS = {
    "to_approve": (("draft",), "to_approve", "g2p_programs_ext.group_program_officer"),
    "approve": (("to_approve",), "approved", "g2p_programs_ext.group_cycle_approver"),
    "mark_distributed": (("approved",), "distributed", "g2p_programs_ext.group_cycle_approver"),
    "mark_ended": (("approved", "distributed"), "ended", "g2p_programs_ext.group_cycle_approver"),
    "mark_cancelled": (
        ("draft", "to_approve", "approved"),
        "cancelled",
        "g2p_programs_ext.group_cycle_approver",
    ),
    "reset_draft": (("to_approve", "cancelled"), "draft", "g2p_programs_ext.group_cycle_approver"),
}
BATCH_SIZE = 5000
# Entitlements that an ended cycle must not keep: redeemable, stock reserved for them.
OPEN_ENTITLEMENT_STATES = ("approved", "transferred")
# Set only by the transitions and jobs (as superuser, after their checks).
CYCLE_LIFECYCLE_FIELDS = frozenset(
    {"state", "locked", "locked_reason", "sequence", "program_id", "approved_by_id", "date_approved"}
)
# The cycle dashboard's groups of entitlement states: key -> states (see ENTITLEMENT_STATES).
DASHBOARD_STATE_GROUPS = {
    "draft": ("draft",),
    "pending": ("pending_validation",),
    "approved": ("approved", "transferred"),
    "redeemed": ("redeemed", "partially_redeemed"),
    "closed": ("rejected", "cancelled", "expired"),
}


class G2PCycle(models.Model):
    _name = "g2p.cycle"
    _description = "Program cycle"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "program_id, sequence desc, id desc"
    _check_company_auto = True

    # ------------------------------------------------------------------
    # Identity
    # ------------------------------------------------------------------
    name = fields.Char(required=True, tracking=True)
    program_id = fields.Many2one(
        "g2p.program", required=True, index=True, ondelete="restrict", check_company=True
    )
    company_id = fields.Many2one(related="program_id.company_id", store=True, index=True)
    currency_id = fields.Many2one(related="program_id.currency_id")
    sequence = fields.Integer(required=True, default=1, readonly=True)
    state = fields.Selection(
        CYCLE_STATES, default="draft", required=True, index=True, tracking=True, readonly=True
    )
    locked = fields.Boolean(readonly=True, copy=False, help="Set while the cycle's jobs run.")
    locked_reason = fields.Char(readonly=True, copy=False)

    # ------------------------------------------------------------------
    # Dates (inclusive)
    # ------------------------------------------------------------------
    start_date = fields.Date(required=True, tracking=True)
    end_date = fields.Date(required=True, tracking=True)

    # ------------------------------------------------------------------
    # Beneficiaries
    # ------------------------------------------------------------------
    cycle_membership_ids = fields.One2many("g2p.cycle.membership", "cycle_id", string="Beneficiaries")
    beneficiary_count = fields.Integer(compute="_compute_beneficiary_count")

    # ------------------------------------------------------------------
    # Entitlements
    # ------------------------------------------------------------------
    entitlement_ids = fields.One2many("g2p.entitlement", "cycle_id", string="Cash entitlements")
    entitlement_count = fields.Integer(compute="_compute_entitlement_count", string="Cash entitlement count")
    # Dashboard: cash entitlements per group of states (DASHBOARD_STATE_GROUPS)
    cash_draft_count = fields.Integer(
        compute="_compute_entitlement_count", string="Cash entitlements in draft"
    )
    cash_pending_count = fields.Integer(
        compute="_compute_entitlement_count", string="Cash entitlements to validate"
    )
    cash_approved_count = fields.Integer(
        compute="_compute_entitlement_count", string="Cash entitlements approved"
    )
    cash_redeemed_count = fields.Integer(
        compute="_compute_entitlement_count", string="Cash entitlements redeemed"
    )
    cash_closed_count = fields.Integer(
        compute="_compute_entitlement_count", string="Cash entitlements rejected, cancelled or expired"
    )

    # ------------------------------------------------------------------
    # Approval of the cycle (who; segregation of duties reads it)
    # ------------------------------------------------------------------
    approved_by_id = fields.Many2one("res.users", string="Cycle approved by", readonly=True, copy=False)
    date_approved = fields.Datetime(string="Cycle approved on", readonly=True, copy=False)

    # ------------------------------------------------------------------
    # Budget (in the program's currency; dashboard)
    # ------------------------------------------------------------------
    budget_ids = fields.One2many("g2p.cycle.budget", "cycle_id", string="Cycle budgets")
    budget_amount = fields.Monetary(
        currency_field="currency_id",
        compute="_compute_budget_amount",
        inverse="_inverse_budget_amount",
        string="Cycle budget",
        help="What this cycle may commit, besides the program's budget; empty: no cycle budget.",
    )
    program_budget_amount = fields.Monetary(
        currency_field="currency_id", related="program_id.budget_amount", string="Program budget"
    )
    program_committed_amount = fields.Monetary(
        currency_field="currency_id",
        compute="_compute_budget_figures",
        string="Committed in the program",
        help="Approved, transferred and (partially) redeemed entitlements of every cycle of the program.",
    )
    cycle_committed_amount = fields.Monetary(
        currency_field="currency_id",
        compute="_compute_budget_figures",
        string="Committed in this cycle",
        help="Approved, transferred and (partially) redeemed entitlements of this cycle.",
    )
    pending_amount = fields.Monetary(
        currency_field="currency_id",
        compute="_compute_budget_figures",
        string="Approval would add",
        help="The value of this cycle's entitlements pending validation.",
    )
    budget_left_amount = fields.Monetary(
        currency_field="currency_id",
        compute="_compute_budget_figures",
        string="Left to commit",
        help="The smaller of what is left of the program's and the cycle's budget (none: no budget).",
    )
    has_budget = fields.Boolean(
        compute="_compute_budget_figures", help="The program or the cycle has a budget."
    )
    budget_exceeded = fields.Boolean(
        compute="_compute_budget_figures",
        help="Approving every pending entitlement would go over a budget.",
    )

    _sql_constraints = [
        ("dates_ordered", "CHECK (end_date >= start_date)", "A cycle cannot end before it starts."),
        (
            "program_sequence_uniq",
            "unique(program_id, sequence)",
            "Cycle numbers are unique within a program.",
        ),
    ]

    def _compute_beneficiary_count(self):
        counts = dict(
            self.env["g2p.cycle.membership"]._read_group(
                [("cycle_id", "in", self.ids)], ["cycle_id"], ["__count"]
            )
        )
        for cycle in self:
            cycle.beneficiary_count = counts.get(cycle, 0)

    def _compute_entitlement_count(self):
        counts = self._entitlement_state_counts("g2p.entitlement")
        for cycle in self:
            by_group = counts.get(cycle.id, {})
            cycle.entitlement_count = sum(by_group.values())
            for key in DASHBOARD_STATE_GROUPS:
                cycle["cash_%s_count" % key] = by_group.get(key, 0)

    @api.depends("budget_ids.amount")
    def _compute_budget_amount(self):
        for cycle in self:
            cycle.budget_amount = cycle.budget_ids[:1].amount

    def _inverse_budget_amount(self):
        for cycle in self:
            budget = cycle.budget_ids[:1]
            if not cycle.budget_amount:
                budget.unlink()
            elif budget:
                budget.amount = cycle.budget_amount
            else:
                self.env["g2p.cycle.budget"].create({"cycle_id": cycle.id, "amount": cycle.budget_amount})

    def _compute_budget_figures(self):
        """Two grouped queries for all cycles in ``self``: what is committed (per program
        and per cycle) and what is pending (per cycle)."""
        Budget = self.env["g2p.program.budget"].sudo()
        cycles = self.filtered("id")
        committed_program, committed_cycle = Budget._sums(
            program_ids=cycles.program_id.ids, states=COMMITTED_STATES
        )
        _pending_program, pending_cycle = Budget._sums(
            program_ids=cycles.program_id.ids, states=("pending_validation",)
        )
        for cycle in self:
            committed_p = committed_program.get(cycle.program_id.id, 0.0)
            committed_c = committed_cycle.get(cycle.id, 0.0)
            pending = pending_cycle.get(cycle.id, 0.0)
            cycle.program_committed_amount = committed_p
            cycle.cycle_committed_amount = committed_c
            cycle.pending_amount = pending
            lefts = []
            if cycle.program_budget_amount:
                lefts.append(cycle.program_budget_amount - committed_p)
            if cycle.budget_amount:
                lefts.append(cycle.budget_amount - committed_c)
            cycle.has_budget = bool(lefts)
            cycle.budget_left_amount = min(lefts) if lefts else 0.0
            cycle.budget_exceeded = bool(lefts) and cycle.currency_id.compare_amounts(pending, min(lefts)) > 0

    def _entitlement_state_counts(self, model):
        """Count the entitlements of ``model`` (an entitlement model name) of the cycles
        in ``self`` per group of states, as the user may see them: one grouped query for
        the whole set.

        :return: dict {cycle id: {DASHBOARD_STATE_GROUPS key: int}}."""
        group_of = {state: key for key, states in DASHBOARD_STATE_GROUPS.items() for state in states}
        counts = {}
        if not self.ids:
            return counts
        for cycle, state, count in self.env[model]._read_group(
            [("cycle_id", "in", self.ids)], ["cycle_id", "state"], ["__count"]
        ):
            by_group = counts.setdefault(cycle.id, {})
            by_group[group_of[state]] = by_group.get(group_of[state], 0) + count
        return counts

    def _entitlement_action(self, xmlid):
        """The entitlement action ``xmlid`` limited to this cycle, filtered on the group of
        states named by the context key ``dashboard_state`` (see DASHBOARD_STATE_GROUPS)
        when given, else grouped by state. :return: an ``ir.actions.act_window`` dict."""
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(xmlid)
        domain = [("cycle_id", "=", self.id)]
        states = DASHBOARD_STATE_GROUPS.get(self.env.context.get("dashboard_state"))
        if states:
            domain.append(("state", "in", states))
            action["context"] = {}
        else:
            action["context"] = {"search_default_group_state": 1}
        action["domain"] = domain
        return action

    # ------------------------------------------------------------------
    # Creation
    # ------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su:
            self.check_access_rights("create")  # a role without the right hears so first
            for vals in vals_list:
                names = [n for n in ("locked", "locked_reason") if vals.get(n)]
                if vals.get("state", "draft") != "draft":
                    names.append("state")
                self._check_lifecycle_vals(names)
        return super().create(vals_list)

    def write(self, vals):
        if not self.env.su:
            self.check_access_rights("write")
            self._check_lifecycle_vals([n for n in vals if n in CYCLE_LIFECYCLE_FIELDS])
        return super().write(vals)

    @api.model
    def _check_lifecycle_vals(self, names):
        """Refuse (UserError ``[use_actions]``) to set the fields ``names`` of a cycle
        directly: its state changes through the transitions (submit, approve, ...),
        which check the user's role; the lock belongs to its jobs."""
        if names:
            raise UserError(
                coded(
                    "use_actions",
                    _(
                        "%(fields)s of cycles cannot be set directly: use the cycle's actions "
                        "(submit, approve, distribute, end, cancel, reset to draft).",
                        fields=", ".join(sorted(names)),
                    ),
                )
            )

    @api.model
    def _create_next_for(self, program):
        """The next cycle of ``program`` (g2p.program), with its enrolled beneficiaries.

        A newest cycle still in ``draft`` is returned instead of creating another, so a
        repeated call (double click, retried RPC) creates nothing twice; its
        memberships are brought up to date instead."""
        last = self.search([("program_id", "=", program.id)], order="sequence desc", limit=1)
        if last and last.state == "draft":
            last._copy_enrolled_beneficiaries()
            return last
        start = last.end_date + relativedelta(days=1) if last else program.start_date
        sequence = (last.sequence + 1) if last else 1
        cycle = self.create(
            {
                "name": _("%(program)s - Cycle %(n)s", program=program.name, n=sequence),
                "program_id": program.id,
                "sequence": sequence,
                "start_date": start,
                "end_date": start + relativedelta(days=program.cycle_duration - 1),
            }
        )
        cycle._copy_enrolled_beneficiaries()
        return cycle

    def _copy_enrolled_beneficiaries(self):
        """Copy the program's enrolled members that the cycle lacks (idempotent).
        Above the async threshold: queue_job jobs of id-sliced batches, cycle locked.
        :return: int, the number of cycle memberships created (0 when queued)."""
        self.ensure_one()
        missing = self._missing_beneficiary_ids()
        if len(missing) > self.program_id._async_threshold():
            self._lock(_("copying beneficiaries"))
            size = self.program_id._job_batch_size()
            jobs = [
                self.delayable(
                    description=_("%(c)s: copy beneficiaries from id %(a)s", c=self.name, a=missing[i])
                )._job_copy_beneficiaries(missing[i], missing[min(i + size, len(missing)) - 1])
                for i in range(0, len(missing), size)
            ]
            finish = self.delayable(description=_("%s: unlock", self.name))._job_unlock(
                _("%s beneficiaries copied from the program.", len(missing))
            )
            chain(group(*jobs), finish).delay()
            return 0
        return self._copy_memberships((None, None)) if missing else 0

    def _missing_sql(self, id_range):
        """SQL of the enrolled program members (partner ids) with ids in ``id_range``
        ((first, last), both included, None: no bound) that the cycle lacks."""
        first, last = id_range
        return SQL(
            """SELECT pm.partner_id FROM g2p_program_membership pm
               WHERE pm.program_id = %s AND pm.state = 'enrolled'
                 AND (%s::int IS NULL OR pm.partner_id >= %s) AND (%s::int IS NULL OR pm.partner_id <= %s)
                 AND NOT EXISTS (SELECT 1 FROM g2p_cycle_membership cm
                                 WHERE cm.cycle_id = %s AND cm.partner_id = pm.partner_id)""",
            self.program_id.id,
            first,
            first,
            last,
            last,
            self.id,
        )

    def _missing_beneficiary_ids(self, id_range=(None, None)):
        """Partner ids (ascending) of the enrolled program members the cycle lacks, with
        ids in ``id_range``. SQL: reads only, flushed first."""
        self.env["g2p.program.membership"].flush_model()
        self.env["g2p.cycle.membership"].flush_model()
        self.env.cr.execute(SQL("%s ORDER BY 1", self._missing_sql(id_range)))
        return [row[0] for row in self.env.cr.fetchall()]

    def _copy_memberships(self, id_range):
        """Create the cycle memberships of the enrolled program members the cycle lacks,
        with partner ids in ``id_range``, in one statement (run twice, or two at once,
        it adds nothing: the unique (cycle, partner) decides). :return: int, created."""
        self.ensure_one()
        self.env["g2p.program.membership"].flush_model()
        self.env["g2p.cycle.membership"].flush_model()
        # Raw SQL: one INSERT ... SELECT for up to a whole program (the ORM creates row by
        # row: 2.2x the raw insert at 100,000 households). The memberships' only computed
        # fields, program and company, are written here; the model's cache is invalidated
        # after; the cycle's access was checked by the caller.
        self.env.cr.execute(
            SQL(
                """INSERT INTO g2p_cycle_membership
                       (cycle_id, program_id, company_id, partner_id, state,
                        create_uid, write_uid, create_date, write_date)
                   SELECT %s, %s, %s, m.partner_id, 'enrolled', %s, %s, %s, %s FROM (%s) m
                   ON CONFLICT (cycle_id, partner_id) DO NOTHING""",
                self.id,
                self.program_id.id,
                self.company_id.id,
                self.env.uid,
                self.env.uid,
                NOW_UTC,
                NOW_UTC,
                self._missing_sql(id_range),
            )
        )
        created = self.env.cr.rowcount
        self.env["g2p.cycle.membership"].invalidate_model()
        self.invalidate_recordset(["cycle_membership_ids"])
        return created

    def _job_copy_beneficiaries(self, first_id, last_id):
        """Job: copy the enrolled program members with ids in [first_id, last_id]; adds
        nothing when run twice. :return: a summary (str)."""
        self.ensure_one()
        return _("%s beneficiaries copied", self._copy_memberships((first_id, last_id)))

    # ------------------------------------------------------------------
    # Locking (jobs)
    # ------------------------------------------------------------------
    @api.model
    def _lock_rows(self, cycle_ids=None, touch=True):
        """Serialize work on cycles: lock the rows of ``cycle_ids`` (g2p.cycle ids;
        default ``self``) ``FOR UPDATE``, in id order so that two callers never deadlock.
        With ``touch`` the rows are also touched (a no-op UPDATE), so that a transaction
        that waited for the lock, whose snapshot is older, fails to serialize and is
        retried by Odoo with a fresh one: it then sees what the first one did (stock is
        never reserved or posted twice, entitlements never approved twice). That failure
        is expected, hence not logged as a bad query.

        :return: None"""
        ids = sorted(self.ids if cycle_ids is None else cycle_ids)
        if not ids:
            return
        # Raw SQL: the ORM has no row lock; the no-op UPDATE changes no value (no cache to keep).
        self.env.cr.execute(
            SQL("SELECT id FROM g2p_cycle WHERE id = ANY(%s) ORDER BY id FOR UPDATE", ids),
            log_exceptions=False,
        )
        if touch:
            self.env.cr.execute(
                SQL("UPDATE g2p_cycle SET write_uid = write_uid WHERE id = ANY(%s)", ids),
                log_exceptions=False,
            )

    def _lock(self, reason):
        self.sudo().write({"locked": True, "locked_reason": reason})

    def _job_unlock(self, message=None):
        """Job: the last of a chain; unlocks the cycle and logs one message."""
        self.sudo().write({"locked": False, "locked_reason": False})
        if message:
            self._message_log(body=message)
        return True

    def _on_job_failed(self, job_description):
        """Called when one of the cycle's jobs fails for good: unlock, say what failed."""
        self.sudo().write({"locked": False, "locked_reason": False})
        for cycle in self:
            cycle._message_log(
                body=_(
                    "A background job failed: %s. The cycle is unlocked; what the job did was "
                    "rolled back; run the action again.",
                    job_description,
                )
            )

    def _check_unlocked(self):
        for cycle in self:
            if cycle.locked:
                raise UserError(
                    coded(
                        "locked",
                        _(
                            "Cycle %(name)s is busy (%(reason)s): wait for its jobs to end.",
                            name=cycle.name,
                            reason=cycle.locked_reason or _("jobs running"),
                        ),
                    )
                )

    # ------------------------------------------------------------------
    # Transitions
    # ------------------------------------------------------------------
    def _transition(self, method):
        """Check the transition ``method`` of CYCLE_TRANSITIONS for every cycle in self
        (state, lock, user's group) and return the target state.

        :raise UserError: a cycle is in a state the transition does not start from, or locked.
        :raise AccessError: the user lacks the transition's group."""
        sources, target, group = CYCLE_TRANSITIONS[method]
        if not self.env.su and not self.env.user.has_group(group):
            raise AccessError(
                coded(
                    "not_allowed",
                    _(
                        "Only the group %(group)s may do this (%(method)s) on cycles.",
                        group=self.env.ref(group).display_name,
                        method=method,
                    ),
                )
            )
        self._check_unlocked()
        labels = dict(CYCLE_STATES)
        for cycle in self:
            if cycle.state not in sources:
                raise UserError(
                    coded(
                        "wrong_state",
                        _(
                            "Cycle %(name)s is %(state)s: this can only be done when it is %(allowed)s.",
                            name=cycle.name,
                            state=labels[cycle.state],
                            allowed=_(" or ").join(labels[s] for s in sources),
                        ),
                    )
                )
        return target

    def to_approve(self):
        """Submit draft cycles for approval; their draft entitlements become
        ``pending_validation`` (``submitted_by_id`` the user, ``date_submitted`` now).

        Above the async threshold (system parameter ``g2p_programs_ext.async_threshold``,
        the cycle's drafts counted over every entitlement model) the entitlements are
        submitted by queue_job jobs of id-sliced batches while the cycle stays ``draft``
        and ``locked``; the last job makes it ``to_approve`` and unlocks it (a submission
        of millions of entitlements would outlast Odoo's request limits). A job submits
        only the drafts of its slice still draft (run twice, it changes nothing twice);
        a job that fails for good unlocks the cycle, still draft, and posts what to do
        (submit again: what was submitted stays submitted).

        :return: True
        :raise UserError: ``[wrong_state]``, ``[locked]``.
        :raise AccessError: ``[not_allowed]``, the user is not a program officer."""
        target = self._transition("to_approve")
        # Two officers at once: the second waits here, fails to serialize on the row the
        # first one wrote, and is retried by Odoo: then refused [wrong_state] or [locked].
        self._lock_rows(touch=False)
        inline = self.browse()
        for cycle in self:
            drafts = {
                model: self.env[model]._cycle_entitlement_ids(cycle, ("draft",))
                for model in self._entitlement_models()
            }
            if sum(len(ids) for ids in drafts.values()) > cycle.program_id._async_threshold():
                cycle._queue_entitlement_step("submit", drafts)
            else:
                inline |= cycle
        if inline:
            for model in self._entitlement_models():
                self.env[model]._cycle_submitted(inline)
            inline.sudo().write({"state": target})
        return True

    def _queue_entitlement_step(self, step, ids_by_model):
        """Lock the cycle and queue ``step`` (``submit``: drafts submitted, in parallel
        jobs; ``cancel``: open entitlements cancelled and their stock released, jobs one
        after the other as the stock serializes on the cycle anyway) of ``ids_by_model``
        ({model: entitlement ids of this cycle, ascending}) in id-sliced jobs, then the
        job that moves the cycle to the step's state and unlocks it. :return: None"""
        self.ensure_one()
        self._lock(_("submitting entitlements") if step == "submit" else _("cancelling entitlements"))
        size = self.program_id._job_batch_size()
        jobs = []
        for model, ids in ids_by_model.items():
            for i in range(0, len(ids), size):
                first, last = ids[i], ids[min(i + size, len(ids)) - 1]
                names = {"c": self.name, "m": self.env[model]._description, "a": first}
                jobs.append(
                    self.delayable(
                        description=_("%(c)s: submit %(m)s from id %(a)s", **names)
                        if step == "submit"
                        else _("%(c)s: cancel %(m)s from id %(a)s", **names),
                        identity_key="g2p.cycle.%s:%s:%s:%s" % (step, self.id, model, first),
                    )._job_entitlement_step(step, model, first, last)
                )
        total = sum(len(ids) for ids in ids_by_model.values())
        finish = self.delayable(
            description=_("%(c)s: %(step)s done", c=self.name, step=step)
        )._job_finish_step(step, total, self.env.user.name)
        if step == "submit":
            chain(group(*jobs), finish).delay()
        else:
            chain(*jobs, finish).delay()

    def _job_entitlement_step(self, step, model, first_id, last_id):
        """Job: ``step`` (``submit`` or ``cancel``) on this cycle's entitlements of
        ``model`` with ids in [first_id, last_id] that are still in a state the step
        starts from (run twice, the second run changes nothing). :return: a summary (str)."""
        self.ensure_one()
        if step == "submit":
            count = self.env[model]._cycle_submitted(self, (first_id, last_id), log=False)
            return _("%s entitlements submitted", count)
        count = self.env[model]._cycle_cancelled(self, (first_id, last_id), log=False)
        return _("%s entitlements cancelled", count)

    def _job_finish_step(self, step, count, user_name):
        """Job: the last of a ``step`` (``submit`` or ``cancel``): the cycle becomes
        ``to_approve`` or ``cancelled`` and is unlocked, with one message (``count``
        entitlements, done for ``user_name``). Run twice, the second run changes nothing.
        :return: True"""
        self.ensure_one()
        target = "to_approve" if step == "submit" else "cancelled"
        if self.state != target:
            self.sudo().write({"state": target, "locked": False, "locked_reason": False})
            self._message_log(
                body=_("%(n)s entitlements submitted for validation by %(user)s.", n=count, user=user_name)
                if step == "submit"
                else _("Cycle cancelled by %(user)s: %(n)s entitlements cancelled.", n=count, user=user_name)
            )
        return True

    def approve(self):
        """Approve cycles that are ``to_approve``, recording who and when
        (``approved_by_id``, ``date_approved``: with segregation of duties, that user does
        not validate the cycle's entitlements). :return: True. :raise UserError: wrong state."""
        target = self._transition("approve")
        self.sudo().write(
            {"state": target, "approved_by_id": self.env.uid, "date_approved": fields.Datetime.now()}
        )
        return True

    def mark_distributed(self):
        """All goods handed to service points / all cash transferred. :return: True."""
        target = self._transition("mark_distributed")
        self.sudo().write({"state": target})
        return True

    def mark_ended(self):
        """End approved or distributed cycles (the *End cycle* button), settling them
        first: no entitlement of an ended cycle stays approved or transferred, nor holds
        stock.

        The settlement is the closing's (``_settle_and_end()``): with
        spp_auto_update_entitlements installed, each approved or transferred entitlement
        becomes ``redeemed``, ``partially_redeemed`` or ``expired`` from its transactions,
        deliveries are posted and unredeemed stock released (``_before_end()``), then the
        cycle ends with the closing's summary; above the async threshold the cycle is
        locked and the closing's scheduled action settles it in committed batches, then
        ends and unlocks it. Without that addon nothing here can settle: a cycle that
        still has approved or transferred entitlements is refused ``[open_entitlements]``.
        Draft, pending, rejected and cancelled entitlements stay as they are (no stock is
        reserved for them; nothing can approve them in an ended cycle).

        :return: True
        :raise UserError: ``[wrong_state]``, ``[locked]``, ``[open_entitlements]``.
        :raise AccessError: ``[not_allowed]``, the user is not a cycle approver.
        """
        self._transition("mark_ended")
        return self._settle_and_end()

    def _settle_and_end(self):
        """Hook of ``mark_ended()`` (cycles checked by it): settle the cycles' open
        entitlements and end the cycles. Here no addon can settle: refuse
        ``[open_entitlements]`` when there are approved or transferred entitlements, else
        run the addons' settlement work (``_before_end()``: with spp_entitlement_in_kind,
        post what was handed out and release the rest) and end.
        spp_auto_update_entitlements overrides it with the closing.

        :return: True
        :raise UserError: ``[open_entitlements]``, nothing changed."""
        for cycle in self:
            count = cycle.sudo()._count_open_entitlements()
            if count:
                raise UserError(
                    coded(
                        "open_entitlements",
                        _(
                            "Cycle %(name)s has %(count)s approved or transferred entitlements: they must be "
                            "settled (redeemed, partially redeemed or expired, stock released) before it "
                            "ends. The closing does that: install SPP Auto-update Entitlements (its button "
                            "Close cycle and its scheduled action Close ended cycles), or cancel them.",
                            name=cycle.name,
                            count=count,
                        ),
                    )
                )
        self._before_end()
        self._set_ended()
        return True

    def _set_ended(self):
        """Write ``ended`` on cycles whose entitlements are settled (the end of
        ``mark_ended()`` and of a closing). No check: the callers made them."""
        self.sudo().write({"state": "ended"})

    def _count_open_entitlements(self):
        """Open (approved, transferred) entitlements of this cycle, every model. SQL, not
        ``search_count``: as superuser without record rules (the caller checked rights);
        flushed first, nothing cached.

        :return: int"""
        self.ensure_one()
        total = 0
        for model in self._entitlement_models():
            Model = self.env[model]
            Model.flush_model(["cycle_id", "state"])
            self.env.cr.execute(
                SQL(
                    "SELECT count(*) FROM %s WHERE cycle_id = %s AND state IN %s",
                    SQL.identifier(Model._table),
                    self.id,
                    OPEN_ENTITLEMENT_STATES,
                )
            )
            total += self.env.cr.fetchone()[0]
        return total

    def _count_redeemed_entitlements(self):
        """Entitlements of this cycle, every model, with something redeemed (their
        running redeemed figure not zero, whatever their state). :return: int"""
        self.ensure_one()
        return sum(
            self.env[model]
            .sudo()
            .search_count([("cycle_id", "=", self.id), (self.env[model]._redeemed_quantity_field(), "!=", 0)])
            for model in self._entitlement_models()
        )

    def mark_cancelled(self):
        """Cancel cycles; their entitlements still open are cancelled (releasing stock).

        A cycle where something was handed out (an entitlement with a redeemed figure)
        is refused ``[has_redemptions]``: its handouts cannot be cancelled, and its
        entitlements would keep their stock; *End cycle* settles it instead.

        :return: True
        :raise UserError: ``[wrong_state]``, ``[locked]``, ``[has_redemptions]``.
        :raise AccessError: ``[not_allowed]``, the user is not a cycle approver."""
        target = self._transition("mark_cancelled")
        self._lock_rows(touch=False)  # two at once: the second is retried, then refused
        for cycle in self:
            count = cycle._count_redeemed_entitlements()
            if count:
                raise UserError(
                    coded(
                        "has_redemptions",
                        _(
                            "Cycle %(name)s cannot be cancelled: %(count)s of its entitlements were "
                            "(partly) handed out. End the cycle instead: ending settles them "
                            "(redeemed, partially redeemed or expired) and releases the stock.",
                            name=cycle.name,
                            count=count,
                        ),
                    )
                )
        inline = self.browse()
        for cycle in self:
            open_ids = {
                model: self.env[model]._cycle_entitlement_ids(
                    cycle, ENTITLEMENT_TRANSITIONS["cancel"][0], unredeemed=True
                )
                for model in self._entitlement_models()
            }
            if sum(len(ids) for ids in open_ids.values()) > cycle.program_id._async_threshold():
                cycle._queue_entitlement_step("cancel", open_ids)
            else:
                inline |= cycle
        if inline:
            for model in self._entitlement_models():
                self.env[model]._cycle_cancelled(inline)
            inline.sudo().write({"state": target})
        return True

    def reset_draft(self):
        """Send a cycle back to draft (from ``to_approve`` or ``cancelled``). :return: True."""
        target = self._transition("reset_draft")
        self.sudo().write({"state": target, "approved_by_id": False, "date_approved": False})
        return True

    @api.model
    def _entitlement_models(self):
        """Names of the entitlement models that use the lifecycle (each addon adds its own)."""
        return ["g2p.entitlement"]

    @api.model
    def _entitlement_manager_models(self):
        """Names of the entitlement manager models (each addon adds its own)."""
        return ["g2p.program.entitlement.manager.cash"]

    def _before_end(self):
        """Hook called by a closing (spp_auto_update_entitlements) and by ``mark_ended``
        on cycles whose entitlements were just settled, right before the cycles become
        ``ended``: does
        nothing here; addons extend it with ``super()`` for their own settlement work
        (spp_entitlement_in_kind posts deliveries and releases unredeemed stock). It
        must be idempotent: a closing that was interrupted calls it again.

        :return: None
        """

    def _closing_summary_lines(self):
        """Hook: lines (str) that addons add to the message a closing posts on this
        cycle (one record), after the counts per state; none here.

        :return: list of str
        """
        self.ensure_one()
        return []

    def _managers(self):
        self.ensure_one()
        managers = []
        for model in self._entitlement_manager_models():
            managers += list(self.env[model].sudo().search([("program_id", "=", self.program_id.id)]))
        return managers

    # ------------------------------------------------------------------
    # Entitlements
    # ------------------------------------------------------------------
    def prepare_entitlement(self):
        """Build the draft entitlements of every enrolled cycle member, from every
        entitlement manager of the program (cash: one per beneficiary; in-kind: one per
        beneficiary and item).

        Idempotent: a second call, or two at once, adds nothing (what exists is skipped;
        database unique constraints are the last word; concurrent calls serialize on the
        cycle row). Above the async threshold (system parameter
        ``g2p_programs_ext.async_threshold``) it runs as queue_job jobs of id-sliced
        batches and the cycle stays ``locked`` until the last one ends.

        :return: int, the number of entitlements created (0 when queued).
        :raise UserError: the cycle is not draft, is locked, or the program has no manager.
        """
        self.ensure_one()
        self.check_access_rights("write")
        self.check_access_rule("write")
        if not self.env.su and not self.env.user.has_group("g2p_programs_ext.group_program_officer"):
            raise AccessError(coded("not_allowed", _("Only program officers prepare entitlements.")))
        if self.state != "draft":
            raise UserError(
                coded(
                    "wrong_state",
                    _(
                        "Cycle %(name)s is %(state)s: entitlements are prepared while it is Draft.",
                        name=self.name,
                        state=dict(CYCLE_STATES)[self.state],
                    ),
                )
            )
        self._check_unlocked()
        if not self._managers():
            raise UserError(
                coded(
                    "no_manager",
                    _(
                        "Program %s has no entitlement manager: a program manager adds one "
                        "(cash or in-kind) on the program first.",
                        self.program_id.name,
                    ),
                )
            )
        # Serialize concurrent calls on the cycle row: the second one waits, then fails
        # to serialize and is retried by Odoo, seeing what the first one created.
        self._lock_rows(touch=False)
        partner_ids = self._member_ids()
        if len(partner_ids) > self.program_id._async_threshold():
            self._lock(_("preparing entitlements"))
            size = self.program_id._job_batch_size()
            jobs = [
                self.delayable(
                    description=_("%(c)s: prepare entitlements from id %(a)s", c=self.name, a=partner_ids[i]),
                    identity_key="g2p.cycle.prepare:%s:%s" % (self.id, partner_ids[i]),
                )._job_prepare_entitlements(partner_ids[i], partner_ids[min(i + size, len(partner_ids)) - 1])
                for i in range(0, len(partner_ids), size)
            ]
            finish = self.delayable(description=_("%s: entitlements prepared", self.name))._job_unlock(
                _(
                    "Entitlements prepared for %s beneficiaries (see each job's result for its counts).",
                    len(partner_ids),
                )
            )
            chain(group(*jobs), finish).delay()
            return 0
        created, skipped = self._prepare_entitlements_for(partner_ids)
        self._post_prepare_message(created, skipped)
        return created

    def _member_ids(self, id_range=(None, None)):
        self.env["g2p.cycle.membership"].flush_model()
        first, last = id_range
        self.env.cr.execute(
            """SELECT partner_id FROM g2p_cycle_membership
               WHERE cycle_id = %s AND state = 'enrolled'
                 AND (%s IS NULL OR partner_id >= %s) AND (%s IS NULL OR partner_id <= %s)
               ORDER BY partner_id""",
            [self.id, first, first, last, last],
        )
        return [row[0] for row in self.env.cr.fetchall()]

    def _prepare_entitlements_for(self, partner_ids):
        """Create the missing entitlements of ``partner_ids``. Returns (created, skipped)."""
        created = skipped = 0
        for manager in self._managers():
            Model = (
                self.env[manager._entitlement_model()]
                .sudo()
                .with_context(tracking_disable=True, mail_create_nolog=True, mail_notrack=True)
            )
            submitted = manager._generated_state_vals()
            in_sql = None
            if not self.env.context.get("entitlement_generation_batched"):  # the benchmark's comparison
                in_sql = manager._generate_in_sql(self, partner_ids, submitted) if partner_ids else (0, 0)
            if in_sql is not None:  # figures computed inside one INSERT ... SELECT
                created += in_sql[0]
                skipped += in_sql[1]
                continue
            for start in range(0, len(partner_ids), BATCH_SIZE):
                vals, batch_skipped = manager._prepare_entitlements(
                    self, partner_ids[start : start + BATCH_SIZE]
                )
                if vals:
                    for entitlement_vals in vals:
                        entitlement_vals.update(submitted)  # still one INSERT per batch
                    created += manager._create_entitlements(Model, vals)
                skipped += batch_skipped
        return created, skipped

    def _entitlement_common_vals(self):
        """Values every entitlement of this cycle shares (related and default ones included)."""
        self.ensure_one()
        return {
            "cycle_id": self.id,
            "program_id": self.program_id.id,
            "company_id": self.company_id.id,
            "valid_from": self.start_date,
            "valid_until": self.end_date,
            "state": "draft",
        }

    def _job_prepare_entitlements(self, first_id, last_id):
        """Job: prepare the entitlements of the members with ids in [first_id, last_id];
        adds nothing when run twice."""
        self.ensure_one()
        created, skipped = self._prepare_entitlements_for(self._member_ids((first_id, last_id)))
        return _("%(c)s entitlements created, %(s)s skipped", c=created, s=skipped)

    def _post_prepare_message(self, created, skipped):
        body = _("%s entitlements prepared.", created)
        if skipped:
            body += " " + _(
                "%s skipped: a condition or formula failed on them or gave no positive figure (see the server log).",
                skipped,
            )
        self._message_log(body=body)

    def validate_entitlement(self):
        """Approve the ``pending_validation`` entitlements of an approved cycle that the
        user may validate (the managers' validation groups decide). In-kind entitlements
        first check the whole cycle's needs against stock and, when any product is
        short, nothing is approved.

        Above the async threshold (system parameter ``g2p_programs_ext.async_threshold``,
        counted over every entitlement model) every check runs first on the whole cycle
        (state, validation groups, segregation of duties, ``[over_budget]``, in-kind
        stock), refusing everything before any job; then the approval runs as queue_job
        jobs of id-sliced batches, one after the other, the cycle ``locked`` until the
        last one ends. A job approves only the entitlements of its slice still pending
        (run twice, it changes nothing twice); a job that fails for good unlocks the
        cycle and posts what to do.

        :return: int, the number of entitlements approved (0 when queued).
        :raise UserError: the cycle is not approved or locked, stock is short, a budget
            would be exceeded.
        :raise AccessError: the user is not a validator.
        """
        self.ensure_one()
        if not self.env.su and not self.env.user.has_group("g2p_programs_ext.group_program_validator"):
            raise AccessError(coded("not_allowed", _("Only entitlement validators approve entitlements.")))
        if self.state != "approved":
            raise UserError(
                coded(
                    "cycle_not_approved",
                    _(
                        "Cycle %(name)s is %(state)s: approve the cycle before its entitlements.",
                        name=self.name,
                        state=dict(CYCLE_STATES)[self.state],
                    ),
                )
            )
        pending = {model: self._pending_count(model) for model in self._entitlement_models()}
        if sum(pending.values()) > self.program_id._async_threshold():
            return self._validate_async(pending)
        mine = {model: self._entitlements_to_validate(model) for model in self._entitlement_models()}
        approved = 0
        for records in mine.values():
            if records:
                records.with_user(self.env.user).approve_entitlement()
                approved += len(records)
        return approved

    def _entitlements_to_validate(self, model, id_range=(None, None)):
        """The ``pending_validation`` entitlements of ``model`` in this cycle (with ids in
        ``id_range``, both ends included, when given) that the user may validate: those
        whose manager's validation group the user is in (every one with a group for the
        superuser).

        :return: a recordset of ``model`` in the user's environment
        :raise UserError: ``[no_validation_group]`` some are pending and no manager of
            the program has a validation group."""
        Model = self.env[model]
        Model.flush_model(["cycle_id", "state"])
        first, last = id_range
        # SQL: the ids of up to 100,000 rows, where search would also read their columns
        # into the cache; flushed above, reads only.
        self.env.cr.execute(
            SQL(
                """SELECT id FROM %s WHERE cycle_id = %s AND state = 'pending_validation'
                      AND (%s::int IS NULL OR id >= %s) AND (%s::int IS NULL OR id <= %s) ORDER BY id""",
                SQL.identifier(Model._table),
                self.id,
                first,
                first,
                last,
                last,
            )
        )
        pending = Model.sudo().browse([row[0] for row in self.env.cr.fetchall()])
        groups = pending._validation_groups()
        user_groups = self.env.user.groups_id
        mine = [e for e in pending.ids if groups.get(e) and (self.env.su or groups[e] in user_groups)]
        if pending and not mine and not any(groups.values()):
            raise UserError(
                coded(
                    "no_validation_group",
                    _(
                        "The entitlement managers of %s have no validation group: "
                        "a program manager sets one on each manager.",
                        self.program_id.name,
                    ),
                )
            )
        return Model.browse(mine)

    def _pending_count(self, model):
        """int: the ``pending_validation`` entitlements of ``model`` in this cycle (SQL
        count, flushed first; no row read)."""
        Model = self.env[model]
        Model.flush_model(["cycle_id", "state"])
        self.env.cr.execute(
            SQL(
                "SELECT count(*) FROM %s WHERE cycle_id = %s AND state = 'pending_validation'",
                SQL.identifier(Model._table),
                self.id,
            )
        )
        return self.env.cr.fetchone()[0]

    def _id_slices(self, model, size):
        """[(first id, last id)] of this cycle's ``pending_validation`` entitlements of
        ``model`` in slices of ``size`` rows, computed in PostgreSQL (a national cycle's
        millions of ids never come into memory)."""
        self.env.cr.execute(
            SQL(
                """SELECT min(id), max(id) FROM (
                       SELECT id, (row_number() OVER (ORDER BY id) - 1) / %s AS slice
                         FROM %s WHERE cycle_id = %s AND state = 'pending_validation') s
                    GROUP BY slice ORDER BY slice""",
                size,
                SQL.identifier(self.env[model]._table),
                self.id,
            )
        )
        return self.env.cr.fetchall()

    def _validate_async(self, pending):
        """:meth:`validate_entitlement` above the threshold (``pending``: {model: count of
        this cycle's pending entitlements}). Every check runs on the whole cycle in
        PostgreSQL, without the entitlements' ids or rows in memory (a national cycle has
        millions): the user's validation groups (per entitlement model: one manager per
        program), segregation of duties, budgets, in-kind stock summed per warehouse and
        product. Any refusal comes before a job, nothing changed. Then the cycle is
        locked and the approval queued in id-sliced jobs run one after the other (in-kind
        reservations and budgets serialize on the cycle's and the budgets' rows anyway),
        then a job that unlocks it.

        :return: 0
        :raise UserError: ``[locked]``, ``[no_validation_group]``, ``[same_user]``,
            ``[over_budget]``, ``[no_warehouse]``, ``[out_of_stock]``."""
        self._check_unlocked()
        self._lock_rows(touch=False)  # two validators at once: the second waits, then is refused [locked]
        self.invalidate_recordset(["locked"])
        self._check_unlocked()
        user_groups = self.env.user.groups_id
        mine, any_group = [], False
        for model, count in pending.items():
            if not count:
                continue
            group = self.env[model]._cycle_validation_group(self)
            any_group = any_group or bool(group)
            if group and (self.env.su or group in user_groups):
                mine.append(model)
        if not mine:
            if not any_group:
                raise UserError(
                    coded(
                        "no_validation_group",
                        _(
                            "The entitlement managers of %s have no validation group: "
                            "a program manager sets one on each manager.",
                            self.program_id.name,
                        ),
                    )
                )
            return 0
        condition = SQL("cycle_id = %s AND state = 'pending_validation'", self.id)
        for model in mine:
            self.env[model].with_user(self.env.user)._check_cycle_segregation(self)
            self.env[model].sudo()._check_cycle_before_approve(self)
        self.env["g2p.entitlement.base"]._check_budget_for({model: condition for model in mine})
        self._lock(_("approving entitlements"))
        size = self.program_id._job_batch_size()
        jobs = []
        for model in mine:
            label = self.env[model]._description
            for first, last in self._id_slices(model, size):
                jobs.append(
                    self.delayable(
                        description=_("%(c)s: approve %(m)s from id %(a)s", c=self.name, m=label, a=first),
                    )._job_approve_entitlements(model, first, last)
                )
        total = sum(pending[model] for model in mine)
        finish = self.delayable(description=_("%s: entitlements approved", self.name))._job_unlock(
            _("%(n)s entitlements approved by %(user)s.", n=total, user=self.env.user.name)
        )
        chain(*jobs, finish).delay()
        return 0

    def _job_approve_entitlements(self, model, first_id, last_id):
        """Job: approve the entitlements of ``model`` in this cycle with ids in
        [first_id, last_id] that are still pending and that the user (the one who asked)
        may validate, with every check of an approval (budget and stock included).
        Idempotent: run twice, the second run finds nothing pending."""
        self.ensure_one()
        records = self._entitlements_to_validate(model, (first_id, last_id))
        if not records:
            return _("nothing left to approve")
        target = records.with_user(self.env.user)._check_approval(in_job=True)
        checked = records.sudo().with_context(tracking_disable=True)
        checked._check_budget()
        checked._approve_checked(target, log=False)
        return _("%s entitlements approved", len(records))

    def _job_approve_selected(self, model, ids):
        """Job (records: the cycles of a list selection, locked): approve the entitlements
        ``ids`` of ``model`` (a slice of the selection) that are still pending, with every
        check of an approval (budget and stock included), as the user who asked.
        Idempotent: run twice, the second run finds nothing pending.

        :return: str, what it did
        :raise UserError, AccessError: as ``approve_entitlement`` (the job fails and
            unlocks the cycles)."""
        Model = self.env[model]
        Model.flush_model(["state"])
        # SQL: the ids still pending among up to job_batch_size rows, without reading their columns.
        self.env.cr.execute(
            SQL(
                "SELECT id FROM %s WHERE id = ANY(%s) AND state = 'pending_validation' ORDER BY id",
                SQL.identifier(Model._table),
                list(ids),
            )
        )
        records = Model.browse([row[0] for row in self.env.cr.fetchall()])
        if not records:
            return _("nothing left to approve")
        target = records._check_approval(in_job=True)
        checked = records.sudo().with_context(tracking_disable=True)
        checked._check_budget()
        checked._approve_checked(target, log=False)
        return _("%s entitlements approved", len(records))

    def action_open_entitlements(self):
        """The cycle's cash entitlements; with the context key ``dashboard_state`` (a key of
        DASHBOARD_STATE_GROUPS), only those in that group of states.
        :return: an ``ir.actions.act_window`` dict on ``g2p.entitlement``."""
        return self._entitlement_action("g2p_programs_ext.g2p_entitlement_action")

    # ------------------------------------------------------------------
    # Smart buttons
    # ------------------------------------------------------------------
    def action_open_beneficiaries(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("g2p_programs_ext.g2p_cycle_membership_action")
        action["domain"] = [("cycle_id", "=", self.id)]
        return action
