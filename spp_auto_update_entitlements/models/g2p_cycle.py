import logging
from datetime import timedelta

from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext.models.g2p_cycle import OPEN_ENTITLEMENT_STATES
from odoo.addons.g2p_programs_ext.refusal import coded
from odoo.addons.queue_job.delay import chain, group
from odoo.addons.queue_job.exception import RetryableJobError
from odoo.exceptions import UserError
from odoo.tools import SQL

_logger = logging.getLogger(__name__)

# Entitlements settled per committed run of the scheduled action. Each run is a cron
# wake-up and a commit (about half a second of waiting on the benchmark's server besides
# the work, ~0.1 ms per entitlement): 20,000 keeps that overhead small and a run's
# transaction to a few seconds.
BATCH_SIZE = 20000
# When the only open entitlements left are being redeemed right now (row locked), the
# closing tries again this much later instead of spinning on them.
LOCKED_RETRY = timedelta(minutes=1)
OPEN_STATES = OPEN_ENTITLEMENT_STATES
# The closing's jobs (queue_job), and the states in which one still has work to do.
CLOSING_JOBS = ("_job_close_range", "_job_finish_closing")
LIVE_JOB_STATES = ("pending", "enqueued", "started")


class G2PCycle(models.Model):
    _inherit = "g2p.cycle"

    end_requested = fields.Boolean(
        readonly=True,
        copy=False,
        help="The cycle is being closed or ended but could not be settled at once: above the async "
        "threshold its closing jobs settle the entitlements in batches and the last one ends the "
        "cycle; when its last open entitlements were being redeemed, the scheduled action Close "
        "ended cycles finishes a minute later. The cycle stays locked until then.",
    )

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su and any(vals.get("end_requested") for vals in vals_list):
            self._check_lifecycle_vals(["end_requested"])
        return super().create(vals_list)

    def write(self, vals):
        # set by the closing only: the flag says the cycle is being ended
        if not self.env.su and "end_requested" in vals:
            self._check_lifecycle_vals(["end_requested"])
        return super().write(vals)

    # ------------------------------------------------------------------
    # Public
    # ------------------------------------------------------------------
    def action_close(self):
        """Close cycles whose end date has passed (the button; the daily scheduled
        action does the same for every such cycle).

        For each cycle (approved or distributed, ``end_date`` before today): recompute
        what was redeemed from the transactions, set each approved or transferred
        entitlement to ``redeemed`` (nothing left), ``partially_redeemed`` (something
        redeemed, something left) or ``expired`` (nothing redeemed), run the cycle's
        ``_before_end()`` hook (with spp_entitlement_in_kind: post the outstanding
        deliveries, release the stock not handed out), then end the cycle and post a
        summary. A cycle with more open entitlements than the async threshold (system
        parameter ``g2p_programs_ext.async_threshold``) is locked and closed by
        queue_job jobs (``_close_by_jobs``): none of it runs in the request.

        :return: True
        :raise UserError: ``[wrong_state]``, ``[locked]``, ``[not_ended]`` (the end date
            has not passed).
        :raise AccessError: ``[not_allowed]``, the user is not a cycle approver.
        """
        self._transition("mark_ended")
        today = fields.Date.context_today(self)
        for cycle in self:
            if cycle.end_date >= today:
                raise UserError(
                    coded(
                        "not_ended",
                        _(
                            "Cycle %(name)s runs until %(end)s: it can be closed from the day after.",
                            name=cycle.name,
                            end=cycle.end_date,
                        ),
                    )
                )
        cron = self.env.ref("spp_auto_update_entitlements.ir_cron_close_ended_cycles")
        for cycle in self.sudo():
            if cycle._count_open_entitlements() > cycle.program_id._async_threshold():
                cycle.with_user(self.env.user)._close_by_jobs()
                continue
            if cycle._close_now() is None:
                cron._trigger(fields.Datetime.now() + LOCKED_RETRY)
                cycle._message_log(
                    body=_(
                        "Some entitlements are being redeemed right now: the scheduled action finishes "
                        "closing the cycle in a minute."
                    )
                )
        return True

    def _settle_and_end(self):
        """``mark_ended()`` (End cycle) settles through the closing: the same batches,
        hooks and summary as ``action_close`` and the scheduled action, whatever the end
        date. A cycle with no more open entitlements than the async threshold is settled
        and ended in this transaction. A larger one is locked and closed by queue_job
        jobs (``_close_by_jobs``); one whose last open entitlements are being redeemed
        right now is locked, flagged ``end_requested`` and finished by the scheduled
        action a minute later.

        :return: True"""
        cron = self.env.ref("spp_auto_update_entitlements.ir_cron_close_ended_cycles")
        for cycle in self.sudo():
            if cycle._count_open_entitlements() > cycle.program_id._async_threshold():
                cycle.with_user(self.env.user)._close_by_jobs()
                continue
            if cycle._close_now() is None:
                cycle._request_end(cron, fields.Datetime.now() + LOCKED_RETRY)
        return True

    def _request_end(self, cron, when):
        """Lock the cycle and leave the end of its settlement to the scheduled action
        (triggered at ``when``): its last open entitlements are being redeemed."""
        self.ensure_one()
        self.sudo().write({"end_requested": True})
        self._lock(_("ending: the scheduled action settles its entitlements"))
        cron._trigger(when)
        self._message_log(
            body=_(
                "End requested: some entitlements are being redeemed right now; the scheduled action "
                "settles them and ends the cycle in a minute."
            )
        )

    def _close_by_jobs(self):
        """Close this cycle with queue_job jobs (above the async threshold): lock it
        (``end_requested``), then queue one job per slice of
        ``g2p_programs_ext.job_batch_size`` open entitlements of each model
        (``_job_close_range``, run in parallel up to the channel's capacity: each settles
        only its own rows) and, after them, ``_job_finish_closing``, which settles what
        is left, runs ``_before_end()``, ends the cycle, posts the summary and unlocks
        it. The jobs run as the user who asked (or OdooBot for the scheduled action).

        :return: the number of range jobs queued"""
        self.ensure_one()
        self.sudo().write({"end_requested": True})
        self._lock(_("closing: its jobs settle the entitlements"))
        size = self.program_id._job_batch_size()
        jobs = []
        for model in self._entitlement_models():
            ids = self._open_entitlement_ids(model)
            for i in range(0, len(ids), size):
                first, last = ids[i], ids[min(i + size, len(ids)) - 1]
                jobs.append(
                    self.delayable(
                        description=_(
                            "%(c)s: settle %(m)s from id %(a)s",
                            c=self.name,
                            m=self.env[model]._description,
                            a=first,
                        )
                    )._job_close_range(model, first, last)
                )
        finish = self.delayable(description=_("%s: end the cycle (closing)", self.name))._job_finish_closing()
        if jobs:
            chain(group(*jobs), finish).delay()
        else:
            finish.delay()
        self._message_log(
            body=_(
                "Closing requested: %s jobs settle the entitlements in batches, then the cycle ends and "
                "is unlocked.",
                len(jobs) + 1,
            )
        )
        return len(jobs)

    def _close_now(self):
        """Settle and end this cycle in batches in this transaction. :return: as ``_close_batch``
        (True ended, None: only entitlements being redeemed right now are left)."""
        done = self._close_batch(BATCH_SIZE)
        while done is False:
            done = self._close_batch(BATCH_SIZE)
        return done

    def _set_ended(self):
        """Also clear an end request and the lock it set."""
        requested = self.filtered("end_requested")
        result = super()._set_ended()
        if requested:
            requested.sudo().write({"end_requested": False, "locked": False, "locked_reason": False})
        return result

    def _on_job_failed(self, job_description):
        """A closing job failed for good (its cycle is ``end_requested``): clear the
        request, unlock, and say what to do; what the other jobs settled stays settled
        (each committed its own slice). Other jobs: as before."""
        closing = self.filtered("end_requested")
        if closing:
            closing.sudo().write({"end_requested": False, "locked": False, "locked_reason": False})
            for cycle in closing:
                cycle._message_log(
                    body=_(
                        "A closing job failed: %s. The cycle is unlocked and not ended; the entitlements "
                        "other jobs settled stay settled. End the cycle again (End cycle, or Close cycle "
                        "once its end date has passed) to settle the rest; the scheduled action also "
                        "retries a cycle whose end date has passed.",
                        job_description,
                    )
                )
        if self - closing:
            return super(G2PCycle, self - closing)._on_job_failed(job_description)
        return None

    # ------------------------------------------------------------------
    # Jobs
    # ------------------------------------------------------------------
    def _job_close_range(self, model, first_id, last_id):
        """Job: settle the open (approved, transferred) entitlements of ``model`` in this
        cycle with ids in [first_id, last_id], as the closing does (redeemed figure from
        the ledger, then redeemed / partially redeemed / expired), skipping rows being
        redeemed right now (the last job takes them). Only while the cycle's closing is
        requested: run twice, or after the closing failed and unlocked it, it changes
        nothing. :return: str, what it did"""
        self.ensure_one()
        cycle = self.sudo()
        if cycle.state not in ("approved", "distributed") or not cycle.end_requested:
            return _("closing not under way (cycle %s): nothing done", cycle.state)
        settled = 0
        while True:
            ids, more = cycle._settle_open(model, BATCH_SIZE, (first_id, last_id))
            settled += len(ids)
            if not more or not ids:
                break
        return _("%s entitlements settled", settled)

    def _job_finish_closing(self):
        """Job, the last of a closing: settle what the range jobs left (rows that were
        being redeemed), then ``_before_end()``, end the cycle, post the summary and
        unlock it. Waits on the cycle's row so that two runs at once do it once.
        Idempotent: an ended cycle, or one whose closing is no longer requested, is left
        as it is.

        :return: str
        :raise RetryableJobError: open entitlements are still being redeemed (retried a
            minute later; after queue_job's retries the job fails and the cycle unlocks)."""
        self.ensure_one()
        cycle = self.sudo()
        cycle._lock_rows()
        cycle.invalidate_recordset()
        if cycle.state == "ended":
            return _("already ended")
        if not cycle.end_requested:
            return _("closing not under way (cycle %s): nothing done", cycle.state)
        if cycle._close_now() is None:
            raise RetryableJobError(
                coded(
                    "being_redeemed",
                    _(
                        "Cycle %s: entitlements are being redeemed right now; the closing ends it a minute later.",
                        cycle.name,
                    ),
                ),
                seconds=int(LOCKED_RETRY.total_seconds()),
            )
        return _("cycle ended")

    # ------------------------------------------------------------------
    # Scheduled action
    # ------------------------------------------------------------------
    @api.model
    def _cron_close_ended_cycles(self, batch_size=BATCH_SIZE):
        """Find the approved or distributed cycles whose end date is before today, and
        those whose end was requested (``end_requested``), and close them; other locked
        cycles wait. A cycle above the async threshold is handed to queue_job jobs
        (``_close_by_jobs``); one whose closing jobs are still queued or running is left
        to them. A smaller one is settled here, one batch of ``batch_size`` entitlements
        per run: each run is its own transaction and, when more remains, the cron
        triggers itself again, so a run that is killed loses only its own batch. Running
        it when nothing is left changes nothing. :return: True"""
        today = fields.Date.context_today(self)
        cycles = self.sudo().search(
            [
                ("state", "in", ("approved", "distributed")),
                "|",
                ("end_date", "<", today),
                ("end_requested", "=", True),
                "|",
                ("locked", "=", False),
                ("end_requested", "=", True),
            ]
        )
        cron = self.env.ref("spp_auto_update_entitlements.ir_cron_close_ended_cycles")
        for cycle in cycles:
            if cycle.end_requested and cycle._closing_jobs_live():
                continue  # its jobs close it
            if cycle._count_open_entitlements() > cycle.program_id._async_threshold():
                cycle._close_by_jobs()
                continue
            done = cycle._close_batch(batch_size)
            if done is False:
                cron._trigger()
                break
            if done is None:  # only entitlements being redeemed right now are left
                cron._trigger(fields.Datetime.now() + LOCKED_RETRY)
        return True

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------
    def _closing_jobs_live(self):
        """Whether a closing job of this cycle is pending, enqueued or running."""
        self.ensure_one()
        return bool(
            self.env["queue.job"]
            .sudo()
            .search_count(
                [
                    ("model_name", "=", self._name),
                    ("method_name", "in", CLOSING_JOBS),
                    ("state", "in", LIVE_JOB_STATES),
                    ("func_string", "=like", "%s(%s,).%%" % (self._name, self.id)),
                ],
                limit=1,
            )
        )

    def _open_entitlement_ids(self, model):
        """Ids of the open entitlements of ``model`` in this cycle, in id order. SQL:
        the ids only (up to a million rows); flushed first, reads only."""
        return self.env[model]._cycle_entitlement_ids(self, OPEN_STATES)

    def _has_open_besides(self, Model, ids, id_range=(None, None)):
        """Whether this cycle has open entitlements of ``Model`` (with ids in
        ``id_range``) other than ``ids`` (rows that ``SKIP LOCKED`` passed over: being
        redeemed right now)."""
        first, last = id_range
        self.env.cr.execute(
            SQL(
                """SELECT 1 FROM %s WHERE cycle_id = %s AND state IN %s AND NOT (id = ANY(%s))
                      AND (%s::int IS NULL OR id >= %s) AND (%s::int IS NULL OR id <= %s) LIMIT 1""",
                SQL.identifier(Model._table),
                self.id,
                OPEN_STATES,
                ids,
                first,
                first,
                last,
                last,
            )
        )
        return bool(self.env.cr.fetchone())

    def _settle_open(self, model, batch_size, id_range=(None, None)):
        """Settle up to ``batch_size`` open entitlements of ``model`` in this cycle
        (with ids in ``id_range``, both ends included, None for no bound): their
        redeemed figure from the ledger, then their closing state, rows being redeemed
        right now skipped.

        :return: (ids settled, whether open ones are left in the range)"""
        self.ensure_one()
        Model = self.env[model].sudo().with_context(tracking_disable=True)
        Model.flush_model(["cycle_id", "state"])
        first, last = id_range
        # SQL, not search: the ORM has no row lock. SKIP LOCKED: an entitlement
        # being redeemed right now is taken by the next run. Flushed above, nothing cached.
        self.env.cr.execute(
            SQL(
                """SELECT id FROM %s WHERE cycle_id = %s AND state IN %s
                      AND (%s::int IS NULL OR id >= %s) AND (%s::int IS NULL OR id <= %s)
                    ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED""",
                SQL.identifier(Model._table),
                self.id,
                OPEN_STATES,
                first,
                first,
                last,
                last,
                batch_size + 1,
            )
        )
        ids = [row[0] for row in self.env.cr.fetchall()]
        left = False
        if len(ids) > batch_size:
            left = True
            ids = ids[:batch_size]
        elif self._has_open_besides(Model, ids, id_range):
            left = True  # locked by a redemption in progress: never end the cycle over them
        records = Model.browse(ids)
        records._recompute_redeemed_from_transactions()
        # One UPDATE classifies the batch. Stock is released once, when the cycle ends
        # (_close_batch), not per batch: each release re-reserves the cycle's moves
        # through Odoo's stock (about 0.6 s).
        records._settle_for_closing()
        return ids, left

    def _close_batch(self, batch_size):
        """Settle up to ``batch_size`` open entitlements of this cycle (per model).
        When none is left, end the cycle and post the summary.

        :return: True when the cycle is ended; False when open entitlements are left for
            the next batch; None when the only ones left are locked by a redemption in
            progress (skipped: the next run, a little later, takes them).
        """
        self.ensure_one()
        if self.state == "ended":
            return True
        left = False
        settled = 0
        for model in self._entitlement_models():
            ids, more = self._settle_open(model, batch_size)
            settled += len(ids)
            left = left or more
        if left:
            return False if settled else None
        # Once, when nothing is left open: the addons' settlement work (in-kind: post
        # what was handed out, give back what the settled entitlements will never take;
        # each an aggregate over the whole cycle, about 0.3 s at 100,000). Idempotent: a
        # rerun after an interruption changes nothing.
        self._before_end()
        self._set_ended()
        self._post_closing_summary()
        return True

    def _post_closing_summary(self):
        """One message with the counts per state, then what the addons add (in-kind: per
        product, what was handed out and given back)."""
        lines = []
        labels = dict(self.env["g2p.entitlement"]._fields["state"].selection)
        for model in self._entitlement_models():
            counts = self.env[model].sudo()._read_group([("cycle_id", "=", self.id)], ["state"], ["__count"])
            if counts:
                lines.append(
                    "%s: %s"
                    % (
                        self.env[model]._description,
                        ", ".join("%s %s" % (n, labels.get(s, s)) for s, n in counts),
                    )
                )
        lines += self._closing_summary_lines()
        body = Markup("<br/>").join([_("Cycle closed."), *lines])
        self._message_log(body=body)
