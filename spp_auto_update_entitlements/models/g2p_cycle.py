import logging
from datetime import timedelta

from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext.models.g2p_cycle import OPEN_ENTITLEMENT_STATES
from odoo.addons.g2p_programs_ext.refusal import coded
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


class G2PCycle(models.Model):
    _inherit = "g2p.cycle"

    end_requested = fields.Boolean(
        readonly=True,
        copy=False,
        help="End cycle was asked while its entitlements could not all be settled at once (more "
        "than the async threshold, or some being redeemed right now): the scheduled action Close "
        "ended cycles settles them in batches and ends the cycle, which stays locked until then.",
    )

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su and any(vals.get("end_requested") for vals in vals_list):
            self._check_lifecycle_vals(["end_requested"])
        return super().create(vals_list)

    def write(self, vals):
        # set by mark_ended only: the flag makes the scheduled action end the cycle
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
        summary. A cycle with more open entitlements than the async threshold is left
        to the scheduled action, which works in committed batches.

        :return: True
        :raise UserError: a cycle is in another state or its end date has not passed.
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
                cron._trigger()
                cycle._message_log(body=_("Closing requested: the scheduled action closes it in batches."))
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
        and ended in this transaction. A larger one (or one whose last open entitlements
        are being redeemed right now) is locked and flagged ``end_requested``; the
        scheduled action then settles it in committed batches, ends and unlocks it.

        :return: True"""
        cron = self.env.ref("spp_auto_update_entitlements.ir_cron_close_ended_cycles")
        for cycle in self.sudo():
            if cycle._count_open_entitlements() > cycle.program_id._async_threshold():
                cycle._request_end(cron, fields.Datetime.now())
                continue
            if cycle._close_now() is None:
                cycle._request_end(cron, fields.Datetime.now() + LOCKED_RETRY)
        return True

    def _request_end(self, cron, when):
        """Lock the cycle and leave its settlement and end to the scheduled action
        (triggered at ``when``)."""
        self.ensure_one()
        self.write({"end_requested": True})
        self._lock(_("ending: the scheduled action settles its entitlements"))
        cron._trigger(when)
        self._message_log(
            body=_(
                "End requested: the scheduled action settles the entitlements in batches, then ends the cycle."
            )
        )

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

    # ------------------------------------------------------------------
    # Scheduled action
    # ------------------------------------------------------------------
    @api.model
    def _cron_close_ended_cycles(self, batch_size=BATCH_SIZE):
        """Close, one batch of ``batch_size`` entitlements per run, the approved or
        distributed cycles whose end date is before today, and those whose end was
        requested (``mark_ended``, ``end_requested``); other locked cycles wait. Each run is its own
        transaction: when more remains, the cron triggers itself again, so a run that is
        killed loses only its own batch and the next run goes on from there. Running it
        when nothing is left changes nothing. :return: True"""
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
    def _has_open_besides(self, Model, ids):
        """Whether this cycle has open entitlements of ``Model`` other than ``ids`` (rows
        that ``SKIP LOCKED`` passed over: being redeemed right now)."""
        self.env.cr.execute(
            SQL(
                "SELECT 1 FROM %s WHERE cycle_id = %s AND state IN %s AND NOT (id = ANY(%s)) LIMIT 1",
                SQL.identifier(Model._table),
                self.id,
                OPEN_STATES,
                ids,
            )
        )
        return bool(self.env.cr.fetchone())

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
            Model = self.env[model].sudo().with_context(tracking_disable=True)
            Model.flush_model(["cycle_id", "state"])
            # SQL, not search: the ORM has no row lock. SKIP LOCKED: an entitlement
            # being redeemed right now is taken by the next run. Flushed above, nothing cached.
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM %s WHERE cycle_id = %s AND state IN %s ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                    SQL.identifier(Model._table),
                    self.id,
                    OPEN_STATES,
                    batch_size + 1,
                )
            )
            ids = [row[0] for row in self.env.cr.fetchall()]
            if len(ids) > batch_size:
                left = True
                ids = ids[:batch_size]
            elif self._has_open_besides(Model, ids):
                left = True  # locked by a redemption in progress: never end the cycle over them
            settled += len(ids)
            records = Model.browse(ids)
            records._recompute_redeemed_from_transactions()
            # One UPDATE classifies the batch. Stock is released once, when the cycle ends
            # (below), not per batch: each release re-reserves the cycle's moves through
            # Odoo's stock (about 0.6 s).
            records._settle_for_closing()
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
