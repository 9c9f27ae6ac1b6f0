"""In-kind approval above the async threshold (issue 24, item 1): the stock of the whole
cycle is checked first (a shortage refuses everything before any job), then the
reservation and approval run in id-sliced queue_job jobs, the cycle locked."""

from odoo.addons.g2p_programs_ext.tests.common import run_job_as_the_runner_does
from odoo.addons.queue_job.tests.common import trap_jobs
from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import InkindCommon


@tagged("post_install", "-at_install")
class TestApprovalJobs(InkindCommon):
    def approve_as_jobs_from_now(self):
        """7 entitlements > threshold 2: jobs of 3 entitlements (3, 3, 1), set once the
        cycle is prepared so that only the approval goes to jobs."""
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("g2p_programs_ext.async_threshold", "2")
        params.set_param("g2p_programs_ext.job_batch_size", "3")

    def reserved(self, cycle):
        """{(warehouse, service point, product): reserved quantity} of the cycle's allocations."""
        return {
            (a.warehouse_id, a.service_point_id, a.product_id): round(a.quantity_reserved, 3)
            for a in cycle.sudo().inkind_allocation_ids
        }

    def test_jobs_reserve_as_the_synchronous_approval(self):
        sync_cycle = self.approved_cycle()
        expected = self.reserved(sync_cycle)
        self.assertEqual(len(expected), 6)
        cycle = self.pending_cycle()
        self.approve_as_jobs_from_now()
        with trap_jobs() as trap:
            self.assertEqual(cycle.with_user(self.validator).validate_entitlement(), 0)
            trap.assert_jobs_count(3, only=cycle._job_approve_entitlements)
            self.assertTrue(cycle.locked)
            self.assertFalse(self.delivery_moves(cycle), "nothing reserved before the jobs")
            trap.perform_enqueued_jobs()
        self.assertFalse(cycle.locked)
        self.assertEqual(set(cycle.inkind_entitlement_ids.mapped("state")), {"approved"})
        self.assertEqual(self.reserved(cycle), expected)
        moves = self.delivery_moves(cycle)
        self.assertEqual(len(moves), 6, "one move per allocation, its demand raised by each job")
        self.assertEqual(set(moves.mapped("state")), {"assigned"})

    def test_shortage_refuses_the_whole_cycle_before_any_job(self):
        self.add_stock(self.rice, self.wh_north, -95.0)  # 5 kg left, 10 kg needed
        cycle = self.pending_cycle()
        self.approve_as_jobs_from_now()
        with trap_jobs() as trap:
            with self.assertRaisesRegex(UserError, r"(?s)^\[out_of_stock\].*North Hub, Rice: needed 10.0 kg"):
                cycle.with_user(self.validator).validate_entitlement()
            trap.assert_jobs_count(0)
        self.assertFalse(cycle.locked)
        self.assertEqual(set(cycle.inkind_entitlement_ids.mapped("state")), {"pending_validation"})
        self.assertFalse(self.delivery_moves(cycle))

    def test_no_warehouse_and_shortage_checked_in_sql_as_in_the_request(self):
        """The whole-cycle checks above the threshold (summed in PostgreSQL) refuse what
        the per-entitlement checks refuse below it, with the same codes and figures."""
        self.add_stock(self.rice, self.wh_north, -95.0)
        below = self.pending_cycle()
        with self.assertRaisesRegex(
            UserError, r"(?s)^\[out_of_stock\].*North Hub, Rice: needed 10.0 kg"
        ) as sync:
            below.with_user(self.validator).validate_entitlement()
        cycle = self.pending_cycle()
        self.approve_as_jobs_from_now()
        with trap_jobs() as trap:
            with self.assertRaises(UserError) as jobs:
                cycle.with_user(self.validator).validate_entitlement()
            trap.assert_jobs_count(0)
        self.assertEqual(str(jobs.exception), str(sync.exception))
        self.assertFalse(cycle.locked)
        self.assertEqual(set(cycle.inkind_entitlement_ids.mapped("state")), {"pending_validation"})
        self.add_stock(self.rice, self.wh_north, 95.0)
        self.manager_inkind.warehouse_id = False
        self.env["ir.config_parameter"].sudo().set_param("g2p_programs_ext.async_threshold", "1000")
        without = self.pending_cycle()
        self.approve_as_jobs_from_now()
        with trap_jobs() as trap:
            with self.assertRaisesRegex(UserError, r"^\[no_warehouse\] .*\(and \d+ more\)"):
                without.with_user(self.validator).validate_entitlement()
            trap.assert_jobs_count(0)
        self.assertFalse(without.locked)
        self.assertEqual(set(without.inkind_entitlement_ids.mapped("state")), {"pending_validation"})

    def test_job_run_twice_reserves_once(self):
        expected = self.reserved(self.approved_cycle())
        cycle = self.pending_cycle()
        self.approve_as_jobs_from_now()
        with trap_jobs() as trap:
            cycle.with_user(self.validator).validate_entitlement()
            first = min(
                (j for j in trap.enqueued_jobs if j.method_name == "_job_approve_entitlements"),
                key=lambda j: j.args[1],
            )
            self.assertEqual(first.perform(), "3 entitlements approved")
            once = self.reserved(cycle)
            moves = self.delivery_moves(cycle)
            self.assertEqual(first.perform(), "nothing left to approve")
            self.assertEqual(self.reserved(cycle), once)
            self.assertEqual(self.delivery_moves(cycle), moves)
            trap.perform_enqueued_jobs()  # every job, the first once more
        self.assertEqual(self.reserved(cycle), expected)
        self.assertFalse(cycle.locked)

    def test_stock_taken_meanwhile_fails_the_job_and_unlocks(self):
        cycle = self.pending_cycle()
        self.approve_as_jobs_from_now()
        cycle.with_user(self.validator).validate_entitlement()  # jobs stored, not run
        jobs = self.env["queue.job"].search(
            [("model_name", "=", "g2p.cycle"), ("method_name", "=", "_job_approve_entitlements")], order="id"
        )
        self.assertEqual(len(jobs), 3)
        # the goods go elsewhere after the check: what is left (1 kg of rice, 0.5 L of oil
        # per warehouse) is less than any single entitlement, so whichever job runs fails
        for warehouse in self.wh_main | self.wh_north:
            self.add_stock(self.rice, warehouse, -99.0)
            self.add_stock(self.oil, warehouse, -19.5)
        error = run_job_as_the_runner_does(self.env, jobs[0])
        self.assertRegex(str(error), r"^\[out_of_stock\]")
        self.assertEqual(jobs[0].state, "failed")
        cycle.invalidate_recordset()
        self.assertFalse(cycle.locked)
        self.assertIn("background job failed", cycle.message_ids[0].body)
        self.assertIn("run the action again", cycle.message_ids[0].body)
        self.assertEqual(set(cycle.inkind_entitlement_ids.mapped("state")), {"pending_validation"})
        self.assertFalse(self.open_moves(cycle), "the failed job's reservation rolled back")

    def test_selection_above_the_threshold_is_approved_by_jobs(self):
        """*Action > Approve* on a list selection above the threshold: checked whole in
        the request, then jobs of 3 approve it (stock reserved as the synchronous
        approval does), the cycle locked until the last one; a job run twice approves
        nothing twice."""
        expected = self.reserved(self.approved_cycle())
        cycle = self.pending_cycle()
        self.approve_as_jobs_from_now()
        selection = cycle.inkind_entitlement_ids.with_user(self.validator)
        with trap_jobs() as trap:
            self.assertIs(selection.approve_entitlement(), True)
            approvals = sorted(
                (j for j in trap.enqueued_jobs if j.method_name == "_job_approve_selected"),
                key=lambda j: j.args[1][0],
            )  # stored in no particular order: sorted by their first id
            self.assertEqual([len(j.args[1]) for j in approvals], [3, 3, 1])
            trap.assert_jobs_count(1, only=cycle._job_unlock)
            self.assertTrue(cycle.locked)
            self.assertEqual(set(cycle.inkind_entitlement_ids.mapped("state")), {"pending_validation"})
            self.assertFalse(self.delivery_moves(cycle), "nothing reserved before the jobs")
            with self.assertRaisesRegex(UserError, r"^\[locked\]"):
                selection.approve_entitlement()
            self.assertEqual(approvals[0].perform(), "3 entitlements approved")
            once = self.reserved(cycle)
            self.assertEqual(approvals[0].perform(), "nothing left to approve")
            self.assertEqual(self.reserved(cycle), once)
            trap.perform_enqueued_jobs()
        self.assertFalse(cycle.locked)
        self.assertEqual(set(cycle.inkind_entitlement_ids.mapped("state")), {"approved"})
        self.assertEqual(self.reserved(cycle), expected)
        self.assertIn("7 selected In-kind entitlement approved by", cycle.message_ids[0].body)

    def test_selection_short_of_stock_is_refused_before_any_job(self):
        self.add_stock(self.rice, self.wh_north, -95.0)
        cycle = self.pending_cycle()
        self.approve_as_jobs_from_now()
        with trap_jobs() as trap:
            with self.assertRaisesRegex(UserError, r"^\[out_of_stock\]"):
                cycle.inkind_entitlement_ids.with_user(self.validator).approve_entitlement()
            trap.assert_jobs_count(0)
        self.assertFalse(cycle.locked)
