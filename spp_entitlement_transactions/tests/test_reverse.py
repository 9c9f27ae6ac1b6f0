from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import tagged

from .common import RedemptionCase


@tagged("post_install", "-at_install")
class TestReverse(RedemptionCase):
    def test_reverse_full_redemption_back_to_approved(self):
        agent = self.api(self.agent_a)
        redemption = agent.redeem(self.ent_a1.code, 100, self.point_a.id, "RV-1")
        self.assertEqual(self.ent_a1.state, "redeemed")
        answer = agent.reverse("RV-1", self.point_a.id, "Wrong beneficiary")
        self.assertEqual(set(answer), {"transaction_id", "code", "balance", "state"})
        self.assertEqual(
            (answer["code"], answer["balance"], answer["state"]), (self.ent_a1.code, 100.0, "approved")
        )
        self.assertEqual(self.ent_a1.state, "approved")
        self.assertEqual(self.ent_a1.amount_redeemed, 0.0)
        self.assertEqual(self.ent_a1.balance, 100.0)
        reversal = self.Transaction.sudo().browse(answer["transaction_id"])
        self.assertRecordValues(
            reversal,
            [
                {
                    "transaction_type": "reversal",
                    "amount": 100.0,
                    "net_amount": -100.0,
                    "reversed_transaction_id": redemption["transaction_id"],
                    "reference": False,
                    "reason": "Wrong beneficiary",
                    "balance_after": 100.0,
                    "state_after": "approved",
                    "user_id": self.agent_a.id,
                }
            ],
        )
        self.assertTrue(self.Transaction.sudo().browse(redemption["transaction_id"]).is_reversed)
        # Redeemable again.
        self.assertEqual(agent.redeem(self.ent_a1.code, 30, self.point_a.id, "RV-2")["balance"], 70.0)

    def test_reverse_partial_keeps_the_rest(self):
        agent = self.api(self.agent_a)
        agent.redeem(self.ent_a1.code, 30, self.point_a.id, "PR-1")
        agent.redeem(self.ent_a1.code, 20, self.point_a.id, "PR-2")
        answer = agent.reverse("PR-1", self.point_a.id, "Typo")
        self.assertEqual((answer["balance"], answer["state"]), (80.0, "approved"))
        self.assertEqual(self.ent_a1.amount_redeemed, 20.0)

    def test_reverse_twice_returns_first_answer(self):
        agent = self.api(self.agent_a)
        agent.redeem(self.ent_a1.code, 40, self.point_a.id, "TW-1")
        first = agent.reverse("TW-1", self.point_a.id, "Mistake")
        again = self.api(self.agent_ab).reverse("TW-1", self.point_a.id, "Mistake, again")
        self.assertEqual(again, first)
        self.assertEqual(self.ent_a1.amount_redeemed, 0.0)
        self.assertEqual(len(self.transactions(self.ent_a1)), 2)
        # The redemption's reference stays taken: the same request answers as the first time.
        self.assertEqual(agent.redeem(self.ent_a1.code, 40, self.point_a.id, "TW-1")["balance"], 60.0)
        self.assertEqual(self.ent_a1.amount_redeemed, 0.0)

    def test_reverse_refusals(self):
        agent = self.api(self.agent_a)
        agent.redeem(self.ent_a1.code, 40, self.point_a.id, "RF-1")
        self.assertRefused(
            "unknown_reference", agent.reverse, "nope", self.point_a.id, "x", exception=UserError
        )
        # The reference is per service point.
        self.assertRefused(
            "unknown_reference",
            self.api(self.agent_ab).reverse,
            "RF-1",
            self.point_b.id,
            "x",
            exception=UserError,
        )
        self.assertRefused(
            "not_your_service_point",
            self.api(self.agent_b).reverse,
            "RF-1",
            self.point_a.id,
            "x",
            exception=AccessError,
        )
        self.assertRefused(
            "bad_reference", agent.reverse, "", self.point_a.id, "x", exception=ValidationError
        )
        for bad in ["", "   ", None, 3, "r" * 501]:
            with self.subTest(reason=bad):
                self.assertRefused(
                    "bad_reason", agent.reverse, "RF-1", self.point_a.id, bad, exception=ValidationError
                )

    def test_cancelled_entitlement_not_reversible(self):
        agent = self.api(self.agent_a)
        agent.redeem(self.ent_a1.code, 40, self.point_a.id, "CL-1")
        self.ent_a1.with_user(self.manager).action_cancel()  # its cycle stays approved
        self.assertEqual(self.ent_a1.state, "cancelled")
        self.assertRefused(
            "not_reversible", agent.reverse, "CL-1", self.point_a.id, "late", exception=UserError
        )

    def test_redemption_of_an_ended_cycle_not_reversible(self):
        agent = self.api(self.agent_a)
        agent.redeem(self.ent_a1.code, 100, self.point_a.id, "END-1")
        self.assertEqual(self.ent_a1.state, "redeemed")
        # End cycle as the approver does (the closing settles the cycle; without the
        # closing addon End cycle needs no open entitlement: the others are cancelled)
        (self.ent_a2 | self.ent_b1 | self.ent_b2).with_user(self.manager).action_cancel()
        self.cycle.with_user(self.approver).mark_ended()
        self.assertEqual(self.cycle.state, "ended")
        self.assertRefused(
            "not_reversible", agent.reverse, "END-1", self.point_a.id, "late", exception=UserError
        )

    def test_transactions_are_never_edited_or_deleted(self):
        self.api(self.agent_a).redeem(self.ent_a1.code, 40, self.point_a.id, "IM-1")
        transaction = self.transactions(self.ent_a1)
        for record in (transaction, transaction.with_user(self.manager)):
            with self.assertRaises(UserError) as caught:
                record.write({"amount": 1.0})
            self.assertTrue(caught.exception.args[0].startswith("[immutable] "))
            with self.assertRaises(UserError):
                record.unlink()
        self.assertEqual(transaction.amount, 40.0)
