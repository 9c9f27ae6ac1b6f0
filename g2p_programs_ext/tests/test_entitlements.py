import itertools
from datetime import timedelta

import psycopg2

from odoo.addons.g2p_programs_ext import ern
from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.addons.queue_job.tests.common import trap_jobs
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..models.g2p_entitlement_base import ENTITLEMENT_STATES, ENTITLEMENT_TRANSITIONS
from .common import G2PCommon, run_job_as_the_runner_does


class EntitlementCommon(G2PCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # OpenSPP's entitlement-formula guide: a household gets 30.00, plus 10.00 per
        # child under 5, plus 5.00 per member aged 60 or over, capped.
        cls.h_kids, _m = cls.make_household(
            "Kids", [{"birthdate": cls.born(30)}, {"birthdate": cls.born(2)}, {"birthdate": cls.born(4)}]
        )
        cls.h_old, _m = cls.make_household("Old", [{"birthdate": cls.born(65)}, {"birthdate": cls.born(70)}])
        cls.h_plain, _m = cls.make_household("Plain", [{"birthdate": cls.born(35)}])
        cls.h_many, _m = cls.make_household(
            "Many", [{"birthdate": cls.born(30)}] + [{"birthdate": cls.born(1)} for _i in range(8)]
        )
        cls.households = cls.h_kids | cls.h_old | cls.h_plain | cls.h_many
        cls.validation_group = cls.env["res.groups"].create({"name": "Cash validators"})
        cls.validator.groups_id = [(4, cls.validation_group.id)]
        cls.program = (
            cls.env["g2p.program"]
            .with_user(cls.manager)
            .create({"name": "Cash top-up", "eligibility_domain": "[('id', 'in', %s)]" % cls.households.ids})
        )
        cls.manager_cash = (
            cls.env["g2p.program.entitlement.manager.cash"]
            .with_user(cls.manager)
            .create(
                {
                    "program_id": cls.program.id,
                    "validation_group_id": cls.validation_group.id,
                    "max_amount": 100.0,
                    "transfer_fee": 1.5,
                    "item_ids": [
                        (0, 0, {"amount": 30.0}),
                        (
                            0,
                            0,
                            {"amount": 0.0, "formula": "10.0 * double(size(members.filter(m, m.age < 5)))"},
                        ),
                        (
                            0,
                            0,
                            {"amount": 0.0, "formula": "5.0 * double(size(members.filter(m, m.age >= 60)))"},
                        ),
                    ],
                }
            )
        )
        cls.program.with_user(cls.officer).enroll_eligible_registrants()

    def new_cycle(self):
        return self.env["g2p.cycle"].browse(self.program.with_user(self.officer).create_new_cycle())

    def approved_cycle(self):
        cycle = self.new_cycle()
        cycle.with_user(self.officer).prepare_entitlement()
        cycle.with_user(self.officer).to_approve()
        cycle.with_user(self.approver).approve()
        return cycle


@tagged("post_install", "-at_install")
class TestCashGeneration(EntitlementCommon):
    def test_guide_amounts(self):
        cycle = self.new_cycle()
        self.assertEqual(cycle.with_user(self.officer).prepare_entitlement(), 4)
        amounts = {e.partner_id: e.initial_amount for e in cycle.entitlement_ids}
        self.assertEqual(amounts[self.h_kids], 50.0)  # 30 + 2 x 10
        self.assertEqual(amounts[self.h_old], 40.0)  # 30 + 2 x 5
        self.assertEqual(amounts[self.h_plain], 30.0)
        self.assertEqual(amounts[self.h_many], 100.0)  # 30 + 8 x 10 = 110, capped at 100
        self.assertEqual(set(cycle.entitlement_ids.mapped("transfer_fee")), {1.5})
        self.assertEqual(set(cycle.entitlement_ids.mapped("state")), {"draft"})
        self.assertEqual(cycle.entitlement_ids[0].valid_until, cycle.end_date)

    def test_individual_formula(self):
        person = self.Partner.create({"name": "P", "is_registrant": True, "has_disability": True})
        other = self.Partner.create({"name": "Q", "is_registrant": True})
        program = (
            self.env["g2p.program"]
            .with_user(self.manager)
            .create(
                {
                    "name": "Disability",
                    "target_type": "individual",
                    "eligibility_domain": "[('id', 'in', %s)]" % [person.id, other.id],
                }
            )
        )
        self.env["g2p.program.entitlement.manager.cash"].with_user(self.manager).create(
            {"program_id": program.id, "item_ids": [(0, 0, {"formula": "me.has_disability ? 50.0 : 30.0"})]}
        )
        program.with_user(self.officer).enroll_eligible_registrants()
        cycle = self.env["g2p.cycle"].browse(program.with_user(self.officer).create_new_cycle())
        cycle.with_user(self.officer).prepare_entitlement()
        amounts = {e.partner_id: e.initial_amount for e in cycle.entitlement_ids}
        self.assertEqual(amounts, {person: 50.0, other: 30.0})

    def test_multiplier_with_cap_and_condition(self):
        self.manager_cash.item_ids.unlink()
        self.manager_cash.write(
            {
                "max_amount": 0,
                "item_ids": [
                    (0, 0, {"amount": 10.0, "multiplier_field": "household_size", "max_multiplier": 5}),
                    (0, 0, {"amount": 7.0, "condition": "[('household_size', '=', 1)]"}),
                ],
            }
        )
        cycle = self.new_cycle()
        cycle.with_user(self.officer).prepare_entitlement()
        amounts = {e.partner_id: e.initial_amount for e in cycle.entitlement_ids}
        self.assertEqual(amounts[self.h_kids], 30.0)
        self.assertEqual(amounts[self.h_plain], 17.0)
        self.assertEqual(amounts[self.h_many], 50.0)  # 9 members, capped at 5

    def test_generation_is_idempotent(self):
        cycle = self.new_cycle()
        self.assertEqual(cycle.with_user(self.officer).prepare_entitlement(), 4)
        self.assertEqual(cycle.with_user(self.officer).prepare_entitlement(), 0)
        self.assertEqual(len(cycle.entitlement_ids), 4)

    def test_formula_errors_skip_and_count(self):
        self.manager_cash.item_ids.unlink()
        # a string for some (refused: not a number), a negative for others, an error for one
        self.manager_cash.item_ids = [
            (0, 0, {"formula": "me.household_size == 1 ? -5.0 : (me.household_size == 2 ? 20.0 : me.nope)"})
        ]
        cycle = self.new_cycle()
        self.assertEqual(cycle.with_user(self.officer).prepare_entitlement(), 1)
        self.assertEqual(cycle.entitlement_ids.partner_id, self.h_old)
        self.assertIn("3 skipped", cycle.message_ids[0].body)

    def test_bad_items_refused_at_save(self):
        Item = self.env["g2p.program.entitlement.manager.cash.item"].with_user(self.manager)
        with self.assertRaisesRegex(ValidationError, r"\[negative_amount\]"):
            Item.create({"manager_id": self.manager_cash.id, "amount": -1})
        with self.assertRaisesRegex(ValidationError, r"\[invalid_expression\]"):
            Item.create({"manager_id": self.manager_cash.id, "formula": "me.age *"})
        with self.assertRaisesRegex(ValidationError, r"\[bad_multiplier_field\].*name"):
            Item.create({"manager_id": self.manager_cash.id, "amount": 1, "multiplier_field": "name"})
        with self.assertRaisesRegex(ValidationError, r"\[invalid_domain\]"):
            Item.create({"manager_id": self.manager_cash.id, "amount": 1, "condition": "[('nope', '=', 1)]"})

    def test_async_generation_equals_sync(self):
        sync_cycle = self.new_cycle()
        sync_cycle.with_user(self.officer).prepare_entitlement()
        expected = {(e.partner_id.id, e.initial_amount) for e in sync_cycle.entitlement_ids}
        sync_cycle.with_user(self.officer).to_approve()
        cycle = self.new_cycle()
        self.env["ir.config_parameter"].sudo().set_param("g2p_programs_ext.async_threshold", "2")
        with trap_jobs() as trap:
            self.assertEqual(cycle.with_user(self.officer).prepare_entitlement(), 0)
            self.assertTrue(cycle.locked)
            with self.assertRaisesRegex(UserError, r"\[locked\]"):
                cycle.with_user(self.officer).prepare_entitlement()
            trap.perform_enqueued_jobs()
        self.assertFalse(cycle.locked)
        self.assertEqual({(e.partner_id.id, e.initial_amount) for e in cycle.entitlement_ids}, expected)

    def test_failed_job_unlocks_the_cycle(self):
        cycle = self.new_cycle()
        self.env["ir.config_parameter"].sudo().set_param("g2p_programs_ext.async_threshold", "2")
        cycle.with_user(self.officer).prepare_entitlement()  # jobs stored, not run
        self.assertTrue(cycle.locked)
        jobs = self.env["queue.job"].search([("model_name", "=", "g2p.cycle")])
        job = jobs.filtered(lambda j: j.record_ids == cycle.ids)[:1]
        self.assertTrue(job)
        job.write({"state": "failed", "exc_info": "boom"})
        self.assertFalse(cycle.locked)
        self.assertIn("background job failed", cycle.message_ids[0].body)


@tagged("post_install", "-at_install")
class TestApproval(EntitlementCommon):
    def test_approval_needs_an_approved_cycle(self):
        cycle = self.new_cycle()
        cycle.with_user(self.officer).prepare_entitlement()
        cycle.with_user(self.officer).to_approve()
        entitlements = cycle.entitlement_ids.with_user(self.validator)
        self.assertEqual(set(entitlements.mapped("state")), {"pending_validation"})
        with self.assertRaisesRegex(UserError, r"\[cycle_not_approved\]"):
            entitlements.approve_entitlement()
        self.assertEqual(set(entitlements.mapped("state")), {"pending_validation"})

    def test_validation_group_enforced(self):
        cycle = self.approved_cycle()
        outsider = mail_new_test_user(self.env, login="v2", groups="g2p_programs_ext.group_program_validator")
        with self.assertRaisesRegex(AccessError, r"\[not_in_validation_group\]"):
            cycle.entitlement_ids.with_user(outsider).approve_entitlement()
        with self.assertRaises(AccessError):
            cycle.entitlement_ids.with_user(self.officer).approve_entitlement()
        self.assertEqual(cycle.with_user(outsider).validate_entitlement(), 0)
        self.assertEqual(cycle.with_user(self.validator).validate_entitlement(), 4)
        approved = cycle.entitlement_ids
        self.assertEqual(set(approved.mapped("state")), {"approved"})
        self.assertEqual(approved.approved_by_id, self.validator)
        self.assertTrue(all(approved.mapped("date_approved")))
        self.assertTrue(all(ern.is_valid(code) for code in approved.mapped("code")))
        self.assertEqual(len(set(approved.mapped("code"))), 4)

    def test_empty_validation_group_refused(self):
        self.manager_cash.validation_group_id = False
        cycle = self.approved_cycle()
        with self.assertRaisesRegex(UserError, r"\[no_validation_group\].*program manager sets one"):
            cycle.entitlement_ids.with_user(self.validator).approve_entitlement()

    def test_batch_refused_whole(self):
        cycle = self.approved_cycle()
        entitlements = cycle.entitlement_ids.sorted("id")
        entitlements[0].with_user(self.validator).action_reject("declined", "moved away")
        with self.assertRaisesRegex(UserError, r"\[wrong_state\].*Rejected"):
            entitlements.with_user(self.validator).approve_entitlement()
        self.assertEqual(set(entitlements[1:].mapped("state")), {"pending_validation"})
        self.assertFalse(any(entitlements.mapped("code")))

    def test_reject_reasons_and_wizard(self):
        cycle = self.approved_cycle()
        entitlements = cycle.entitlement_ids.sorted("id")
        wizard = (
            self.env["g2p.entitlement.reject.wizard"]
            .with_user(self.validator)
            .with_context(active_model="g2p.entitlement", active_ids=entitlements[:2].ids)
            .create({"rejection_reason": "account_missing", "rejection_note": "no e-wallet"})
        )
        wizard.action_confirm()
        self.assertEqual(set(entitlements[:2].mapped("rejection_reason")), {"account_missing"})
        self.assertEqual(set(entitlements[:2].mapped("rejection_note")), {"no e-wallet"})
        with self.assertRaisesRegex(UserError, r"\[bad_reason\]"):
            entitlements[2].with_user(self.validator).action_reject("because")
        entitlements[:2].with_user(self.manager).action_reset_to_draft()
        self.assertEqual(set(entitlements[:2].mapped("state")), {"draft"})
        self.assertFalse(any(entitlements[:2].mapped("rejection_reason")))

    def test_expiry(self):
        cycle = self.approved_cycle()
        cycle.with_user(self.validator).validate_entitlement()
        entitlements = cycle.entitlement_ids.sorted("id")
        entitlements[0].valid_until = self.today - timedelta(days=1)
        # An entitlement partly redeemed before it lapsed stays approved for the closing:
        # tested with a real redemption in spp_entitlement_transactions (TestRedeem).
        self.env["g2p.entitlement"]._cron_expire()
        self.assertEqual(entitlements[0].state, "expired")
        self.assertEqual(set(entitlements[1:].mapped("state")), {"approved"}, "still valid")


@tagged("post_install", "-at_install")
class TestTransitionsAndErn(EntitlementCommon):
    def test_every_transition_allowed_and_refused(self):
        """Table-driven: for each action and each state, allowed exactly when listed."""
        cycle = self.new_cycle()
        cycle.with_user(self.officer).prepare_entitlement()
        entitlement = cycle.entitlement_ids[0]
        states = [s for s, _label in ENTITLEMENT_STATES]
        for action, (sources, target) in ENTITLEMENT_TRANSITIONS.items():
            for state in states:
                entitlement.state = state
                with self.subTest(action=action, state=state):
                    if state in sources:
                        self.assertEqual(entitlement._check_transition(action), target)
                    else:
                        with self.assertRaisesRegex(UserError, r"\[wrong_state\]"):
                            entitlement._check_transition(action)

    @mute_logger("odoo.sql_db")
    def test_code_is_unique_in_database(self):
        cycle = self.approved_cycle()
        cycle.with_user(self.validator).validate_entitlement()
        a, b = cycle.entitlement_ids[:2]
        with self.assertRaises(psycopg2.IntegrityError), self.env.cr.savepoint():
            self.env.cr.execute("UPDATE g2p_entitlement SET code = %s WHERE id = %s", [a.code, b.id])

    def test_check_character_catches_single_errors_and_adjacent_swaps(self):
        """Exhaustive proof over the 31-character alphabet: for every position, every
        value there and every other character, the changed code is refused; for every two
        adjacent positions and every ordered pair of different values, the swapped code
        is refused. The check is linear (changing one character changes the weighted sum
        by the same amount whatever the others are), so codes built with those values at
        those positions and any others (here: one character solved for validity) stand
        for every code."""
        alphabet = ern.ALPHABET
        length = ern.BODY_LENGTH + 1
        weights = ern.weights()
        self.assertEqual(len(set(weights)), length, "distinct weights")
        self.assertNotIn(0, weights)

        def complete(fixed):
            """A valid code with ``fixed`` {position: character}, other positions filled."""
            free = next(i for i in range(length) if i not in fixed)
            values = [alphabet.index(fixed.get(i, "2")) for i in range(length)]
            values[free] = 0
            rest = sum(w * v for w, v in zip(weights, values, strict=True))
            values[free] = (1 - rest) * pow(weights[free], -1, ern.MODULUS) % ern.MODULUS
            code = "".join(alphabet[v] for v in values)
            self.assertTrue(ern.is_valid(code), code)
            return code

        singles = swaps = 0
        for pos, a in itertools.product(range(length), alphabet):
            code = complete({pos: a})
            for b in ern.ISO7064_CHARSET:  # the alphabet and what may be mistyped for it
                if b != a:
                    wrong = code[:pos] + b + code[pos + 1 :]
                    self.assertFalse(ern.is_valid(wrong), wrong)
                    singles += 1
        for pos, (a, b) in itertools.product(range(length - 1), itertools.permutations(alphabet, 2)):
            code = complete({pos: a, pos + 1: b})
            swapped = code[:pos] + b + a + code[pos + 2 :]
            self.assertFalse(ern.is_valid(swapped), swapped)
            swaps += 1
        self.assertEqual((singles, swaps), (9 * 31 * 36, 8 * 31 * 30))

    def test_generated_codes_use_the_alphabet_only(self):
        for _i in range(2000):
            code = ern.generate()
            self.assertTrue(set(code) <= set(ern.ALPHABET), code)
            self.assertTrue(ern.is_valid(code))
            self.assertTrue(ern.is_valid(ern.display(code).lower()))

    def test_legacy_codes_are_recognized_apart(self):
        """Codes printed before the 31-character check (ISO 7064 MOD 37-2) are recognized
        as legacy; their check character may be outside the alphabet (e.g. ``*``)."""
        self.assertEqual(ern.legacy_check_character("7KQ2MX4C"), "*")
        self.assertTrue(ern.is_legacy_valid("7KQ2-MX4C-*"))
        self.assertFalse(ern.is_valid("7KQ2MX4C*"))
        for _i in range(200):
            body = ern.generate()[:-1]
            legacy = body + ern.legacy_check_character(body)
            self.assertTrue(ern.is_legacy_valid(legacy))
            for other in ern.ISO7064_CHARSET:
                if other != legacy[-1]:
                    self.assertFalse(ern.is_legacy_valid(body + other))


@tagged("post_install", "-at_install")
class TestApprovalJobs(EntitlementCommon):
    """Approval above the async threshold: every check on the whole cycle first, then
    id-sliced queue_job jobs, the cycle locked until the last one (issue 24, item 1).
    Amounts by beneficiary (id order): 50, 40, 30, 100."""

    def approve_as_jobs_from_now(self):
        """4 entitlements > threshold 2: jobs of 2 entitlements (set after the cycle is
        prepared, so that only the approval goes to jobs)."""
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("g2p_programs_ext.async_threshold", "2")
        params.set_param("g2p_programs_ext.job_batch_size", "2")

    def test_async_approval_equals_sync(self):
        sync_cycle = self.approved_cycle()
        self.assertEqual(sync_cycle.with_user(self.validator).validate_entitlement(), 4)
        cycle = self.approved_cycle()
        self.approve_as_jobs_from_now()
        as_validator = cycle.with_user(self.validator)
        with trap_jobs() as trap:
            self.assertEqual(as_validator.validate_entitlement(), 0)
            trap.assert_jobs_count(2, only=cycle._job_approve_entitlements)
            trap.assert_jobs_count(1, only=cycle._job_unlock)
            self.assertTrue(cycle.locked)
            self.assertEqual(set(cycle.entitlement_ids.mapped("state")), {"pending_validation"})
            with self.assertRaisesRegex(UserError, r"^\[locked\]"):
                as_validator.validate_entitlement()
            with self.assertRaisesRegex(UserError, r"^\[locked\]"):
                cycle.entitlement_ids.with_user(self.validator).approve_entitlement()
            trap.perform_enqueued_jobs()
        self.assertFalse(cycle.locked)
        approved = cycle.entitlement_ids
        self.assertEqual(set(approved.mapped("state")), {"approved"})
        self.assertEqual(approved.approved_by_id, self.validator)
        self.assertTrue(all(ern.is_valid(code) for code in approved.mapped("code")))
        self.assertEqual(len(set(approved.mapped("code"))), 4)
        self.assertEqual(
            sorted(approved.mapped("initial_amount")),
            sorted(sync_cycle.entitlement_ids.mapped("initial_amount")),
        )
        self.assertIn("4 entitlements approved by", cycle.message_ids[0].body)

    def test_approval_job_run_twice_changes_nothing_twice(self):
        cycle = self.approved_cycle()
        ids = cycle.entitlement_ids.sorted("id").ids
        self.approve_as_jobs_from_now()
        with trap_jobs() as trap:
            cycle.with_user(self.validator).validate_entitlement()
            # the first slice's job, run twice (retried after its answer was lost)
            first = min(
                (j for j in trap.enqueued_jobs if j.method_name == "_job_approve_entitlements"),
                key=lambda j: j.args[1],
            )
            self.assertEqual(first.args, ("g2p.entitlement", ids[0], ids[1]))
            self.assertEqual(first.perform(), "2 entitlements approved")
            done = cycle.entitlement_ids.filtered(lambda e: e.state == "approved")
            self.assertEqual(sorted(done.ids), ids[:2])
            before = [(e.code, e.date_approved, e.write_date) for e in done]
            self.assertEqual(first.perform(), "nothing left to approve")
            done.invalidate_recordset()
            self.assertEqual([(e.code, e.date_approved, e.write_date) for e in done], before)
            trap.perform_enqueued_jobs()  # every job, the first once more
        done.invalidate_recordset()
        self.assertEqual(set(cycle.entitlement_ids.mapped("state")), {"approved"})
        self.assertEqual([(e.code, e.date_approved, e.write_date) for e in done], before)
        self.assertFalse(cycle.locked)

    def test_over_budget_refused_before_any_job(self):
        cycle = self.approved_cycle()
        cycle.with_user(self.manager).budget_amount = 150.0  # 220 pending
        self.approve_as_jobs_from_now()
        with trap_jobs() as trap:
            with self.assertRaisesRegex(UserError, r"^\[over_budget\] .*cycle %s" % cycle.name):
                cycle.with_user(self.validator).validate_entitlement()
            trap.assert_jobs_count(0)
        self.assertFalse(cycle.locked)
        self.assertEqual(set(cycle.entitlement_ids.mapped("state")), {"pending_validation"})

    def test_segregation_refused_before_any_job(self):
        cycle = self.approved_cycle()
        # the officer who submitted the entitlements becomes a validator of them
        self.officer.groups_id = [
            (4, self.env.ref("g2p_programs_ext.group_program_validator").id),
            (4, self.validation_group.id),
        ]
        self.approve_as_jobs_from_now()
        with trap_jobs() as trap:
            with self.assertRaisesRegex(UserError, r"^\[same_user\]"):
                cycle.with_user(self.officer).validate_entitlement()
            trap.assert_jobs_count(0)
        self.assertFalse(cycle.locked)

    def test_failed_approval_job_unlocks_the_cycle_with_what_to_do(self):
        cycle = self.approved_cycle()
        self.approve_as_jobs_from_now()
        cycle.with_user(self.validator).validate_entitlement()  # jobs stored, not run
        self.assertTrue(cycle.locked)
        jobs = self.env["queue.job"].search(
            [("model_name", "=", "g2p.cycle"), ("method_name", "=", "_job_approve_entitlements")], order="id"
        )
        self.assertEqual(len(jobs), 2)
        # a program manager lowers the cycle's budget meanwhile: the first slice (50 + 40)
        # no longer fits, its job refuses, for good
        cycle.with_user(self.manager).budget_amount = 80.0
        error = run_job_as_the_runner_does(self.env, jobs[0])
        self.assertRegex(str(error), r"^\[over_budget\]")
        self.assertEqual(jobs[0].state, "failed")
        cycle.invalidate_recordset()
        self.assertFalse(cycle.locked)
        message = cycle.message_ids[0].body
        self.assertIn("background job failed", message)
        self.assertIn("run the action again", message)
        self.assertEqual(set(cycle.entitlement_ids.mapped("state")), {"pending_validation"})
        # the budget raised, the action again approves everything
        cycle.with_user(self.manager).budget_amount = 500.0
        with trap_jobs() as trap:
            cycle.with_user(self.validator).validate_entitlement()
            trap.perform_enqueued_jobs()
        self.assertEqual(set(cycle.entitlement_ids.mapped("state")), {"approved"})
        self.assertFalse(cycle.locked)
