from odoo.addons.queue_job.tests.common import trap_jobs
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import tagged

from .common import G2PCommon


@tagged("post_install", "-at_install")
class TestEligibilityAndEnrollment(G2PCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # h1: pregnant mother; h2: child under 5; h3: elderly only; h4: adults only
        cls.h1, _m = cls.make_household(
            "H1",
            [
                {"birthdate": cls.born(28), "gender": "female", "is_pregnant": True},
                {"birthdate": cls.born(30)},
            ],
        )
        cls.h2, _m = cls.make_household("H2", [{"birthdate": cls.born(33)}, {"birthdate": cls.born(2)}])
        cls.h3, _m = cls.make_household("H3", [{"birthdate": cls.born(70), "has_disability": True}])
        cls.h4, _m = cls.make_household("H4", [{"birthdate": cls.born(40)}, {"birthdate": cls.born(41)}])
        cls.households = cls.h1 | cls.h2 | cls.h3 | cls.h4
        # keep programs to our households only (the database may hold other registrants)
        cls.scope = "[('id', 'in', %s)]" % cls.households.ids

    def make_program(self, domain=None, expression=None, user=None):
        program = (
            self.env["g2p.program"]
            .with_user(self.manager)
            .create(
                {
                    "name": "Test program",
                    "target_type": "group",
                    "eligibility_domain": domain or self.scope,
                    "eligibility_expression": expression,
                    "cycle_duration": 30,
                }
            )
        )
        return program.with_user(user or self.officer)

    def enrolled(self, program):
        return program.program_membership_ids.filtered(lambda m: m.state == "enrolled").partner_id

    def test_domain_only(self):
        program = self.make_program(
            domain="[('id', 'in', %s), ('household_size', '>=', 2)]" % self.households.ids
        )
        self.assertEqual(program.enroll_eligible_registrants(), 3)
        self.assertEqual(self.enrolled(program), self.h1 | self.h2 | self.h4)

    def test_cel_over_members(self):
        program = self.make_program(
            expression="members.exists(m, m.is_pregnant) || members.exists(m, m.age < 5)"
        )
        self.assertEqual(program.eligible_preview_count, 2)  # domain and expression, in SQL
        self.assertEqual(
            program.eligibility_path, "evaluated in SQL, members' facts read from the household summary"
        )
        preview = program.action_preview_eligibility()["params"]["message"]
        self.assertTrue(preview.startswith("2 eligible of 4"), preview)
        self.assertEqual(program.enroll_eligible_registrants(), 2)
        self.assertEqual(self.enrolled(program), self.h1 | self.h2)

    def test_domain_and_cel_both_hold(self):
        program = self.make_program(
            domain="[('id', 'in', %s), ('household_size', '=', 1)]" % self.households.ids,
            expression="members.exists(m, m.has_disability || m.age < 5)",
        )
        program.enroll_eligible_registrants()
        self.assertEqual(self.enrolled(program), self.h3)

    def test_wrong_expression_refused_at_save(self):
        with self.assertRaisesRegex(ValidationError, r"\[invalid_expression\].*line 1, column"):
            self.make_program(expression="me.household_size >")

    def test_wrong_domain_refused_at_save(self):
        with self.assertRaisesRegex(ValidationError, r"\[invalid_domain\].*no_such_field"):
            self.make_program(domain="[('no_such_field', '=', 1)]")
        with self.assertRaisesRegex(ValidationError, r"\[invalid_domain\]"):
            self.make_program(domain="[('name', '=', ")

    def test_runtime_error_skips_and_counts(self):
        # int + double (no implicit conversion in CEL): fails on everyone whose expression
        # reaches the sum; the others (household_size < 2 is true) are evaluated normally.
        # (A comparison of an int and a double is allowed: heterogeneous ordering.)
        program = self.make_program(expression="me.household_size < 2 || me.household_size + 0.5 > 2.0")
        enrolled = program.enroll_eligible_registrants()
        self.assertEqual(enrolled, 1)
        self.assertEqual(self.enrolled(program), self.h3)
        self.assertIn("3 skipped", program.message_ids[0].body)

    def test_enrollment_is_idempotent_and_follows_eligibility(self):
        program = self.make_program(expression="members.exists(m, m.age < 5)")
        self.assertEqual(program.enroll_eligible_registrants(), 1)
        self.assertEqual(program.enroll_eligible_registrants(), 0)
        self.assertEqual(len(program.program_membership_ids), 1)
        # the child leaves: household 2 is no longer eligible
        self.h2.group_membership_ids.filtered(lambda m: m.individual_id.age < 5).end_date = self.today
        program.enroll_eligible_registrants()
        self.assertEqual(program.program_membership_ids.state, "not_eligible")

    def test_async_path_equals_sync_path(self):
        sync = self.make_program(expression="members.exists(m, m.age < 5 || m.is_pregnant)")
        sync.enroll_eligible_registrants()
        program = self.make_program(expression="members.exists(m, m.age < 5 || m.is_pregnant)")
        self.env["ir.config_parameter"].sudo().set_param("g2p_programs_ext.async_threshold", "1")
        with trap_jobs() as trap:
            self.assertEqual(program.enroll_eligible_registrants(), 0)
            self.assertTrue(program.locked)
            with self.assertRaisesRegex(UserError, r"\[locked\]"):
                program.enroll_eligible_registrants()
            trap.assert_jobs_count(2)  # one range (4 candidates < batch size) + finish
            trap.perform_enqueued_jobs()
        self.assertFalse(program.locked)
        self.assertEqual(self.enrolled(program), self.enrolled(sync))

    def test_roles(self):
        with self.assertRaises(AccessError):
            self.env["g2p.program"].with_user(self.officer).create({"name": "x"})
        program = self.make_program()
        with self.assertRaises(AccessError):
            program.with_user(self.validator).enroll_eligible_registrants()
        with self.assertRaises(AccessError):
            program.with_user(self.internal).read(["name"])
        self.assertTrue(program.with_user(self.approver).read(["name"]))


@tagged("post_install", "-at_install")
class TestCycles(G2PCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.h1, _m = cls.make_household("C1", [{"birthdate": cls.born(30)}])
        cls.h2, _m = cls.make_household("C2", [{"birthdate": cls.born(31)}])
        cls.program = (
            cls.env["g2p.program"]
            .with_user(cls.manager)
            .create(
                {
                    "name": "Cycles",
                    "eligibility_domain": "[('id', 'in', %s)]" % (cls.h1 | cls.h2).ids,
                    "start_date": "2026-01-01",
                    "cycle_duration": 31,
                }
            )
            .with_user(cls.officer)
        )
        cls.program.enroll_eligible_registrants()

    def test_cycle_dates_follow_each_other(self):
        Cycle = self.env["g2p.cycle"]
        first = Cycle.browse(self.program.create_new_cycle())
        self.assertEqual((str(first.start_date), str(first.end_date)), ("2026-01-01", "2026-01-31"))
        self.assertEqual(first.cycle_membership_ids.partner_id, self.h1 | self.h2)
        members = first.cycle_membership_ids  # written in SQL: every column as the ORM would
        self.assertEqual(set(members.mapped("state")), {"enrolled"})
        self.assertEqual((members.program_id, members.company_id), (self.program, first.company_id))
        self.assertEqual(members.create_uid, self.officer)
        # a second call while the newest cycle is a draft creates nothing
        self.assertEqual(self.program.create_new_cycle(), first.id)
        first.with_user(self.officer).to_approve()
        second = Cycle.browse(self.program.create_new_cycle())
        self.assertEqual((str(second.start_date), str(second.end_date)), ("2026-02-01", "2026-03-03"))
        self.assertEqual(second.sequence, 2)

    def test_transitions_in_order_only(self):
        cycle = self.env["g2p.cycle"].browse(self.program.create_new_cycle())
        with self.assertRaisesRegex(UserError, r"\[wrong_state\].*is Draft.*To approve"):
            cycle.with_user(self.approver).approve()
        with self.assertRaises(AccessError):
            cycle.with_user(self.officer).approve()
        cycle.with_user(self.officer).to_approve()
        cycle.with_user(self.approver).approve()
        self.assertEqual(cycle.state, "approved")
        cycle.with_user(self.approver).mark_distributed()
        cycle.with_user(self.approver).mark_ended()
        with self.assertRaisesRegex(UserError, r"\[wrong_state\].*is Ended"):
            cycle.with_user(self.approver).mark_cancelled()

    def test_async_copy_of_beneficiaries(self):
        self.env["ir.config_parameter"].sudo().set_param("g2p_programs_ext.async_threshold", "1")
        with trap_jobs() as trap:
            cycle = self.env["g2p.cycle"].browse(self.program.create_new_cycle())
            self.assertTrue(cycle.locked)
            trap.assert_jobs_count(2)
            trap.perform_enqueued_jobs()
        self.assertFalse(cycle.locked)
        self.assertEqual(cycle.cycle_membership_ids.partner_id, self.h1 | self.h2)
        # the copy job run again adds nothing
        cycle._job_copy_beneficiaries(None, None)
        self.assertEqual(len(cycle.cycle_membership_ids), 2)

    def test_async_submission(self):
        self.env["g2p.program.entitlement.manager.cash"].with_user(self.manager).create(
            {"program_id": self.program.id, "item_ids": [(0, 0, {"amount": 30.0})]}
        )
        cycle = self.env["g2p.cycle"].browse(self.program.create_new_cycle())
        cycle.with_user(self.officer).prepare_entitlement()
        self.assertEqual(len(cycle.entitlement_ids), 2)
        self.env["ir.config_parameter"].sudo().set_param("g2p_programs_ext.async_threshold", "1")
        with trap_jobs() as trap:
            cycle.with_user(self.officer).to_approve()
            self.assertTrue(cycle.locked)
            self.assertEqual(cycle.state, "draft")  # until the last job
            trap.assert_jobs_count(2)
            with self.assertRaisesRegex(UserError, r"\[locked\]"):
                cycle.with_user(self.approver).approve()
            trap.perform_enqueued_jobs()
        self.assertFalse(cycle.locked)
        self.assertEqual(cycle.state, "to_approve")
        self.assertEqual(set(cycle.entitlement_ids.mapped("state")), {"pending_validation"})
        self.assertEqual(cycle.entitlement_ids.submitted_by_id, self.officer)

    def test_async_cancellation(self):
        self.env["g2p.program.entitlement.manager.cash"].with_user(self.manager).create(
            {"program_id": self.program.id, "item_ids": [(0, 0, {"amount": 30.0})]}
        )
        cycle = self.env["g2p.cycle"].browse(self.program.create_new_cycle())
        cycle.with_user(self.officer).prepare_entitlement()
        cycle.with_user(self.officer).to_approve()
        self.env["ir.config_parameter"].sudo().set_param("g2p_programs_ext.async_threshold", "1")
        with trap_jobs() as trap:
            cycle.with_user(self.approver).mark_cancelled()
            self.assertTrue(cycle.locked)
            self.assertEqual(cycle.state, "to_approve")  # until the last job
            trap.assert_jobs_count(2)
            trap.perform_enqueued_jobs()
        self.assertFalse(cycle.locked)
        self.assertEqual(cycle.state, "cancelled")
        self.assertEqual(set(cycle.entitlement_ids.mapped("state")), {"cancelled"})
        self.assertEqual(cycle.entitlement_ids.cancelled_by_id, self.approver)
        # the cancel job run again changes nothing
        ids = cycle.entitlement_ids.sorted("id").ids
        self.assertEqual(
            cycle._job_entitlement_step("cancel", "g2p.entitlement", ids[0], ids[-1]),
            "0 entitlements cancelled",
        )
