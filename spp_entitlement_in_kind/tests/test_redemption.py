from odoo.addons.spp_entitlement_transactions.tests.common import InkindRedemptionCase
from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged


@tagged("post_install", "-at_install")
class TestInkindRedemption(InkindRedemptionCase):
    def inkind_snapshot(self):
        self.env.invalidate_all()
        return [(e.id, e.quantity_redeemed, e.quantity_balance, e.state) for e in self.ink_a1 | self.ink_b1]

    def stock_snapshot(self):
        self.env.invalidate_all()
        moves = self.env["stock.move"].sudo().search([("product_id", "=", self.rice.id)])
        rice = self.rice.with_context(warehouse=self.warehouse.id)
        return (moves.ids, [(m.state, m.quantity) for m in moves], rice.qty_available)

    def test_lookup_inkind(self):
        self.assertEqual(
            self.api(self.agent_a).lookup(self.ink_a1.code),
            {
                "code": self.ink_a1.code,
                "beneficiary": "House A1",
                "household": "House A1",
                "product": "Rice",
                "uom": "kg",
                "balance": 10.0,
                "valid_until": str(self.inkind_cycle.end_date),
                "state": "approved",
            },
        )

    def test_redemption_runs_two_queries(self):
        """The hot path: one query that checks the agent's service point and locks and
        reads the entitlement with its unit's rounding, one that inserts the transaction
        and updates the entitlement. Nothing else is read (no ORM fetch of the entitlement,
        its currency, UoM or program)."""
        agent = self.api(self.agent_a)
        # Warm the registry's caches (groups, access rights, decimal precisions) on both
        # paths, as the first requests after a server start do (emptied first: whatever
        # ran before this test has no say).
        self.env.registry.clear_all_caches()
        agent.redeem(self.ent_a1.code, 1, self.point_a.id, "Q-0")
        agent.redeem(self.ink_a1.code, 1, self.point_a.id, "Q-00")
        cash_code, inkind_code, point_id = self.ent_a1.code, self.ink_a1.code, self.point_a.id
        self.env.invalidate_all()  # as a new request: nothing of the records in the cache
        with self.assertQueryCount(2):
            cash = agent.redeem(cash_code, 9.5, point_id, "Q-1")
        self.env.invalidate_all()
        with self.assertQueryCount(2):
            inkind = agent.redeem(inkind_code, 9, point_id, "Q-2")
        self.assertEqual((cash["balance"], cash["state"]), (89.5, "approved"))
        self.assertEqual((inkind["balance"], inkind["state"]), (0.0, "redeemed"))
        self.env.invalidate_all()
        self.assertEqual((self.ent_a1.amount_redeemed, self.ent_a1.balance), (10.5, 89.5))
        self.assertEqual((self.ink_a1.quantity_redeemed, self.ink_a1.state), (10.0, "redeemed"))
        self.assertRecordValues(
            self.Transaction.sudo().browse(inkind["transaction_id"]),
            [
                {
                    "quantity": 9.0,
                    "uom_id": self.kg.id,
                    "product_id": self.rice.id,
                    "currency_id": self.inkind_program.currency_id.id,
                    "balance_after": 0.0,
                }
            ],
        )

    def test_redeem_records_the_quantity_and_leaves_stock_alone(self):
        stock = self.stock_snapshot()
        agent = self.api(self.agent_a)
        answer = agent.redeem(self.ink_a1.code, 4, self.point_a.id, "IK-1")
        self.assertEqual((answer["balance"], answer["state"]), (6.0, "approved"))
        self.assertEqual(self.ink_a1.quantity_redeemed, 4.0)
        self.assertEqual(self.ink_a1.quantity_balance, 6.0)
        transaction = self.Transaction.sudo().browse(answer["transaction_id"])
        self.assertRecordValues(
            transaction,
            [
                {
                    "inkind_entitlement_id": self.ink_a1.id,
                    "entitlement_id": False,
                    "quantity": 4.0,
                    "net_quantity": 4.0,
                    "amount": 0.0,
                    "product_id": self.rice.id,
                    "uom_id": self.kg.id,
                    "balance_after": 6.0,
                }
            ],
        )
        # Stock is posted in batches by spp_entitlement_in_kind, never by a redemption.
        self.assertEqual(self.stock_snapshot(), stock)
        message = self.assertRefused(
            "over_balance",
            agent.redeem,
            self.ink_a1.code,
            100.0,
            self.point_a.id,
            "IK-2",
            exception=UserError,
        )
        self.assertEqual(
            message, "[over_balance] Entitlement %s: 6.0 kg left, 100.0 kg asked." % self.ink_a1.code
        )
        # Grams of precision: 5.9995 kg is rounded to the unit's 0.001.
        answer = agent.redeem(self.ink_a1.code, 5.9995, self.point_a.id, "IK-3")
        self.assertAlmostEqual(answer["balance"], 0.0 if answer["state"] == "redeemed" else 0.001, places=6)

    def test_full_then_reverse_inkind(self):
        agent = self.api(self.agent_b)
        answer = agent.redeem(self.ink_b1.code, 10.0, self.point_b.id, "IKF-1")
        self.assertEqual((answer["balance"], answer["state"]), (0.0, "redeemed"))
        self.assertEqual(self.ink_b1.state, "redeemed")
        reversal = agent.reverse("IKF-1", self.point_b.id, "Bag was torn, taken back")
        self.assertEqual((reversal["balance"], reversal["state"]), (10.0, "approved"))
        self.assertEqual(self.ink_b1.quantity_redeemed, 0.0)
        self.assertEqual(self.Transaction.sudo().browse(reversal["transaction_id"]).net_quantity, -10.0)

    def test_inkind_refusals_change_nothing(self):
        before = self.inkind_snapshot()
        agent = self.api(self.agent_a)
        self.assertRefused(
            "wrong_service_point",
            agent.redeem,
            self.ink_b1.code,
            1,
            self.point_a.id,
            "IKR-1",
            exception=UserError,
        )
        self.assertRefused(
            "bad_quantity",
            agent.redeem,
            self.ink_a1.code,
            0.0001,
            self.point_a.id,
            "IKR-2",
            exception=ValidationError,
        )
        self.assertRefused(
            "bad_quantity",
            agent.redeem,
            self.ink_a1.code,
            -1,
            self.point_a.id,
            "IKR-3",
            exception=ValidationError,
        )
        self.assertEqual(self.inkind_snapshot(), before)

    def test_offline_list_and_batch_mix_cash_and_inkind(self):
        agent = self.api(self.agent_a)
        codes = {row["code"]: row for row in agent.entitlements_for_service_point(self.point_a.id)}
        self.assertEqual(set(codes), {self.ent_a1.code, self.ent_a2.code, self.ink_a1.code})
        self.assertEqual((codes[self.ink_a1.code]["product"], codes[self.ink_a1.code]["uom"]), ("Rice", "kg"))
        lines = [
            {"code": self.ent_a1.code, "quantity": 50, "reference": "MIX-1"},
            {"code": self.ink_a1.code, "quantity": 2.5, "reference": "MIX-2"},
            {"code": self.ink_a1.code, "quantity": 20, "reference": "MIX-3"},
        ]
        for _replay in range(2):
            answers = agent.redeem_batch(self.point_a.id, lines)
            self.assertEqual([a.get("balance") for a in answers[:2]], [50.0, 7.5])
            self.assertTrue(answers[2]["error"].startswith("[over_balance] "))
            self.assertEqual(self.ink_a1.quantity_redeemed, 2.5)
            self.assertEqual(self.ent_a1.amount_redeemed, 50.0)

    def test_agents_read_inkind_transactions_of_their_points(self):
        self.api(self.agent_b).redeem(self.ink_b1.code, 1, self.point_b.id, "IKA-1")
        Transaction = self.env["spp.entitlement.transaction"]
        self.assertFalse(Transaction.with_user(self.agent_a).search([("inkind_entitlement_id", "!=", False)]))
        self.assertEqual(
            len(Transaction.with_user(self.agent_b).search([("inkind_entitlement_id", "!=", False)])), 1
        )


@tagged("post_install", "-at_install")
class TestServiceRedemption(InkindRedemptionCase):
    """An in-kind service (issue 21 item 5) beside a stock-managed good: redeemed through
    the same API, never reserved nor posted to stock."""

    def test_service_redeemed_like_a_good(self):
        consultation = self.env["product.product"].create(
            {
                "name": "Consultation",
                "detailed_type": "service",
                "uom_id": self.env.ref("uom.product_uom_unit").id,
            }
        )
        program = (
            self.env["g2p.program"]
            .with_user(self.manager)
            .create({"name": "Rice and care", "eligibility_domain": "[('id', '=', %s)]" % self.house_a1.id})
        )
        manager = (
            self.env["g2p.program.entitlement.manager.inkind"]
            .with_user(self.manager)
            .create(
                {
                    "program_id": program.id,
                    "validation_group_id": self.validation_group.id,
                    "warehouse_id": self.warehouse.id,
                    "item_ids": [
                        (0, 0, {"product_id": self.rice.id, "quantity": 5.0, "uom_id": self.kg.id}),
                        (0, 0, {"product_id": consultation.id, "quantity": 2.0}),
                    ],
                }
            )
        )
        self.assertTrue(manager.manage_inventory)
        program.with_user(self.officer).enroll_eligible_registrants()
        cycle = self.env["g2p.cycle"].browse(program.with_user(self.officer).create_new_cycle())
        cycle.with_user(self.officer).prepare_entitlement()
        cycle.with_user(self.officer).to_approve()
        cycle.with_user(self.approver).approve()
        cycle.with_user(self.validator).validate_entitlement()
        by_product = {e.product_id: e for e in cycle.inkind_entitlement_ids}
        rice, care = by_product[self.rice], by_product[consultation]
        self.assertEqual((rice.state, care.state), ("approved", "approved"))
        self.assertTrue(rice.sudo().allocation_id, "the good is reserved")
        self.assertFalse(care.sudo().allocation_id, "the service is not")
        agent = self.api(self.agent_a)
        answer = agent.redeem(care.code, 1, self.point_a.id, "CARE-1")
        self.assertEqual((answer["balance"], answer["state"]), (1.0, "approved"))
        answer = agent.redeem(care.code, 1, self.point_a.id, "CARE-2")
        self.assertEqual((answer["balance"], answer["state"]), (0.0, "redeemed"))
        cycle.with_user(self.approver).action_post_deliveries()
        self.assertFalse(self.env["stock.move"].sudo().search([("product_id", "=", consultation.id)]))
        self.assertEqual(care.quantity_redeemed, 2.0)
