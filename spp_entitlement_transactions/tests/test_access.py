from odoo.exceptions import AccessError, ValidationError
from odoo.tests import tagged

from .common import RedemptionCase


@tagged("post_install", "-at_install")
class TestAccess(RedemptionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        api = cls.env["spp.entitlement.transaction"]
        cls.tx_a = api.with_user(cls.agent_a).redeem(cls.ent_a1.code, 10, cls.point_a.id, "AC-A")[
            "transaction_id"
        ]
        cls.tx_b = api.with_user(cls.agent_b).redeem(cls.ent_b1.code, 10, cls.point_b.id, "AC-B")[
            "transaction_id"
        ]

    def test_agents_read_the_transactions_of_their_points(self):
        Transaction = self.env["spp.entitlement.transaction"]
        self.assertEqual(Transaction.with_user(self.agent_a).search([]).ids, [self.tx_a])
        self.assertEqual(Transaction.with_user(self.agent_b).search([]).ids, [self.tx_b])
        self.assertEqual(
            sorted(Transaction.with_user(self.agent_ab).search([]).ids), sorted([self.tx_a, self.tx_b])
        )
        with self.assertRaises(AccessError):
            Transaction.with_user(self.agent_a).browse(self.tx_b).read(["amount"])
        rows = Transaction.with_user(self.agent_a).search_read(
            [], ["amount", "entitlement_id", "service_point_id"]
        )
        self.assertEqual(rows[0]["amount"], 10.0)

    def test_back_office_reads_all_transactions(self):
        for user in (self.officer, self.validator, self.approver, self.manager):
            with self.subTest(user=user.login):
                ids = self.env["spp.entitlement.transaction"].with_user(user).search([]).ids
                self.assertEqual(sorted(ids), sorted([self.tx_a, self.tx_b]))

    def test_others_read_nothing(self):
        with self.assertRaises(AccessError):
            self.env["spp.entitlement.transaction"].with_user(self.not_agent).search([])

    def test_nobody_creates_through_the_orm(self):
        for user in (self.agent_a, self.manager):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                self.env["spp.entitlement.transaction"].with_user(user).create(
                    {
                        "entitlement_id": self.ent_a1.id,
                        "transaction_type": "redemption",
                        "amount": 1.0,
                        "service_point_id": self.point_a.id,
                        "user_id": user.id,
                        "reference": "FORGED",
                        "company_id": self.env.company.id,
                    }
                )
        self.assertEqual(self.ent_a1.amount_redeemed, 10.0)

    def test_agents_read_the_cash_entitlements_of_their_points(self):
        Entitlement = self.env["g2p.entitlement"]
        self.assertEqual(
            set(Entitlement.with_user(self.agent_a).search([]).ids), {self.ent_a1.id, self.ent_a2.id}
        )
        with self.assertRaises(AccessError):
            Entitlement.with_user(self.agent_a).browse(self.ent_b1.id).read(["balance"])
        with self.assertRaises(AccessError):
            Entitlement.with_user(self.agent_a).browse(self.ent_a1.id).write({"amount_redeemed": 0})
        self.assertEqual(
            len(Entitlement.with_user(self.officer).search([("cycle_id", "=", self.cycle.id)])), 4
        )

    def test_entitlements_for_service_point(self):
        self.api(self.agent_a).redeem(self.ent_a2.code, 100, self.point_a.id, "FULL-A2")
        answers = self.api(self.agent_a).entitlements_for_service_point(self.point_a.id)
        self.assertEqual(
            answers,
            [
                {
                    "code": self.ent_a1.code,
                    "beneficiary": "House A1",
                    "household": "House A1",
                    "product": False,
                    "uom": False,
                    "balance": 90.0,
                    "valid_until": str(self.cycle.end_date),
                    "state": "approved",
                }
            ],
        )
        # Entitlements not redeemable today are left out.
        self.ent_b2.sudo().valid_from = self.days(1)
        codes = [a["code"] for a in self.api(self.agent_b).entitlements_for_service_point(self.point_b.id)]
        self.assertEqual(codes, [self.ent_b1.code])
        # Back office may ask for any point; agents only for theirs.
        self.assertEqual(len(self.api(self.officer).entitlements_for_service_point(self.point_b.id)), 1)
        self.assertRefused(
            "not_your_service_point",
            self.api(self.agent_a).entitlements_for_service_point,
            self.point_b.id,
            exception=AccessError,
        )
        self.assertRefused(
            "not_an_agent",
            self.api(self.not_agent).entitlements_for_service_point,
            self.point_a.id,
            exception=AccessError,
        )
        self.assertRefused(
            "bad_service_point",
            self.api(self.agent_a).entitlements_for_service_point,
            str(self.point_a.id),
            exception=ValidationError,
        )

    def test_answers_have_no_none(self):
        """Everything the API answers can be marshalled by XML-RPC (no None anywhere)."""
        answers = [
            self.api(self.agent_a).lookup(self.ent_a1.code),
            self.api(self.agent_a).redeem(self.ent_a1.code, 1, self.point_a.id, "NN-1"),
            self.api(self.agent_a).reverse("NN-1", self.point_a.id, "test"),
            *self.api(self.agent_a).redeem_batch(
                self.point_a.id, [{"code": "bad", "quantity": 1, "reference": None}]
            ),
            *self.api(self.agent_a).entitlements_for_service_point(self.point_a.id),
        ]
        for answer in answers:
            self.assertNotIn(None, answer.values(), answer)
            self.assertTrue(all(isinstance(k, str) for k in answer), answer)

    def test_views_and_pivot_for_agents_and_back_office(self):
        Transaction = self.env["spp.entitlement.transaction"]
        for user in (self.agent_a, self.officer):
            with self.subTest(user=user.login):
                views = Transaction.with_user(user).get_views(
                    [(False, "tree"), (False, "form"), (False, "pivot"), (False, "search")]
                )
                self.assertEqual(set(views["views"]), {"tree", "form", "pivot", "search"})
                self.assertIn('create="false"', views["views"]["tree"]["arch"])
        # The pivot: service point x product x day, net amounts; agents see their points only.
        groups = Transaction.with_user(self.agent_a).read_group(
            [], ["net_amount:sum"], ["service_point_id", "product_id", "date:day"], lazy=False
        )
        self.assertEqual(
            [(g["service_point_id"][0], g["net_amount"]) for g in groups], [(self.point_a.id, 10.0)]
        )
        groups = Transaction.with_user(self.officer).read_group(
            [], ["net_amount:sum"], ["service_point_id"], lazy=False
        )
        self.assertEqual(len(groups), 2)

    def test_transactions_per_entitlement_and_per_point(self):
        action = self.ent_a1.with_user(self.officer).action_open_transactions()
        self.assertEqual(self.env["spp.entitlement.transaction"].search(action["domain"]).ids, [self.tx_a])
        self.assertEqual(self.ent_a1.with_user(self.officer).transaction_count, 1)
        action = self.point_b.with_user(self.agent_b).action_open_transactions()
        self.assertEqual(
            self.env["spp.entitlement.transaction"].with_user(self.agent_b).search(action["domain"]).ids,
            [self.tx_b],
        )
