"""The guide's loop on in-kind entitlements (reject -> reset -> correct -> submit ->
approve in an approved cycle), the stock it reserves, and budgets valued at total_amount."""

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from .common import InkindCommon


@tagged("post_install", "-at_install")
class TestInkindWorkflow(InkindCommon):
    def test_loop_reserves_the_corrected_quantity(self):
        cycle = self.approved_cycle()
        e = self.entitlement(cycle, self.h1, self.rice)  # 7,500 g from North Hub
        self.assertEqual(e.state, "approved")
        self.assertAlmostEqual(self.figures(self.rice, self.wh_north)["free"], 90.0)
        # rejected once approved: its reservation is released
        e.with_user(self.validator).action_reject("account_missing", "no collector")
        self.assertAlmostEqual(self.figures(self.rice, self.wh_north)["free"], 97.5)
        e.with_user(self.officer).action_reset_to_draft()
        self.assertFalse(e.code)
        # the officer corrects the quantity (in the item's unit, grams) and the validity
        with self.assertRaisesRegex(AccessError, r"^\[not_allowed\]"):
            e.with_user(self.officer).write({"unit_price": 0.0})
        e.with_user(self.officer).write({"quantity": 5000.0, "note": "one member moved out"})
        self.assertEqual(e.quantity_balance, 5000.0)
        self.assertAlmostEqual(e.total_amount, 10.0)  # 5 kg x 2.00
        change = e.correction_ids.filtered(lambda c: c.field_name == "quantity")
        self.assertEqual(
            (change.old_value, change.new_value, change.user_id), ("7500.0", "5000.0", self.officer)
        )
        e.with_user(self.officer).action_submit()
        self.assertEqual((e.state, e.submitted_by_id), ("pending_validation", self.officer))
        self.assertAlmostEqual(
            self.figures(self.rice, self.wh_north)["free"], 97.5, msg="nothing reserved yet"
        )
        e.with_user(self.validator).approve_entitlement()
        self.assertEqual(e.state, "approved")
        self.assertTrue(e.code)
        # stock reserved for the corrected quantity, on the key's delivery move
        self.assertAlmostEqual(self.figures(self.rice, self.wh_north)["free"], 92.5)
        move = e.sudo().move_ids
        self.assertEqual(len(move), 1)
        self.assertAlmostEqual(move.product_uom_qty, 7.5)  # h2's 2.5 kg + h1's 5 kg
        self.assertEqual(move.state, "assigned")

    def test_quantity_refused_outside_draft(self):
        cycle = self.pending_cycle()
        e = self.entitlement(cycle, self.h2, self.rice)
        with self.assertRaisesRegex(AccessError, r"^\[not_allowed\]"):
            e.with_user(self.officer).write({"quantity": 1.0})
        with self.assertRaisesRegex(UserError, r"^\[use_actions\]"):
            e.with_user(self.manager).write({"quantity": 1.0})
        self.assertEqual(e.quantity, 2500.0)

    def test_budget_counts_total_amount(self):
        # values: rice 25 kg x 2.00 = 50.00 (h1 15, h2 5, h3 20, h4 10), oil 3 L x 3.00 = 9.00
        self.program.with_user(self.manager).budget_amount = 55.0
        cycle = self.pending_cycle()
        as_validator = cycle.with_user(self.validator)
        self.assertAlmostEqual(as_validator.pending_amount, 59.0)
        self.assertTrue(as_validator.budget_exceeded)
        before = self.figures(self.rice, self.wh_main)
        with self.assertRaisesRegex(UserError, r"^\[over_budget\] .*55\.00.*0\.00.*59\.00"):
            as_validator.validate_entitlement()
        self.assertEqual(set(cycle.inkind_entitlement_ids.mapped("state")), {"pending_validation"})
        self.assertEqual(self.figures(self.rice, self.wh_main), before, "nothing reserved")
        self.assertFalse(self.delivery_moves(cycle))
        oil_h4 = self.entitlement(cycle, self.h4, self.oil)
        oil_h4.with_user(self.validator).action_reject("declined")  # 56.00 left
        self.entitlement(cycle, self.h1, self.oil).with_user(self.validator).action_reject("declined")
        self.assertEqual(as_validator.validate_entitlement(), 5)  # 53.00 of 55.00
        cycle.invalidate_recordset()
        self.assertAlmostEqual(as_validator.program_committed_amount, 53.0)
