from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ

import odoo
from odoo import fields
from odoo.addons.g2p_programs_ext import ern
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import tagged

from .common import RedemptionCase


def wrong_check_character(code):
    """``code`` with its check character replaced by another valid one."""
    normalized = ern.normalize(code)
    other = next(c for c in ern.ISO7064_CHARSET[:-1] if c != normalized[-1])
    return ern.display(normalized[:-1] + other)


@tagged("post_install", "-at_install")
class TestLookup(RedemptionCase):
    def test_lookup_answers_the_contract_keys(self):
        answer = self.api(self.agent_a).lookup(self.ent_a1.code)
        self.assertEqual(
            answer,
            {
                "code": self.ent_a1.code,
                "beneficiary": "House A1",
                "household": "House A1",
                "product": False,
                "uom": False,
                "balance": 100.0,
                "valid_until": str(self.cycle.end_date),
                "state": "approved",
            },
        )

    def test_lookup_ignores_dashes_spaces_and_case(self):
        raw = ern.normalize(self.ent_a1.code).lower()
        self.assertEqual(self.api(self.agent_a).lookup(" %s " % raw)["code"], self.ent_a1.code)

    def test_lookup_individual_gives_household(self):
        answers = self.Transaction._lookup_answers(self.ent_a1.sudo())
        self.assertEqual(answers[0]["household"], "House A1")
        self.assertEqual(self.Transaction._households(self.ind_a1), {self.ind_a1.id: "House A1"})

    def test_lookup_refusals(self):
        agent = self.api(self.agent_a)
        self.assertRefused("unknown_code", agent.lookup, ern.display(ern.generate()), exception=UserError)
        self.assertRefused(
            "bad_check_character",
            agent.lookup,
            wrong_check_character(self.ent_a1.code),
            exception=ValidationError,
        )
        self.assertRefused("malformed_code", agent.lookup, "ABC", exception=ValidationError)
        self.assertRefused("malformed_code", agent.lookup, 42, exception=ValidationError)
        self.assertRefused("wrong_service_point", agent.lookup, self.ent_b1.code, exception=UserError)
        self.assertRefused(
            "not_allowed", self.api(self.not_agent).lookup, self.ent_a1.code, exception=AccessError
        )

    def test_back_office_looks_up_any(self):
        self.assertEqual(self.api(self.officer).lookup(self.ent_b1.code)["beneficiary"], "House B1")


@tagged("post_install", "-at_install")
class TestRedeem(RedemptionCase):
    def test_partial_then_full_redemption(self):
        agent = self.api(self.agent_a)
        first = agent.redeem(self.ent_a1.code, 40, self.point_a.id, "R-1")
        self.assertEqual(set(first), {"transaction_id", "code", "balance", "state"})
        self.assertEqual(first["code"], self.ent_a1.code)
        self.assertEqual(first["balance"], 60.0)
        self.assertEqual(first["state"], "approved")
        self.assertEqual(self.ent_a1.amount_redeemed, 40.0)
        self.assertEqual(self.ent_a1.balance, 60.0)
        self.assertEqual(self.ent_a1.state, "approved")
        transaction = self.Transaction.sudo().browse(first["transaction_id"])
        self.assertRecordValues(
            transaction,
            [
                {
                    "entitlement_id": self.ent_a1.id,
                    "inkind_entitlement_id": False,
                    "transaction_type": "redemption",
                    "amount": 40.0,
                    "net_amount": 40.0,
                    "service_point_id": self.point_a.id,
                    "user_id": self.agent_a.id,
                    "reference": "R-1",
                    "balance_after": 60.0,
                    "state_after": "approved",
                    "partner_id": self.house_a1.id,
                    "code": self.ent_a1.code,
                }
            ],
        )
        # The last 60.0 empties it: redeemed at once.
        last = agent.redeem(self.ent_a1.code, 60.0, self.point_a.id, "R-2")
        self.assertEqual((last["balance"], last["state"]), (0.0, "redeemed"))
        self.assertEqual(self.ent_a1.state, "redeemed")
        self.assertEqual(self.ent_a1.amount_redeemed, 100.0)
        self.assertEqual(sum(self.transactions(self.ent_a1).mapped("amount")), self.ent_a1.amount_redeemed)
        self.assertRefused(
            "fully_redeemed", agent.redeem, self.ent_a1.code, 1, self.point_a.id, "R-3", exception=UserError
        )

    def test_request_transaction_read_committed_without_a_statement(self):
        """A call that starts its cursor's transaction (an RPC request) runs it in READ
        COMMITTED, begun so by psycopg2 (no statement of its own); once the transaction
        ends the cursor's connection is back at Odoo's REPEATABLE READ. Called after
        other statements, it changes nothing."""
        with self.registry.cursor() as cr:
            env = odoo.api.Environment(cr, self.agent_a.id, {})
            env["spp.entitlement.transaction"]._read_committed()
            self.assertEqual(cr.sql_log_count, 0, "no statement of its own")
            cr.execute("SHOW transaction_isolation")
            self.assertEqual(cr.fetchone()[0], "read committed")
            env["spp.entitlement.transaction"]._read_committed()  # in a transaction: no change
            cr.rollback()
            cr.execute("SHOW transaction_isolation")
            self.assertEqual(cr.fetchone()[0], "repeatable read")
            env["spp.entitlement.transaction"]._read_committed()  # statements ran: no change
            # a cursor of its own that wrote nothing: its commit only ends the transaction
            cr.commit()  # pylint: disable=invalid-commit
            cr.execute("SHOW transaction_isolation")
            self.assertEqual(cr.fetchone()[0], "repeatable read")
        # A refused request: Odoo closes its cursor without committing (the rollback runs
        # after the psycopg2 cursor is gone); the connection goes back to the pool.
        pool = odoo.sql_db._Pool
        cr = self.registry.cursor()
        connection = cr._cnx
        # (a user this cursor sees: the test's own records are not committed)
        env = odoo.api.Environment(cr, self.env.ref("base.user_admin").id, {})
        with self.assertRaises(AccessError):  # [not_an_agent]
            env["spp.entitlement.transaction"].redeem(self.ent_b1.code, 1, self.point_b.id, "RC-CLOSE")
        cr.close()
        self.assertTrue(cr.closed)
        self.assertIn(connection, [cnx for cnx, used, _last in pool._connections if not used])
        self.assertEqual(connection.isolation_level, ISOLATION_LEVEL_REPEATABLE_READ)

    def test_parts_add_up_exactly(self):
        agent = self.api(self.agent_a)
        for n in range(3):
            agent.redeem(self.ent_a1.code, 33.33, self.point_a.id, "P-%s" % n)
        answer = agent.redeem(self.ent_a1.code, 0.01 + 0.000001, self.point_a.id, "P-last")
        self.assertEqual(answer["balance"], 0.0)
        self.assertEqual(self.ent_a1.state, "redeemed")
        self.assertEqual(self.ent_a1.amount_redeemed, 100.0)

    def test_code_in_any_form(self):
        raw = ern.normalize(self.ent_a1.code).lower()
        answer = self.api(self.agent_a).redeem(raw, 10, self.point_a.id, "lower")
        self.assertEqual(answer["code"], self.ent_a1.code)

    def test_same_reference_same_payload_returns_first_answer(self):
        agent = self.api(self.agent_a)
        first = agent.redeem(self.ent_a1.code, 25.0, self.point_a.id, "DUP")
        agent.redeem(self.ent_a1.code, 10.0, self.point_a.id, "OTHER")
        again = agent.redeem(ern.normalize(self.ent_a1.code), 25, self.point_a.id, "DUP")
        self.assertEqual(again, first)
        self.assertEqual(self.ent_a1.amount_redeemed, 35.0)
        self.assertEqual(len(self.transactions(self.ent_a1)), 2)
        # Another agent of the same point retrying the device's request: same answer too.
        self.assertEqual(
            self.api(self.agent_ab).redeem(self.ent_a1.code, 25.0, self.point_a.id, "DUP"), first
        )

    def test_same_reference_at_another_point_is_another_redemption(self):
        self.api(self.agent_a).redeem(self.ent_a1.code, 5, self.point_a.id, "SHARED")
        answer = self.api(self.agent_b).redeem(self.ent_b1.code, 5, self.point_b.id, "SHARED")
        self.assertEqual(answer["balance"], 95.0)

    def test_reused_reference_with_another_payload(self):
        agent = self.api(self.agent_a)
        agent.redeem(self.ent_a1.code, 25.0, self.point_a.id, "REUSED")
        self.assertRefused(
            "reference_reused",
            agent.redeem,
            self.ent_a1.code,
            26.0,
            self.point_a.id,
            "REUSED",
            exception=UserError,
        )
        self.assertRefused(
            "reference_reused",
            agent.redeem,
            self.ent_a2.code,
            25.0,
            self.point_a.id,
            "REUSED",
            exception=UserError,
        )
        self.assertEqual(self.ent_a2.amount_redeemed, 0.0)

    def test_over_balance_message(self):
        agent = self.api(self.agent_a)
        agent.redeem(self.ent_a1.code, 60, self.point_a.id, "OB-1")
        message = self.assertRefused(
            "over_balance", agent.redeem, self.ent_a1.code, 100, self.point_a.id, "OB-2", exception=UserError
        )
        self.assertEqual(
            message,
            "[over_balance] Entitlement %s: 40.0 %s left, 100.0 %s asked."
            % (self.ent_a1.code, self.currency, self.currency),
        )
        self.assertEqual(self.ent_a1.balance, 40.0)

    def test_bad_quantities(self):
        agent = self.api(self.agent_a)
        code, point = self.ent_a1.code, self.point_a.id
        for n, bad in enumerate(
            [0, 0.0, -5, -0.01, float("nan"), float("inf"), float("-inf"), "10", True, None, [10], 10**400]
        ):
            with self.subTest(quantity=bad):
                self.assertRefused(
                    "bad_quantity", agent.redeem, code, bad, point, "Q-%s" % n, exception=ValidationError
                )
        # Below the currency's rounding: nothing to hand out.
        self.assertRefused(
            "bad_quantity", agent.redeem, code, 0.001, point, "Q-small", exception=ValidationError
        )

    def test_bad_codes(self):
        agent = self.api(self.agent_a)
        point = self.point_a.id
        self.assertRefused(
            "unknown_code", agent.redeem, ern.display(ern.generate()), 1, point, "C-1", exception=UserError
        )
        self.assertRefused(
            "bad_check_character",
            agent.redeem,
            wrong_check_character(self.ent_a1.code),
            1,
            point,
            "C-2",
            exception=ValidationError,
        )
        # An adjacent swap is caught by the check character as well.
        raw = ern.normalize(self.ent_a1.code)
        swapped = raw[1] + raw[0] + raw[2:]
        if swapped != raw:
            self.assertRefused(
                "bad_check_character", agent.redeem, swapped, 1, point, "C-3", exception=ValidationError
            )
        for n, bad in enumerate(["", "1234", "ABCD-EFGH-IJ", None, False, 123456789]):
            with self.subTest(code=bad):
                self.assertRefused(
                    "malformed_code", agent.redeem, bad, 1, point, "C-m%s" % n, exception=ValidationError
                )

    def test_bad_references(self):
        agent = self.api(self.agent_a)
        code, point = self.ent_a1.code, self.point_a.id
        for bad in ["", "   ", "x" * 65, None, False, 12, "line\nbreak", "nul\x00"]:
            with self.subTest(reference=bad):
                self.assertRefused(
                    "bad_reference", agent.redeem, code, 1, point, bad, exception=ValidationError
                )
        # 64 characters is the limit, included.
        self.assertEqual(agent.redeem(code, 1, point, "y" * 64)["balance"], 99.0)

    def test_validity_window(self):
        agent = self.api(self.agent_a)
        self.ent_a1.sudo().valid_from = self.days(1)
        self.assertRefused(
            "not_yet_valid", agent.redeem, self.ent_a1.code, 1, self.point_a.id, "V-1", exception=UserError
        )
        self.ent_a1.sudo().write({"valid_from": self.days(-10), "valid_until": self.days(-1)})
        self.assertRefused(
            "expired", agent.redeem, self.ent_a1.code, 1, self.point_a.id, "V-2", exception=UserError
        )
        # Valid on its first and last day (bounds included).
        self.ent_a1.sudo().write({"valid_from": self.today, "valid_until": self.today})
        self.assertEqual(agent.redeem(self.ent_a1.code, 1, self.point_a.id, "V-3")["balance"], 99.0)

    def test_expired_state(self):
        self.ent_a2.sudo().write({"valid_from": self.days(-10), "valid_until": self.days(-1)})
        self.env["g2p.entitlement.base"]._cron_expire()
        self.assertEqual(self.ent_a2.state, "expired")
        self.assertRefused(
            "expired",
            self.api(self.agent_a).redeem,
            self.ent_a2.code,
            1,
            self.point_a.id,
            "E-1",
            exception=UserError,
        )

    def test_not_approved(self):
        self.ent_a2.with_user(self.manager).action_cancel()
        self.assertRefused(
            "not_approved",
            self.api(self.agent_a).redeem,
            self.ent_a2.code,
            1,
            self.point_a.id,
            "N-1",
            exception=UserError,
        )

    def test_expiry_leaves_a_partly_redeemed_entitlement_to_the_closing(self):
        # Something was handed out (a real redemption): the daily expiry leaves the
        # entitlement approved, for the closing to settle as partially redeemed.
        self.api(self.agent_a).redeem(self.ent_a1.code, 5, self.point_a.id, "EXP-1")
        self.ent_a1.sudo().valid_until = fields.Date.subtract(fields.Date.today(), days=1)
        self.env["g2p.entitlement"]._cron_expire()
        self.assertEqual(self.ent_a1.state, "approved")
        self.assertEqual(self.ent_a1.amount_redeemed, 5.0)

    def test_transferred_can_be_redeemed(self):
        # No public action of the suite sets ``transferred`` (the state is OpenSPP's
        # trans2FSP, kept for entitlements coming from there): set as such data arrives.
        self.ent_a2.sudo()._set_state("transferred")
        answer = self.api(self.agent_a).redeem(self.ent_a2.code, 100, self.point_a.id, "T-1")
        self.assertEqual(answer["state"], "redeemed")

    def test_other_service_points_entitlement(self):
        # Agent A at point A with point B's entitlement.
        self.assertRefused(
            "wrong_service_point",
            self.api(self.agent_a).redeem,
            self.ent_b1.code,
            1,
            self.point_a.id,
            "W-1",
            exception=UserError,
        )
        # Even an agent of both points redeems it only at its own point.
        self.assertRefused(
            "wrong_service_point",
            self.api(self.agent_ab).redeem,
            self.ent_b1.code,
            1,
            self.point_a.id,
            "W-2",
            exception=UserError,
        )
        self.assertEqual(
            self.api(self.agent_ab).redeem(self.ent_b1.code, 1, self.point_b.id, "W-3")["balance"], 99.0
        )

    def test_service_point_the_agent_does_not_serve(self):
        self.assertRefused(
            "not_your_service_point",
            self.api(self.agent_a).redeem,
            self.ent_b1.code,
            1,
            self.point_b.id,
            "S-1",
            exception=AccessError,
        )
        missing = self.point_b.id + 1000
        self.assertRefused(
            "not_your_service_point",
            self.api(self.agent_a).redeem,
            self.ent_a1.code,
            1,
            missing,
            "S-2",
            exception=AccessError,
        )
        for bad in ["1", None, True, [self.point_a.id]]:
            with self.subTest(service_point_id=bad):
                self.assertRefused(
                    "bad_service_point",
                    self.api(self.agent_a).redeem,
                    self.ent_a1.code,
                    1,
                    bad,
                    "S-3",
                    exception=ValidationError,
                )

    def test_agent_removed_from_point_or_point_archived(self):
        self.point_a.user_ids = [(3, self.agent_a.id)]
        self.assertRefused(
            "not_your_service_point",
            self.api(self.agent_a).redeem,
            self.ent_a1.code,
            1,
            self.point_a.id,
            "X-1",
            exception=AccessError,
        )
        archived = self.env["spp.service.point"].create(
            {"name": "Closed point", "code": "RDM-C", "user_ids": [(6, 0, self.agent_b.ids)]}
        )
        archived.active = False
        self.assertRefused(
            "not_your_service_point",
            self.api(self.agent_b).redeem,
            self.ent_b1.code,
            1,
            archived.id,
            "X-2",
            exception=AccessError,
        )

    def test_archiving_a_point_with_open_entitlements_is_refused(self):
        with self.assertRaises(UserError) as caught:
            self.point_b.active = False
        self.assertIn("[open_entitlements]", caught.exception.args[0])

    def test_users_outside_the_agent_group(self):
        # In the point's users but not in the agent group: refused.
        self.point_a.user_ids = [(4, self.officer.id), (4, self.not_agent.id)]
        for user in (self.officer, self.not_agent):
            with self.subTest(user=user.login):
                self.assertRefused(
                    "not_an_agent",
                    self.api(user).redeem,
                    self.ent_a1.code,
                    1,
                    self.point_a.id,
                    "G-1",
                    exception=AccessError,
                )

    def test_service_point_copied_from_beneficiary(self):
        self.assertEqual(self.ent_a1.service_point_id, self.point_a)
        self.assertEqual(self.ent_b1.service_point_id, self.point_b)
        Entitlement = self.env["g2p.entitlement"].sudo()
        cycle = self.env["g2p.cycle"].browse(self.program.with_user(self.officer).create_new_cycle())
        created = Entitlement.create(
            [
                {"cycle_id": cycle.id, "partner_id": self.house_a1.id, "initial_amount": 5},
                {
                    "cycle_id": cycle.id,
                    "partner_id": self.house_b1.id,
                    "initial_amount": 5,
                    "service_point_id": self.point_a.id,
                },
                {
                    "cycle_id": cycle.id,
                    "partner_id": self.house_b2.id,
                    "initial_amount": 5,
                    "service_point_id": False,
                },
            ]
        )
        self.assertEqual([e.service_point_id.id for e in created[:2]], [self.point_a.id, self.point_a.id])
        self.assertFalse(created[2].service_point_id)

    def test_open_entitlements_counted_for_service_points(self):
        counts = (
            self.env["spp.service.point"].browse((self.point_a | self.point_b).ids)._count_open_entitlements()
        )
        self.assertEqual(counts, {self.point_a.id: 2, self.point_b.id: 2})
        self.api(self.agent_a).redeem(self.ent_a1.code, 100, self.point_a.id, "FULL")
        self.assertEqual(self.point_a._count_open_entitlements()[self.point_a.id], 1)
