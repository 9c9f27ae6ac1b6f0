"""End cycle (``g2p.cycle.mark_ended``) settles the cycle through the closing (issue 21,
item 4): no entitlement stays approved or transferred and no stock stays reserved after
a cycle ends, by any path (End cycle below and above the async threshold, the closing's
scheduled action, the cycle's cancellation)."""

from datetime import timedelta

from odoo.addons.g2p_programs_ext.models.g2p_cycle import G2PCycle as BaseCycle
from odoo.addons.g2p_programs_ext.tests.common import run_job_as_the_runner_does
from odoo.addons.queue_job.tests.common import trap_jobs
from odoo.addons.spp_entitlement_transactions.tests.common import InkindRedemptionCase
from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

# A move of the cycle that still holds (or waits for) stock.
OPEN_MOVE_STATES = ("waiting", "confirmed", "partially_available", "assigned")


@tagged("post_install", "-at_install")
class TestEndCycle(InkindRedemptionCase):
    """Cash: a1 redeemed in full, a2 in part (40 of 100), b1 never, b2 pending validation
    (rejected, reset to draft, corrected and submitted again by the officer). In-kind (10 kg
    of rice each, reserved at approval): a1 redeemed in part (4 kg), b1 pending validation
    (rejected: its stock released; reset and submitted again)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api_a = cls.env["spp.entitlement.transaction"].with_user(cls.agent_a)
        cls.api_b = cls.env["spp.entitlement.transaction"].with_user(cls.agent_b)
        cls.api_a.redeem(cls.ent_a1.code, 100.0, cls.point_a.id, "end-a1")
        cls.api_a.redeem(cls.ent_a2.code, 40.0, cls.point_a.id, "end-a2")
        cls.api_a.redeem(cls.ink_a1.code, 4.0, cls.point_a.id, "end-rice-a1")
        cls.cron = cls.env.ref("spp_auto_update_entitlements.ir_cron_close_ended_cycles")
        cls.Cycle = cls.env["g2p.cycle"]

    def make_pending(self, entitlement):
        """The guide's loop up to the submission, as the roles do it."""
        entitlement.with_user(self.validator).action_reject("other", "to check")
        entitlement.with_user(self.officer).action_reset_to_draft()
        entitlement.with_user(self.officer).write({"note": "checked"})
        entitlement.with_user(self.officer).action_submit()
        self.assertEqual(entitlement.state, "pending_validation")

    def ledger(self):
        self.env.invalidate_all()
        return (
            self.env["spp.entitlement.transaction"]
            .sudo()
            .search_read(
                [],
                [
                    "transaction_type",
                    "amount",
                    "quantity",
                    "entitlement_id",
                    "inkind_entitlement_id",
                    "reference",
                ],
            )
        )

    def states(self, cycle):
        self.env.invalidate_all()
        entitlements = [*cycle.entitlement_ids, *cycle.inkind_entitlement_ids]
        return {e.partner_id.name: e.state for e in entitlements}

    def open_moves(self, cycle):
        """The cycle's stock moves still reserved or waiting for stock: its allocations'
        moves and any move carrying the cycle."""
        self.env.invalidate_all()
        allocations = self.env["g2p.inkind.allocation"].sudo().search([("cycle_id", "=", cycle.id)])
        moves = allocations.move_ids | self.env["stock.move"].sudo().search([("g2p_cycle_id", "=", cycle.id)])
        return moves.filtered(lambda m: m.state in OPEN_MOVE_STATES)

    def assertSettled(self, cycle):
        """Ended, unlocked, no approved or transferred entitlement, no reservation."""
        self.env.invalidate_all()
        self.assertEqual(cycle.state, "ended")
        self.assertFalse(cycle.locked)
        self.assertFalse(cycle.end_requested)
        self.assertEqual(cycle.sudo()._count_open_entitlements(), 0)
        self.assertFalse(self.open_moves(cycle), "a reservation survived the end of the cycle")
        rice = self.rice.with_context(warehouse=self.warehouse.id)
        self.assertAlmostEqual(
            rice.virtual_available, rice.qty_available, msg="nothing reserved for the cycle"
        )

    def assertRedemptionsRefused(self):
        """After the end: every code is refused with the code of its state."""
        self.assertRefused(
            "fully_redeemed", self.api_a.redeem, self.ent_a1.code, 1.0, self.point_a.id, "after-1"
        )
        self.assertRefused(
            "not_approved", self.api_a.redeem, self.ent_a2.code, 1.0, self.point_a.id, "after-2"
        )
        self.assertRefused("expired", self.api_b.redeem, self.ent_b1.code, 1.0, self.point_b.id, "after-3")
        self.assertRefused(
            "not_approved", self.api_a.redeem, self.ink_a1.code, 1.0, self.point_a.id, "after-4"
        )
        self.assertRefused("not_reversible", self.api_a.reverse, "end-a2", self.point_a.id, "too late")

    # ------------------------------------------------------------------
    def test_end_cycle_settles_like_the_closing(self):
        """An approver ends the cash cycle, a manager the in-kind one, before their end date."""
        self.make_pending(self.ent_b2)
        self.make_pending(self.ink_b1)
        rice = self.rice.with_context(warehouse=self.warehouse.id)
        on_hand = rice.qty_available
        self.assertTrue(self.open_moves(self.inkind_cycle), "6 kg of a1's rice are reserved")
        ledger = self.ledger()
        self.assertGreaterEqual(self.cycle.end_date, self.today, "ended early: the end date has not passed")

        self.assertTrue(self.cycle.with_user(self.approver).mark_ended())
        self.assertTrue(self.inkind_cycle.with_user(self.manager).mark_ended())

        self.assertEqual(
            self.states(self.cycle),
            {
                "House A1": "redeemed",
                "House A2": "partially_redeemed",
                "House B1": "expired",
                "House B2": "pending_validation",
            },
        )
        self.assertEqual(
            self.states(self.inkind_cycle),
            {"House A1": "partially_redeemed", "House B1": "pending_validation"},
        )
        self.assertSettled(self.cycle)
        self.assertSettled(self.inkind_cycle)
        self.assertAlmostEqual(rice.qty_available, on_hand - 4.0, msg="the 4 kg handed out were delivered")
        self.assertEqual(self.ledger(), ledger, "the ledger is not touched")
        self.assertIn("Cycle closed", self.inkind_cycle.message_ids[0].body)
        self.assertIn("4.0 kg handed out, 6.0 kg given back", self.inkind_cycle.message_ids[0].body)

        # the closing afterwards changes nothing
        messages = len(self.inkind_cycle.message_ids)
        before = (self.states(self.cycle), self.states(self.inkind_cycle), rice.qty_available)
        self.cron.method_direct_trigger()
        self.env.invalidate_all()
        self.assertEqual(
            (self.states(self.cycle), self.states(self.inkind_cycle), rice.qty_available), before
        )
        self.assertEqual(len(self.inkind_cycle.message_ids), messages)
        with self.assertRaisesRegex(UserError, r"^\[wrong_state\]"):
            self.cycle.with_user(self.approver).action_close()

        self.assertRedemptionsRefused()
        # the pending ones stay pending: nothing approves them in an ended cycle
        with self.assertRaisesRegex(UserError, r"^\[cycle_not_approved\]"):
            self.ent_b2.with_user(self.validator).approve_entitlement()
        with self.assertRaisesRegex(UserError, r"^\[cycle_not_approved\]"):
            self.ink_b1.with_user(self.validator).approve_entitlement()
        self.assertFalse(self.open_moves(self.inkind_cycle))

    def test_end_cycle_roles(self):
        for user in (self.officer, self.validator, self.agent_a):
            with self.assertRaisesRegex(AccessError, r"^\[not_allowed\]"):
                self.inkind_cycle.with_user(user).mark_ended()
        self.assertEqual(self.inkind_cycle.state, "approved")
        with self.assertRaisesRegex(UserError, r"^\[use_actions\]"):
            self.inkind_cycle.with_user(self.manager).write({"end_requested": True})

    def jobs_from_now(self):
        """Threshold 1 and jobs of one entitlement, set once the cycles are approved."""
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("g2p_programs_ext.async_threshold", "1")
        params.set_param("g2p_programs_ext.job_batch_size", "1")

    def closing_jobs(self, trap, method):
        return [j for j in trap.enqueued_jobs if j.method_name == method]

    def test_end_cycle_above_the_threshold_runs_as_jobs(self):
        """Above the async threshold End cycle settles nothing in the request: it locks
        the cycles and queues the closing's jobs (one per slice of open entitlements, then
        one that ends the cycle); the jobs settle, end and unlock them."""
        self.jobs_from_now()
        self.make_pending(self.ent_b2)
        ledger = self.ledger()
        with trap_jobs() as trap:
            (self.cycle | self.inkind_cycle).with_user(self.approver).mark_ended()
            # open: cash a2 (part redeemed) and b1, in-kind a1 (part redeemed) and b1
            self.assertEqual(len(self.closing_jobs(trap, "_job_close_range")), 4)
            self.assertEqual(len(self.closing_jobs(trap, "_job_finish_closing")), 2)
            self.assertEqual(
                {j.user_id for j in trap.enqueued_jobs}, {self.approver.id}, "the jobs run as the approver"
            )
            self.env.invalidate_all()
            for cycle in self.cycle | self.inkind_cycle:
                self.assertEqual(cycle.state, "approved", "not settled in the request")
                self.assertTrue(cycle.locked and cycle.end_requested)
            self.assertEqual(
                set(self.states(self.cycle).values()), {"approved", "redeemed", "pending_validation"}
            )
            with self.assertRaisesRegex(UserError, r"^\[locked\]"):
                self.cycle.with_user(self.approver).mark_ended()
            with self.assertRaisesRegex(UserError, r"^\[locked\]"):
                self.inkind_cycle.with_user(self.approver).mark_cancelled()
            trap.perform_enqueued_jobs()
        self.assertEqual(
            self.states(self.cycle),
            {
                "House A1": "redeemed",
                "House A2": "partially_redeemed",
                "House B1": "expired",
                "House B2": "pending_validation",
            },
        )
        self.assertEqual(
            self.states(self.inkind_cycle), {"House A1": "partially_redeemed", "House B1": "expired"}
        )
        self.assertSettled(self.cycle)
        self.assertSettled(self.inkind_cycle)
        self.assertIn("Cycle closed", self.inkind_cycle.message_ids[0].body)
        self.assertEqual(self.ledger(), ledger)
        self.assertRedemptionsRefused()

    def test_closing_jobs_run_twice_change_nothing_twice(self):
        """A range job run again (a retry after a lost answer) settles nothing again; the
        last job run again neither posts, releases nor writes a second summary."""
        self.jobs_from_now()
        with trap_jobs() as trap:
            self.cycle.with_user(self.approver).mark_ended()
            ranges = self.closing_jobs(trap, "_job_close_range")
            self.assertEqual(len(ranges), 3)  # a2, b1, b2
            self.assertEqual(ranges[0].perform(), "1 entitlements settled")
            self.env.invalidate_all()
            once = {e.id: (e.state, e.write_date) for e in self.cycle.entitlement_ids}
            self.assertEqual(ranges[0].perform(), "0 entitlements settled")
            self.env.invalidate_all()
            self.assertEqual({e.id: (e.state, e.write_date) for e in self.cycle.entitlement_ids}, once)
            finish = self.closing_jobs(trap, "_job_finish_closing")
            trap.perform_enqueued_jobs()  # the three ranges (the first a third time), then the last job
            self.assertEndedCash()
            messages = len(self.cycle.message_ids)
            self.assertEqual(finish[0].perform(), "already ended")
            self.assertEqual(ranges[1].perform(), "closing not under way (cycle ended): nothing done")
        self.env.invalidate_all()
        self.assertEqual(len(self.cycle.message_ids), messages, "no second summary")
        self.assertEndedCash()

    def assertEndedCash(self):
        self.env.invalidate_all()
        self.assertEqual(
            (self.cycle.state, self.cycle.locked, self.cycle.end_requested), ("ended", False, False)
        )
        self.assertEqual(self.cycle.sudo()._count_open_entitlements(), 0)
        self.assertEqual(
            self.states(self.cycle),
            {
                "House A1": "redeemed",
                "House A2": "partially_redeemed",
                "House B1": "expired",
                "House B2": "expired",
            },
        )

    def test_closing_job_failing_for_good_unlocks_with_a_message(self):
        """The last job fails (here: the rice became lot-tracked during the cycle, so the
        handed-out rice cannot be posted without lots): its work is rolled back, the
        cycle unlocked and not ended, what the range jobs settled stays settled, and the
        chatter says what to do; End cycle again then finishes."""
        self.jobs_from_now()
        self.inkind_cycle.with_user(self.approver).mark_ended()
        jobs = self.env["queue.job"].search(
            [
                ("model_name", "=", "g2p.cycle"),
                ("method_name", "in", ("_job_close_range", "_job_finish_closing")),
            ],
            order="id",
        )
        # the scheduled action leaves a cycle to its queued closing jobs
        self.Cycle._cron_close_ended_cycles()
        self.assertEqual(self.env["queue.job"].search_count([("method_name", "like", "clos")]), len(jobs))
        self.assertTrue(self.inkind_cycle.locked)
        ranges = jobs.filtered(lambda j: j.method_name == "_job_close_range")
        finish = jobs - ranges
        self.assertEqual((len(ranges), len(finish)), (2, 1))  # a1, b1; the last job
        for job in ranges:
            self.assertIsNone(run_job_as_the_runner_does(self.env, job))
        self.assertEqual((self.ink_a1.state, self.ink_b1.state), ("partially_redeemed", "expired"))
        self.rice.sudo().tracking = "lot"
        error = run_job_as_the_runner_does(self.env, finish)
        self.assertRegex(str(error), r"(?i)lot")
        self.assertEqual(finish.state, "failed")
        self.env.invalidate_all()
        cycle = self.inkind_cycle
        self.assertEqual(cycle.state, "approved")
        self.assertFalse(cycle.locked or cycle.end_requested)
        self.assertEqual(self.ink_a1.state, "partially_redeemed", "the range job's settlement stays")
        body = cycle.message_ids[0].body
        self.assertIn("A closing job failed", body)
        self.assertIn("End the cycle again", body)
        # the operator puts the product back and ends the cycle again: it finishes
        self.rice.sudo().tracking = "none"
        with trap_jobs() as trap:
            cycle.with_user(self.approver).mark_ended()
            trap.perform_enqueued_jobs()
        self.assertSettled(cycle)

    def test_closing_cron_path_leaves_no_reservation(self):
        yesterday = self.today - timedelta(days=1)
        self.inkind_cycle.sudo().write({"start_date": yesterday - timedelta(days=29), "end_date": yesterday})
        self.cron.method_direct_trigger()
        self.assertEqual(
            self.states(self.inkind_cycle), {"House A1": "partially_redeemed", "House B1": "expired"}
        )
        self.assertSettled(self.inkind_cycle)

    def test_cancel_cycle_leaves_no_reservation(self):
        """Cancelling a cycle where something was handed out is refused (its
        entitlements would keep their stock); without handouts everything is released."""
        message = self.assertRefused(
            "has_redemptions", self.inkind_cycle.with_user(self.approver).mark_cancelled
        )
        self.assertIn("End the cycle instead", message)
        self.assertEqual(self.inkind_cycle.state, "approved")
        self.api_a.reverse("end-rice-a1", self.point_a.id, "handed to the wrong person")
        self.inkind_cycle.with_user(self.approver).mark_cancelled()
        self.env.invalidate_all()
        self.assertEqual(self.inkind_cycle.state, "cancelled")
        self.assertEqual(set(self.states(self.inkind_cycle).values()), {"cancelled"})
        self.assertFalse(self.open_moves(self.inkind_cycle))
        rice = self.rice.with_context(warehouse=self.warehouse.id)
        self.assertAlmostEqual(rice.virtual_available, rice.qty_available)

    def test_without_the_closing_end_cycle_is_refused(self):
        """g2p_programs_ext alone cannot settle: its own ``_settle_and_end`` (the one that
        runs when spp_auto_update_entitlements is not installed; this database has it, so
        the base layer's method is called directly) refuses ``[open_entitlements]``
        naming the count and the closing, and changes nothing."""
        cycle = self.cycle.with_user(self.approver)
        cycle._transition("mark_ended")
        message = self.assertRefused("open_entitlements", BaseCycle._settle_and_end, cycle)
        self.assertIn("3 approved or transferred entitlements", message)
        self.assertIn("Close ended cycles", message)
        self.assertEqual(self.cycle.state, "approved")

    def test_without_the_closing_a_settled_cycle_ends_and_keeps_no_stock(self):
        """g2p_programs_ext's own End cycle, when nothing is open any more: the addons'
        settlement work still runs (in-kind: what was handed out is posted), so even the
        rice redeemed in full does not stay reserved."""
        self.api_a.redeem(self.ink_a1.code, 6.0, self.point_a.id, "end-rice-a1-rest")
        self.ink_b1.with_user(self.manager).action_cancel()
        self.assertEqual(self.ink_a1.state, "redeemed")
        self.assertTrue(
            self.open_moves(self.inkind_cycle), "the 10 kg handed out are still reserved, not posted"
        )
        cycle = self.inkind_cycle.with_user(self.approver)
        cycle._transition("mark_ended")
        BaseCycle._settle_and_end(cycle)
        self.assertEqual(self.inkind_cycle.state, "ended")
        self.assertFalse(self.open_moves(self.inkind_cycle))
