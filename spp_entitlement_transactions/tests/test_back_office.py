from odoo.tests import tagged

from .common import InkindRedemptionCase


@tagged("post_install", "-at_install")
class TestBackOffice(InkindRedemptionCase):
    """The cycle dashboard (in-kind counts, redemption progress) and the area of
    transactions, read as back-office users."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Area = cls.env["spp.area"]
        cls.area_a = Area.create({"name": "Area of point A", "code": "BO-A"})
        cls.area_b1 = Area.create({"name": "Area of house B1", "code": "BO-B1"})
        cls.point_a.area_id = cls.area_a
        # as generation would have set it from the beneficiary's area
        cls.ink_b1.sudo().area_id = cls.area_b1

    def test_transaction_area_from_entitlement_else_service_point(self):
        answer_a = self.api(self.agent_a).redeem(self.ink_a1.code, 4, self.point_a.id, "BO-1")
        answer_b = self.api(self.agent_b).redeem(self.ink_b1.code, 10, self.point_b.id, "BO-2")
        Transaction = self.env["spp.entitlement.transaction"].with_user(self.validator)
        self.assertEqual(Transaction.browse(answer_a["transaction_id"]).area_id, self.area_a)
        self.assertEqual(Transaction.browse(answer_b["transaction_id"]).area_id, self.area_b1)
        reversal = self.api(self.agent_a).reverse("BO-1", self.point_a.id, "Wrong person")
        self.assertEqual(Transaction.browse(reversal["transaction_id"]).area_id, self.area_a)
        # the analysis groups by area
        groups = Transaction._read_group(
            [("inkind_entitlement_id", "!=", False)], ["area_id"], ["net_quantity:sum"]
        )
        self.assertEqual(dict(groups), {self.area_a: 0.0, self.area_b1: 10.0})

    def test_dashboard_inkind_counts_and_redemption_progress(self):
        self.api(self.agent_a).redeem(self.ink_a1.code, 4, self.point_a.id, "BO-3")
        self.api(self.agent_b).redeem(self.ink_b1.code, 10, self.point_b.id, "BO-4")
        self.api(self.agent_a).redeem(self.ent_a1.code, 25.5, self.point_a.id, "BO-5")
        self.api(self.agent_b).redeem(self.ent_b1.code, 100, self.point_b.id, "BO-6")
        self.ent_b2.with_user(self.validator).action_reject("declined")
        cycles = (self.cycle | self.inkind_cycle).with_user(self.approver)
        cycles.invalidate_recordset()
        cash, inkind = cycles
        # in-kind: one approved (A1, part redeemed), one redeemed (B1)
        self.assertEqual(
            [inkind["inkind_%s_count" % k] for k in ("draft", "pending", "approved", "redeemed", "closed")],
            [0, 0, 1, 1, 0],
        )
        self.assertEqual(inkind.inkind_entitlement_count, 2)
        self.assertEqual(cash.inkind_entitlement_count, 0)
        # cash: A1, A2 approved (A1 part redeemed), B1 redeemed, B2 rejected (not counted as approved)
        self.assertEqual(
            [cash["cash_%s_count" % k] for k in ("draft", "pending", "approved", "redeemed", "closed")],
            [0, 0, 2, 1, 1],
        )
        self.assertEqual(cash.redemption_amount_approved, 300.0)
        self.assertEqual(cash.redemption_amount_redeemed, 125.5)
        self.assertAlmostEqual(cash.redemption_amount_rate, 41.8, places=1)  # 125.5 / 300, 1 decimal
        self.assertFalse(cash.redemption_inkind_html)
        self.assertEqual(inkind.redemption_amount_approved, 0.0)
        html = str(inkind.redemption_inkind_html)
        self.assertIn("<td>Rice</td><td>kg</td><td>20</td><td>14</td><td>6</td><td>70.0 %</td>", html)
        # the in-kind smart button "Redeemed" opens B1's entitlement only
        action = inkind.with_context(dashboard_state="redeemed").action_open_inkind_entitlements()
        listed = self.env["g2p.entitlement.inkind"].with_user(self.approver).search(action["domain"])
        self.assertEqual(listed, self.ink_b1)
