import logging

from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.addons.queue_job.delay import chain, group
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from ..refusal import coded
from .g2p_entitlement_base import COMMITTED_STATES

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
        Above the async threshold: queue_job jobs of id-sliced batches, cycle locked."""
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
        self._create_memberships(missing)
        return len(missing)

    def _missing_beneficiary_ids(self, id_range=(None, None)):
        self.env["g2p.program.membership"].flush_model()
        self.env["g2p.cycle.membership"].flush_model()
        first, last = id_range
        self.env.cr.execute(
            """SELECT pm.partner_id FROM g2p_program_membership pm
               WHERE pm.program_id = %s AND pm.state = 'enrolled'
                 AND (%s IS NULL OR pm.partner_id >= %s) AND (%s IS NULL OR pm.partner_id <= %s)
                 AND NOT EXISTS (SELECT 1 FROM g2p_cycle_membership cm
                                 WHERE cm.cycle_id = %s AND cm.partner_id = pm.partner_id)
               ORDER BY pm.partner_id""",
            [self.program_id.id, first, first, last, last, self.id],
        )
        return [row[0] for row in self.env.cr.fetchall()]

    def _create_memberships(self, partner_ids):
        Membership = self.env["g2p.cycle.membership"].sudo()
        for start in range(0, len(partner_ids), BATCH_SIZE):
            Membership.create(
                [
                    {
                        "cycle_id": self.id,
                        "partner_id": pid,
                        "state": "enrolled",
                        # related values given: nothing is computed per record at flush
                        "program_id": self.program_id.id,
                        "company_id": self.company_id.id,
                    }
                    for pid in partner_ids[start : start + BATCH_SIZE]
                ]
            )

    def _job_copy_beneficiaries(self, first_id, last_id):
        """Job: copy the enrolled program members with ids in [first_id, last_id]; adds
        nothing when run twice."""
        self.ensure_one()
        missing = self._missing_beneficiary_ids((first_id, last_id))
        self._create_memberships(missing)
        return _("%s beneficiaries copied", len(missing))

    # ------------------------------------------------------------------
    # Locking (jobs)
    # ------------------------------------------------------------------
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
        ``pending_validation``. :return: True. :raise UserError: wrong state."""
        target = self._transition("to_approve")
        for model in self._entitlement_models():
            self.env[model]._cycle_submitted(self)
        self.sudo().write({"state": target})
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
        """End approved or distributed cycles. :return: True."""
        target = self._transition("mark_ended")
        self.sudo().write({"state": target})
        return True

    def mark_cancelled(self):
        """Cancel cycles; their unredeemed entitlements are cancelled (releasing stock).
        :return: True."""
        target = self._transition("mark_cancelled")
        for model in self._entitlement_models():
            self.env[model]._cycle_cancelled(self)
        self.sudo().write({"state": target})
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
        """Hook called by a closing (spp_auto_update_entitlements) on cycles whose
        entitlements were just settled, right before the cycles become ``ended``: does
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
        # to serialize and is retried by Odoo, seeing what the first one created (an
        # expected outcome, hence not logged as a bad query).
        self.env.cr.execute(
            SQL("SELECT id FROM g2p_cycle WHERE id = %s FOR UPDATE", self.id), log_exceptions=False
        )
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

        :return: int, the number of entitlements approved.
        :raise UserError: the cycle is not approved, or stock is short.
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
        user_groups = self.env.user.groups_id
        approved = 0
        for model in self._entitlement_models():
            pending = (
                self.env[model]
                .sudo()
                .search([("cycle_id", "=", self.id), ("state", "=", "pending_validation")])
            )
            groups = pending._validation_groups()
            mine = pending.browse(
                [e.id for e in pending if groups.get(e.id) and (self.env.su or groups[e.id] in user_groups)]
            )
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
            if mine:
                mine.with_user(self.env.user).approve_entitlement()
                approved += len(mine)
        return approved

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
