from odoo.addons.g2p_programs_ext import ern
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import tagged

from .common import InkindRedemptionCase, RedemptionCase


@tagged("post_install", "-at_install")
class TestOfflineBatch(RedemptionCase):
    def offline_lines(self):
        """What a device at point A recorded during a day without network: good lines
        mixed with bad ones."""
        return [
            {
                "code": self.ent_a1.code,
                "quantity": 30,
                "reference": "OFF-1",
                "device_time": "2024-03-01 08:00:00",
            },
            {
                "code": self.ent_a1.code,
                "quantity": 500,
                "reference": "OFF-2",
                "device_time": "2024-03-01 08:05:00",
            },
            {
                "code": self.ent_a2.code,
                "quantity": 100.0,
                "reference": "OFF-3",
                "device_time": "2024-03-01T09:00:00Z",
            },
            {"code": ern.display(ern.generate()), "quantity": 5, "reference": "OFF-4", "device_time": False},
            {"code": self.ent_b1.code, "quantity": 5, "reference": "OFF-5"},
            {"code": self.ent_a1.code, "quantity": float("nan"), "reference": "OFF-6"},
            {"code": self.ent_a1.code, "quantity": 20, "reference": "x" * 65},
            {"code": self.ent_a1.code, "quantity": 20, "reference": "OFF-8", "device_time": "yesterday"},
            "not a dict",
            {"code": self.ent_a1.code, "quantity": 20, "reference": "OFF-10"},
            # The device sent OFF-1 twice (it retried): counted once.
            {
                "code": self.ent_a1.code,
                "quantity": 30,
                "reference": "OFF-1",
                "device_time": "2024-03-01 08:00:00",
            },
            # ... and reused OFF-3 for something else: refused.
            {"code": self.ent_a1.code, "quantity": 1, "reference": "OFF-3"},
            {"code": self.ent_a1.code, "quantity": 60, "reference": "OFF-13"},
        ]

    def check_answers(self, answers):
        self.assertEqual(len(answers), 13)
        ok = {i: a for i, a in enumerate(answers) if "error" not in a}
        errors = {i: a for i, a in enumerate(answers) if "error" in a}
        self.assertEqual(sorted(ok), [0, 2, 9, 10])
        for answer in ok.values():
            self.assertEqual(set(answer), {"transaction_id", "code", "balance", "state"})
        self.assertEqual((ok[0]["balance"], ok[0]["state"]), (70.0, "approved"))
        self.assertEqual((ok[2]["balance"], ok[2]["state"]), (0.0, "redeemed"))
        self.assertEqual(ok[9]["balance"], 50.0)
        self.assertEqual(ok[10], ok[0])
        expected = {
            1: ("OFF-2", "over_balance"),
            3: ("OFF-4", "unknown_code"),
            4: ("OFF-5", "wrong_service_point"),
            5: ("OFF-6", "bad_quantity"),
            6: ("x" * 65, "bad_reference"),
            7: ("OFF-8", "bad_device_time"),
            8: (False, "bad_line"),
            11: ("OFF-3", "reference_reused"),
            12: ("OFF-13", "over_balance"),
        }
        self.assertEqual(sorted(errors), sorted(expected))
        for i, (reference, code) in expected.items():
            with self.subTest(line=i):
                self.assertEqual(set(errors[i]), {"reference", "error"})
                self.assertEqual(errors[i]["reference"], reference)
                self.assertTrue(errors[i]["error"].startswith("[%s] " % code), errors[i]["error"])
        return ok

    def test_batch_replayed_twice(self):
        agent = self.api(self.agent_a)
        lines = self.offline_lines()
        first = agent.redeem_batch(self.point_a.id, lines)
        ok = self.check_answers(first)
        state = self.snapshot()
        self.assertEqual(self.ent_a1.amount_redeemed, 50.0)
        self.assertEqual(self.ent_a2.state, "redeemed")
        self.assertEqual(self.ent_b1.amount_redeemed, 0.0)
        self.assertEqual(len(self.transactions()), 3)
        transaction = self.Transaction.sudo().browse(ok[0]["transaction_id"])
        self.assertEqual(str(transaction.device_time), "2024-03-01 08:00:00")
        self.assertEqual(
            str(self.Transaction.sudo().browse(ok[2]["transaction_id"]).device_time), "2024-03-01 09:00:00"
        )
        # The device did not get the answer and sends the whole batch again, twice.
        for _replay in range(2):
            again = agent.redeem_batch(self.point_a.id, lines)
            self.check_answers(again)
            self.assertEqual([a for a in again if "error" not in a], [a for a in first if "error" not in a])
            self.assertEqual(self.snapshot(), state, "a replayed batch changes nothing")

    def test_batch_refused_whole(self):
        lines = [{"code": self.ent_b1.code, "quantity": 1, "reference": "B-1"}]
        self.assertRefused(
            "not_your_service_point",
            self.api(self.agent_a).redeem_batch,
            self.point_b.id,
            lines,
            exception=AccessError,
        )
        self.assertRefused(
            "not_an_agent", self.api(self.officer).redeem_batch, self.point_b.id, lines, exception=AccessError
        )
        for bad in ("lines", None, {"code": "x"}):
            with self.subTest(lines=bad):
                self.assertRefused(
                    "bad_lines",
                    self.api(self.agent_b).redeem_batch,
                    self.point_b.id,
                    bad,
                    exception=ValidationError,
                )

    def test_empty_batch(self):
        self.assertEqual(self.api(self.agent_a).redeem_batch(self.point_a.id, []), [])

    def test_batch_writes_no_chatter(self):
        messages = self.env["mail.message"].sudo().search_count([])
        self.api(self.agent_a).redeem_batch(self.point_a.id, self.offline_lines())
        self.assertEqual(self.env["mail.message"].sudo().search_count([]), messages)

    def test_batch_statements_per_line(self):
        """A batch finds and locks its entitlements in one query, reads its references in
        one, then writes every new redemption and the entitlements' figures in one
        statement: its statements do not grow with its lines. A line on an entitlement
        redeemed earlier in the batch is checked against the figures the earlier line left."""
        api = self.api(self.agent_a)
        api.redeem_batch(self.point_a.id, [])  # the caller's groups and rules in the cache

        def run(prefix, count):
            lines = [
                {"code": entitlement.code, "quantity": 10, "reference": "%s-%s" % (prefix, number)}
                for number, entitlement in enumerate([self.ent_a1, self.ent_a2] * count)
            ]
            self.env.flush_all()
            before = self.env.cr.sql_log_count
            answers = api.redeem_batch(self.point_a.id, lines)
            return answers, self.env.cr.sql_log_count - before

        answers, few = run("STMT", 2)
        self.assertEqual([a["balance"] for a in answers], [90.0, 90.0, 80.0, 80.0])
        self.assertEqual((self.ent_a1.amount_redeemed, self.ent_a1.balance), (20.0, 80.0))
        answers, many = run("MANY", 8)
        self.assertEqual([a["balance"] for a in answers], [b for b in range(70, -10, -10) for _i in (1, 2)])
        self.assertEqual(
            (self.ent_a1.amount_redeemed, self.ent_a1.balance, self.ent_a1.state), (100.0, 0.0, "redeemed")
        )
        self.assertEqual([a["state"] for a in answers][-2:], ["redeemed", "redeemed"])
        self.assertEqual(many, few)
        # the agent check, the locked read, the references, the savepoint, the insert
        # with the updates, the savepoint's release
        self.assertLessEqual(few, 7, few)
        self.assertEqual(len(self.transactions(self.ent_a1)), 10)

    def test_batch_line_reusing_an_earlier_lines_reference(self):
        """Two lines of one batch with one reference: the second is answered as a repeated
        :meth:`redeem` would be, from the first (same payload: same answer; another
        payload: refused), and adds nothing; a line refused leaves its reference free."""
        lines = [
            {"code": self.ent_a1.code, "quantity": 500, "reference": "DUP-0"},  # refused
            {"code": self.ent_a1.code, "quantity": 40, "reference": "DUP-0"},
            {"code": self.ent_a1.code, "quantity": 40, "reference": "DUP-0"},
            {"code": self.ent_a2.code, "quantity": 40, "reference": "DUP-0"},
            {"code": self.ent_a1.code, "quantity": 70, "reference": "DUP-0"},
        ]
        answers = self.api(self.agent_a).redeem_batch(self.point_a.id, lines)
        self.assertTrue(answers[0]["error"].startswith("[over_balance] "), answers[0])
        self.assertEqual((answers[1]["balance"], answers[1]["state"]), (60.0, "approved"))
        self.assertEqual(answers[2], answers[1])
        for index in (3, 4):
            self.assertTrue(answers[index]["error"].startswith("[reference_reused] "), answers[index])
            self.assertIn(self.ent_a1.code, answers[index]["error"])
        self.assertEqual(self.ent_a1.amount_redeemed, 40.0)
        self.assertEqual(self.ent_a2.amount_redeemed, 0.0)
        self.assertEqual(len(self.transactions()), 1)


@tagged("post_install", "-at_install")
class TestOfflineBatchCashAndGoods(InkindRedemptionCase):
    def test_batch_of_cash_and_goods(self):
        """One batch redeeming cash and goods: both ledgers' rows in the one insert (each
        with its own columns), both entitlement tables updated, answers as single calls
        give them, and a second batch on the same entitlements sees the first's figures."""
        lines = [
            {
                "code": self.ent_a1.code,
                "quantity": 25.5,
                "reference": "MIX-1",
                "device_time": "2024-03-01 08:00:00",
            },
            {"code": self.ink_a1.code, "quantity": 4, "reference": "MIX-2"},
            {"code": self.ink_a1.code, "quantity": 6, "reference": "MIX-3"},
            {"code": self.ink_a1.code, "quantity": 1, "reference": "MIX-4"},
        ]
        api = self.api(self.agent_a)
        answers = api.redeem_batch(self.point_a.id, lines)
        self.assertEqual((answers[0]["balance"], answers[0]["state"]), (74.5, "approved"))
        self.assertEqual((answers[1]["balance"], answers[1]["state"]), (6.0, "approved"))
        self.assertEqual((answers[2]["balance"], answers[2]["state"]), (0.0, "redeemed"))
        self.assertTrue(answers[3]["error"].startswith("[fully_redeemed] "), answers[3])
        self.assertEqual((self.ent_a1.amount_redeemed, self.ent_a1.balance), (25.5, 74.5))
        self.assertEqual(
            (self.ink_a1.quantity_redeemed, self.ink_a1.quantity_balance, self.ink_a1.state),
            (10.0, 0.0, "redeemed"),
        )
        Transaction = self.env["spp.entitlement.transaction"].sudo()
        cash = Transaction.browse(answers[0]["transaction_id"])
        goods = Transaction.browse(answers[2]["transaction_id"])
        self.assertEqual((cash.entitlement_id, cash.amount, cash.net_amount), (self.ent_a1, 25.5, 25.5))
        self.assertFalse(cash.inkind_entitlement_id)
        self.assertEqual(str(cash.device_time), "2024-03-01 08:00:00")
        self.assertEqual(
            (goods.inkind_entitlement_id, goods.quantity, goods.net_quantity, goods.product_id, goods.uom_id),
            (self.ink_a1, 6.0, 6.0, self.rice, self.kg),
        )
        self.assertFalse(goods.entitlement_id)
        self.assertEqual(
            (goods.balance_after, goods.state_after, goods.user_id), (0.0, "redeemed", self.agent_a)
        )
        self.assertEqual(api.redeem_batch(self.point_a.id, lines), answers)
        more = api.redeem_batch(
            self.point_a.id, [{"code": self.ent_a1.code, "quantity": 74.5, "reference": "MIX-5"}]
        )
        self.assertEqual((more[0]["balance"], more[0]["state"]), (0.0, "redeemed"))
