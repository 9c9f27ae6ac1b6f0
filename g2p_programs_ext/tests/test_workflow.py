"""The officer's entitlement workflow of OpenSPP's *Manage entitlements* and *Entitlements*
guides: submit, reset, correct, budgets and segregation of duties, as the roles do it."""

from datetime import timedelta

from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import tagged

from .test_entitlements import EntitlementCommon

# EntitlementCommon's amounts: h_kids 50, h_old 40, h_plain 30, h_many 100 (total 220)


@tagged("post_install", "-at_install")
class TestSubmit(EntitlementCommon):
    def test_guide_loop_in_an_approved_cycle(self):
        """Reject (account missing) -> reset to draft -> correct -> submit -> approve, each
        step by its role, in a cycle that stays approved."""
        cycle = self.approved_cycle()
        entitlement = cycle.entitlement_ids.filtered(lambda e: e.partner_id == self.h_plain)
        self.assertEqual(entitlement.submitted_by_id, self.officer)  # submitted with the cycle
        entitlement.with_user(self.validator).action_reject("account_missing", "no e-wallet yet")
        self.assertEqual(entitlement.state, "rejected")
        # the officer resets it (the guide gives Draft to the Program Officer) ...
        entitlement.with_user(self.officer).action_reset_to_draft()
        self.assertEqual(entitlement.state, "draft")
        self.assertFalse(
            entitlement.rejection_reason or entitlement.submitted_by_id or entitlement.date_submitted
        )
        # ... corrects it ...
        valid_until = cycle.end_date + timedelta(days=10)
        entitlement.with_user(self.officer).write(
            {"initial_amount": 35.0, "valid_until": valid_until, "note": "account opened, top-up agreed"}
        )
        self.assertEqual(entitlement.balance, 35.0)  # balances follow
        log = entitlement.correction_ids.sorted("field_name")
        self.assertEqual(log.mapped("field_name"), ["initial_amount", "note", "valid_until"])
        self.assertEqual(set(log.user_id), {self.officer})
        amount_row = log.filtered(lambda c: c.field_name == "initial_amount")
        self.assertEqual((amount_row.old_value, amount_row.new_value), ("30.0", "35.0"))
        self.assertEqual(log.filtered(lambda c: c.field_name == "valid_until").new_value, str(valid_until))
        self.assertIn("Corrected by", cycle.message_ids[0].body)
        # ... and submits it again, although the cycle is approved
        entitlement.with_user(self.officer).action_submit()
        self.assertEqual(entitlement.state, "pending_validation")
        self.assertEqual(entitlement.submitted_by_id, self.officer)
        self.assertTrue(entitlement.date_submitted)
        self.assertEqual(cycle.state, "approved")
        entitlement.with_user(self.validator).approve_entitlement()
        self.assertEqual(entitlement.state, "approved")
        self.assertTrue(entitlement.code)  # given on approval, as it had none
        self.assertEqual(entitlement.initial_amount, 35.0)

    def test_submit_needs_a_submitted_cycle_and_drafts(self):
        cycle = self.new_cycle()
        cycle.with_user(self.officer).prepare_entitlement()
        drafts = cycle.entitlement_ids
        with self.assertRaisesRegex(UserError, r"^\[wrong_cycle_state\] .*submitted with the cycle"):
            drafts.with_user(self.officer).action_submit()
        self.assertEqual(set(drafts.mapped("state")), {"draft"})
        cycle.with_user(self.officer).to_approve()
        pending = cycle.entitlement_ids.sorted("id")
        pending[0].with_user(self.officer).action_reset_to_draft()
        # a batch with one entitlement that is not a draft is refused whole
        with self.assertRaisesRegex(UserError, r"^\[wrong_state\]"):
            pending[:2].with_user(self.officer).action_submit()
        self.assertEqual(pending[0].state, "draft")
        with self.assertRaises(AccessError):
            pending[0].with_user(self.validator).action_submit()
        pending[0].with_user(self.officer).action_submit()  # a cycle to approve: allowed
        self.assertEqual(pending[0].state, "pending_validation")

    def test_list_action_submits_the_selection(self):
        cycle = self.approved_cycle()
        entitlements = cycle.entitlement_ids.sorted("id")[:2]
        entitlements.with_user(self.officer).action_reset_to_draft()
        action = self.env.ref("g2p_programs_ext.g2p_entitlement_action_submit")
        self.assertEqual(action.binding_model_id.model, "g2p.entitlement")
        action.with_user(self.officer).with_context(
            active_model="g2p.entitlement", active_ids=entitlements.ids
        ).run()
        self.assertEqual(set(entitlements.mapped("state")), {"pending_validation"})
        self.assertEqual(entitlements.submitted_by_id, self.officer)

    def test_officer_resets_pending_and_rejected_but_not_cancelled(self):
        cycle = self.approved_cycle()
        first, second, third, fourth = cycle.entitlement_ids.sorted("id")
        first.with_user(self.officer).action_reset_to_draft()  # pending
        second.with_user(self.validator).action_reject("other")
        second.with_user(self.officer).action_reset_to_draft()  # rejected
        third.with_user(self.manager).action_cancel()
        with self.assertRaisesRegex(AccessError, r"^\[not_allowed\] .*cancelled"):
            (fourth | third).with_user(self.officer).action_reset_to_draft()
        self.assertEqual((third.state, fourth.state), ("cancelled", "pending_validation"))
        third.with_user(self.manager).action_reset_to_draft()
        self.assertEqual({first.state, second.state, third.state}, {"draft"})
        self.assertFalse(third.cancelled_by_id)
        with self.assertRaises(AccessError):
            first.with_user(self.approver).action_reset_to_draft()

    def test_submit_automatically(self):
        self.manager_cash.with_user(self.manager).auto_submit = True
        cycle = self.new_cycle()
        self.assertEqual(cycle.with_user(self.officer).prepare_entitlement(), 4)
        entitlements = cycle.entitlement_ids
        self.assertEqual(set(entitlements.mapped("state")), {"pending_validation"})
        self.assertEqual(entitlements.submitted_by_id, self.officer)
        self.assertTrue(all(entitlements.mapped("date_submitted")))
        cycle.with_user(self.officer).to_approve()
        cycle.with_user(self.approver).approve()
        self.assertEqual(cycle.with_user(self.validator).validate_entitlement(), 4)


@tagged("post_install", "-at_install")
class TestCorrections(EntitlementCommon):
    def test_figures_change_in_draft_only(self):
        cycle = self.new_cycle()
        cycle.with_user(self.officer).prepare_entitlement()
        entitlements = cycle.entitlement_ids.sorted("id")
        entitlements.with_user(self.officer).write({"initial_amount": 25.0})
        self.assertEqual(set(entitlements.mapped("balance")), {25.0})
        self.assertEqual(len(entitlements.correction_ids), 4)
        summaries = cycle.message_ids.filtered(lambda m: "Corrected by" in (m.body or ""))
        self.assertEqual(len(summaries), 1, "one message for the batch")
        self.assertIn("(4 Cash entitlement)", summaries.body)
        # writing the same value again logs nothing
        entitlements[0].with_user(self.officer).write({"initial_amount": 25.0})
        self.assertEqual(len(entitlements.correction_ids), 4)
        cycle.with_user(self.officer).to_approve()
        # pending: officers may not touch it, managers not its figures
        with self.assertRaisesRegex(AccessError, r"^\[not_allowed\] .*not a draft"):
            entitlements[0].with_user(self.officer).write({"initial_amount": 20.0})
        with self.assertRaisesRegex(UserError, r"^\[use_actions\] .*not a draft"):
            entitlements[0].with_user(self.manager).write({"initial_amount": 20.0})
        self.assertEqual(entitlements[0].initial_amount, 25.0)
        # managers still move the validity past draft, logged too
        entitlements[0].with_user(self.manager).write({"valid_until": cycle.end_date + timedelta(days=5)})
        self.assertEqual(entitlements[0].correction_ids[:1].user_id, self.manager)

    def test_bad_corrections_refused_at_save(self):
        cycle = self.new_cycle()
        cycle.with_user(self.officer).prepare_entitlement()
        entitlement = cycle.entitlement_ids[0].with_user(self.officer)
        with self.assertRaisesRegex(ValidationError, r"^\[bad_amount\]"):
            entitlement.write({"initial_amount": -5.0})
        with self.assertRaisesRegex(ValidationError, r"^\[bad_validity\]"):
            entitlement.write({"valid_until": cycle.start_date - timedelta(days=1)})
        with self.assertRaisesRegex(ValidationError, r"^\[bad_value\]"):
            entitlement.write({"initial_amount": float("nan")})
        with self.assertRaisesRegex(AccessError, r"^\[not_allowed\] .*transfer_fee"):
            entitlement.write({"transfer_fee": 0.0})
        with self.assertRaisesRegex(AccessError, r"^\[not_allowed\]"):
            entitlement.write({"state": "approved"})
        self.assertFalse(entitlement.correction_ids)

    def test_log_is_read_only_for_everyone(self):
        cycle = self.new_cycle()
        cycle.with_user(self.officer).prepare_entitlement()
        entitlement = cycle.entitlement_ids[0]
        entitlement.with_user(self.officer).write({"note": "checked"})
        row = entitlement.correction_ids.with_user(self.manager)
        self.assertEqual(row.read(["new_value"])[0]["new_value"], "checked")
        with self.assertRaises(AccessError):
            row.write({"new_value": "forged"})
        with self.assertRaises(AccessError):
            row.unlink()


@tagged("post_install", "-at_install")
class TestSegregation(EntitlementCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # one person holding several roles: what segregation of duties is about
        cls.officer_validator = mail_new_test_user(
            cls.env,
            login="g2p_officer_validator",
            groups="g2p_programs_ext.group_program_officer,g2p_programs_ext.group_program_validator",
        )
        cls.approver_validator = mail_new_test_user(
            cls.env,
            login="g2p_approver_validator",
            groups="g2p_programs_ext.group_cycle_approver,g2p_programs_ext.group_program_validator",
        )
        (cls.officer_validator | cls.approver_validator).groups_id = [(4, cls.validation_group.id)]

    def test_submitter_cannot_approve(self):
        cycle = self.approved_cycle()
        entitlements = cycle.entitlement_ids.sorted("id")
        entitlements[0].with_user(self.officer).action_reset_to_draft()
        entitlements[0].with_user(self.officer_validator).action_submit()
        self.assertEqual(entitlements[0].submitted_by_id, self.officer_validator)
        with self.assertRaisesRegex(UserError, r"^\[same_user\] .*you submitted it"):
            entitlements.with_user(self.officer_validator).approve_entitlement()
        self.assertEqual(set(entitlements.mapped("state")), {"pending_validation"})
        entitlements.with_user(self.validator).approve_entitlement()
        self.assertEqual(set(entitlements.mapped("state")), {"approved"})

    def test_corrector_cannot_approve(self):
        cycle = self.new_cycle()
        cycle.with_user(self.officer).prepare_entitlement()
        entitlement = cycle.entitlement_ids[0]
        entitlement.with_user(self.officer_validator).write({"initial_amount": 12.0})
        cycle.with_user(self.officer).to_approve()
        cycle.with_user(self.approver).approve()
        with self.assertRaisesRegex(UserError, r"^\[same_user\] .*you corrected it"):
            entitlement.with_user(self.officer_validator).approve_entitlement()
        # the cycle's validation, which approves what the user may, is refused whole
        with self.assertRaisesRegex(UserError, r"^\[same_user\]"):
            cycle.with_user(self.officer_validator).validate_entitlement()
        self.assertEqual(set(cycle.entitlement_ids.mapped("state")), {"pending_validation"})

    def test_cycle_approver_cannot_validate_its_entitlements(self):
        cycle = self.new_cycle()
        cycle.with_user(self.officer).prepare_entitlement()
        cycle.with_user(self.officer).to_approve()
        cycle.with_user(self.approver_validator).approve()
        self.assertEqual(cycle.approved_by_id, self.approver_validator)
        with self.assertRaisesRegex(UserError, r"^\[same_user\] .*you approved its cycle"):
            cycle.with_user(self.approver_validator).validate_entitlement()
        self.assertEqual(cycle.with_user(self.validator).validate_entitlement(), 4)
        self.assertEqual(cycle.entitlement_ids.approved_by_id, self.validator)

    def test_option_off_and_jobs_exempt(self):
        cycle = self.approved_cycle()
        entitlements = cycle.entitlement_ids.sorted("id")
        entitlements[0].with_user(self.officer).action_reset_to_draft()
        entitlements[0].with_user(self.officer_validator).action_submit()
        # the suite's own code (env.su) is exempt; real users, admins included, are not
        admin = self.env.ref("base.user_admin")
        admin.groups_id = [(4, self.validation_group.id)]
        entitlements[1].with_user(admin).action_reset_to_draft()
        entitlements[1].with_user(admin).action_submit()
        with self.assertRaisesRegex(UserError, r"^\[same_user\]"):
            entitlements[1].with_user(admin).approve_entitlement()
        entitlements[1].with_user(admin).sudo().approve_entitlement()
        self.assertEqual(entitlements[1].state, "approved")
        self.manager_cash.with_user(self.manager).segregation_of_duties = False
        entitlements[0].with_user(self.officer_validator).approve_entitlement()
        self.assertEqual(entitlements[0].state, "approved")


@tagged("post_install", "-at_install")
class TestBudget(EntitlementCommon):
    def test_no_budget_no_check(self):
        cycle = self.approved_cycle()
        self.assertFalse(cycle.has_budget)
        self.assertEqual(cycle.pending_amount, 220.0)
        self.assertEqual(cycle.with_user(self.validator).validate_entitlement(), 4)
        cycle.invalidate_recordset()
        self.assertEqual(cycle.program_committed_amount, 220.0)

    def test_program_budget_refuses_approval_beyond_it_whole(self):
        self.program.with_user(self.manager).budget_amount = 200.0
        cycle = self.approved_cycle()
        as_validator = cycle.with_user(self.validator)
        self.assertEqual(
            (
                as_validator.program_budget_amount,
                as_validator.pending_amount,
                as_validator.budget_left_amount,
            ),
            (200.0, 220.0, 200.0),
        )
        self.assertTrue(as_validator.budget_exceeded)
        entitlements = cycle.entitlement_ids.sorted("initial_amount")  # 30, 40, 50, 100
        entitlements[3].with_user(self.validator).approve_entitlement()  # 100 of 200
        with self.assertRaisesRegex(
            UserError, r"^\[over_budget\] .*program Cash top-up.*200\.00.*100\.00.*120\.00.*20\.00 over"
        ):
            entitlements[:3].with_user(self.validator).approve_entitlement()
        self.assertEqual(set(entitlements[:3].mapped("state")), {"pending_validation"})
        self.assertFalse(any(entitlements[:3].mapped("code")))
        entitlements[1:3].with_user(self.validator).approve_entitlement()  # 100 + 90 = 190
        cycle.invalidate_recordset()
        self.assertEqual(cycle.with_user(self.validator).program_committed_amount, 190.0)
        self.assertEqual(cycle.with_user(self.validator).pending_amount, 30.0)
        with self.assertRaisesRegex(UserError, r"^\[over_budget\]"):
            cycle.with_user(self.validator).validate_entitlement()
        # redeemed ones stay committed; rejected ones free their share
        entitlements[3].with_user(self.validator).action_reject("declined")
        self.assertEqual(cycle.with_user(self.validator).validate_entitlement(), 1)

    def test_cycle_budget(self):
        self.program.with_user(self.manager).budget_amount = 1000.0
        cycle = self.approved_cycle()
        with self.assertRaises(AccessError):
            cycle.with_user(self.officer).budget_amount = 500.0
        cycle.with_user(self.manager).budget_amount = 150.0
        self.assertEqual(cycle.budget_ids.amount, 150.0)
        with self.assertRaisesRegex(UserError, r"^\[over_budget\] .*cycle %s" % cycle.name):
            cycle.with_user(self.validator).validate_entitlement()
        cycle.with_user(self.manager).budget_amount = 0.0  # no cycle budget any more
        self.assertFalse(cycle.budget_ids)
        self.assertEqual(cycle.with_user(self.validator).validate_entitlement(), 4)

    def test_budget_refused_at_save(self):
        with self.assertRaisesRegex(ValidationError, r"^\[bad_value\]"):
            self.program.with_user(self.manager).budget_amount = -1.0
        with self.assertRaises(AccessError):
            self.env["g2p.program.budget"].with_user(self.officer).create(
                {"program_id": self.program.id, "amount": 10.0}
            )
