from datetime import timedelta

from odoo.addons.spp_entitlement_transactions.tests.common import InkindRedemptionCase
from odoo.exceptions import UserError
from odoo.tests import tagged


@tagged("post_install", "-at_install")
class TestCloseCycles(InkindRedemptionCase):
    """Cash: a1 redeemed in full, a2 in part, b1 and b2 never. In-kind (10 kg of rice
    each): a1 in full, b1 in part (4 kg)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Cycle = cls.env["g2p.cycle"]
        cls.api_a = cls.env["spp.entitlement.transaction"].with_user(cls.agent_a)
        cls.api_b = cls.env["spp.entitlement.transaction"].with_user(cls.agent_b)
        cls.api_a.redeem(cls.ent_a1.code, 100.0, cls.point_a.id, "cash-a1")
        cls.api_a.redeem(cls.ent_a2.code, 40.0, cls.point_a.id, "cash-a2")
        cls.api_a.redeem(cls.ink_a1.code, 10.0, cls.point_a.id, "rice-a1")
        cls.api_b.redeem(cls.ink_b1.code, 4.0, cls.point_b.id, "rice-b1")
        cls.on_hand_before = cls.rice.with_context(warehouse=cls.warehouse.id).qty_available

    def end_cycles(self, cycles):
        """As if the cycles' end dates had passed."""
        yesterday = self.today - timedelta(days=1)
        cycles.sudo().write({"start_date": yesterday - timedelta(days=29), "end_date": yesterday})

    def states(self):
        self.env.invalidate_all()
        cash = {e.partner_id.name: e.state for e in self.cycle.entitlement_ids}
        inkind = {e.partner_id.name: e.state for e in self.inkind_cycle.inkind_entitlement_ids}
        return cash, inkind, self.cycle.state, self.inkind_cycle.state

    def test_three_outcomes_cash_and_inkind_and_stock(self):
        self.end_cycles(self.cycle | self.inkind_cycle)
        self.Cycle._cron_close_ended_cycles()
        cash, inkind, cash_cycle, inkind_cycle = self.states()
        self.assertEqual(
            cash,
            {
                "House A1": "redeemed",
                "House A2": "partially_redeemed",
                "House B1": "expired",
                "House B2": "expired",
            },
        )
        self.assertEqual(inkind, {"House A1": "redeemed", "House B1": "partially_redeemed"})
        self.assertEqual((cash_cycle, inkind_cycle), ("ended", "ended"))
        # stock: 14 kg handed out left the warehouse, nothing stays reserved
        rice = self.rice.with_context(warehouse=self.warehouse.id)
        self.assertAlmostEqual(rice.qty_available, self.on_hand_before - 14.0)
        self.assertAlmostEqual(rice.virtual_available, rice.qty_available)
        self.assertIn("Cycle closed", self.inkind_cycle.message_ids[0].body)
        self.assertIn("14.0", self.inkind_cycle.message_ids[0].body)

    def test_idempotent(self):
        self.end_cycles(self.cycle | self.inkind_cycle)
        self.Cycle._cron_close_ended_cycles()
        first = self.states()
        messages = len(self.cycle.message_ids)
        self.Cycle._cron_close_ended_cycles()
        self.assertEqual(self.states(), first)
        self.assertEqual(len(self.cycle.message_ids), messages)

    def test_interrupted_after_first_batch_then_rerun(self):
        self.end_cycles(self.cycle | self.inkind_cycle)

        def open_count():
            cash, inkind, _c, _i = self.states()
            return sum(state in ("approved", "transferred") for state in [*cash.values(), *inkind.values()])

        before = open_count()
        self.Cycle._cron_close_ended_cycles(batch_size=1)  # one entitlement settled, then "killed"
        # one run does one batch per cycle and stops at the first cycle with work left: the
        # in-kind cycle's only open entitlement (B1) settles and that cycle ends, then one of
        # the three open cash entitlements settles and the run stops
        self.assertEqual(open_count(), before - 2)
        self.assertEqual((self.cycle.state, self.inkind_cycle.state), ("approved", "ended"))
        for _run in range(10):
            self.Cycle._cron_close_ended_cycles(batch_size=1)
        interrupted = self.states()
        self.assertEqual(
            interrupted,
            (
                {
                    "House A1": "redeemed",
                    "House A2": "partially_redeemed",
                    "House B1": "expired",
                    "House B2": "expired",
                },
                {"House A1": "redeemed", "House B1": "partially_redeemed"},
                "ended",
                "ended",
            ),
        )

    def test_cycle_not_ended_is_left_alone(self):
        self.end_cycles(self.inkind_cycle)
        self.Cycle._cron_close_ended_cycles()
        cash, _inkind, cash_cycle, inkind_cycle = self.states()
        self.assertEqual(cash_cycle, "approved")
        self.assertEqual(set(cash.values()), {"approved", "redeemed"})
        self.assertEqual(inkind_cycle, "ended")
        with self.assertRaisesRegex(UserError, r"\[not_ended\]"):
            self.cycle.with_user(self.approver).action_close()

    def test_close_button(self):
        self.end_cycles(self.cycle)
        self.cycle.with_user(self.approver).action_close()
        self.assertEqual(self.cycle.state, "ended")
        self.assertEqual(self.ent_b1.state, "expired")
