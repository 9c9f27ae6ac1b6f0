import logging

from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.addons.queue_job.delay import chain, group
from odoo.exceptions import AccessError, UserError

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

    # ------------------------------------------------------------------
    # Creation
    # ------------------------------------------------------------------
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
            jobs = [
                self.delayable(
                    description=_("%(c)s: copy beneficiaries from id %(a)s", c=self.name, a=missing[i])
                )._job_copy_beneficiaries(missing[i], missing[min(i + BATCH_SIZE, len(missing)) - 1])
                for i in range(0, len(missing), BATCH_SIZE)
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
                    {"cycle_id": self.id, "partner_id": pid, "state": "enrolled"}
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
            self.message_post(body=message)
        return True

    def _on_job_failed(self, job_description):
        """Called when one of the cycle's jobs fails for good: unlock, say what failed."""
        self.sudo().write({"locked": False, "locked_reason": False})
        for cycle in self:
            cycle.message_post(
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
                    _(
                        "[locked] Cycle %(name)s is busy (%(reason)s): wait for its jobs to end.",
                        name=cycle.name,
                        reason=cycle.locked_reason or _("jobs running"),
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
                _(
                    "[not_allowed] Only the group %(group)s may do this (%(method)s) on cycles.",
                    group=self.env.ref(group).display_name,
                    method=method,
                )
            )
        self._check_unlocked()
        labels = dict(CYCLE_STATES)
        for cycle in self:
            if cycle.state not in sources:
                raise UserError(
                    _(
                        "[wrong_state] Cycle %(name)s is %(state)s: this can only be done when it is %(allowed)s.",
                        name=cycle.name,
                        state=labels[cycle.state],
                        allowed=_(" or ").join(labels[s] for s in sources),
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
        """Approve cycles that are ``to_approve``. :return: True. :raise UserError: wrong state."""
        target = self._transition("approve")
        self.sudo().write({"state": target})
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
        self.sudo().write({"state": target})
        return True

    @api.model
    def _entitlement_models(self):
        """Names of the entitlement models that use the lifecycle (each addon adds its own)."""
        return []

    # ------------------------------------------------------------------
    # Smart buttons
    # ------------------------------------------------------------------
    def action_open_beneficiaries(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("g2p_programs_ext.g2p_cycle_membership_action")
        action["domain"] = [("cycle_id", "=", self.id)]
        return action
