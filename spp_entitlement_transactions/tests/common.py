import unittest
from datetime import date, timedelta

import odoo
from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.tests import TransactionCase
from odoo.tests.common import get_db_name

AGENT = "spp_service_points.group_service_point_agent"
OFFICER = "g2p_programs_ext.group_program_officer"
VALIDATOR = "g2p_programs_ext.group_program_validator"
APPROVER = "g2p_programs_ext.group_cycle_approver"
MANAGER = "g2p_programs_ext.group_program_manager"


class RedemptionCase(TransactionCase):
    """Two service points and their agents; a cash program whose approved cycle gives
    each of four households 100.00, collected at their service point:

    - point A (``point_a``, agents ``agent_a`` and ``agent_ab``): households ``house_a1``
      and ``house_a2`` (and individual ``ind_a1``, member of ``house_a1``);
    - point B (``point_b``, agents ``agent_b`` and ``agent_ab``): households ``house_b1``
      and ``house_b2``.

    ``ent_a1`` ... ``ent_b2`` are their approved cash entitlements. Every call is made as
    a real user with real groups (``self.api(user)``).
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.today = date.today()
        cls.agent_a = mail_new_test_user(cls.env, login="rdm_agent_a", groups=AGENT, name="Agent A")
        cls.agent_b = mail_new_test_user(cls.env, login="rdm_agent_b", groups=AGENT, name="Agent B")
        cls.agent_ab = mail_new_test_user(cls.env, login="rdm_agent_ab", groups=AGENT, name="Agent A and B")
        cls.not_agent = mail_new_test_user(
            cls.env, login="rdm_internal", groups="base.group_user", name="Clerk"
        )
        cls.officer = mail_new_test_user(cls.env, login="rdm_officer", groups=OFFICER, name="Officer")
        cls.validator = mail_new_test_user(cls.env, login="rdm_validator", groups=VALIDATOR, name="Validator")
        cls.approver = mail_new_test_user(cls.env, login="rdm_approver", groups=APPROVER, name="Approver")
        cls.manager = mail_new_test_user(cls.env, login="rdm_manager", groups=MANAGER, name="Manager")

        Point = cls.env["spp.service.point"]
        cls.point_a = Point.create(
            {"name": "Point A", "code": "RDM-A", "user_ids": [(6, 0, (cls.agent_a | cls.agent_ab).ids)]}
        )
        cls.point_b = Point.create(
            {"name": "Point B", "code": "RDM-B", "user_ids": [(6, 0, (cls.agent_b | cls.agent_ab).ids)]}
        )

        Partner = cls.env["res.partner"]

        def household(name, point):
            return Partner.create(
                {"name": name, "is_registrant": True, "is_group": True, "service_point_id": point.id}
            )

        cls.house_a1 = household("House A1", cls.point_a)
        cls.house_a2 = household("House A2", cls.point_a)
        cls.house_b1 = household("House B1", cls.point_b)
        cls.house_b2 = household("House B2", cls.point_b)
        cls.households = cls.house_a1 | cls.house_a2 | cls.house_b1 | cls.house_b2
        cls.ind_a1 = Partner.create(
            {"name": "Ann A1", "is_registrant": True, "service_point_id": cls.point_a.id}
        )
        cls.env["g2p.group.membership"].create({"group_id": cls.house_a1.id, "individual_id": cls.ind_a1.id})

        cls.validation_group = cls.env["res.groups"].create({"name": "Redemption test validators"})
        cls.validator.groups_id = [(4, cls.validation_group.id)]
        cls.program = (
            cls.env["g2p.program"]
            .with_user(cls.manager)
            .create(
                {
                    "name": "Cash for redemption",
                    "eligibility_domain": "[('id', 'in', %s)]" % cls.households.ids,
                }
            )
        )
        cls.env["g2p.program.entitlement.manager.cash"].with_user(cls.manager).create(
            {
                "program_id": cls.program.id,
                "validation_group_id": cls.validation_group.id,
                "item_ids": [(0, 0, {"amount": 100.0})],
            }
        )
        cls.program.with_user(cls.officer).enroll_eligible_registrants()
        cls.cycle = cls.env["g2p.cycle"].browse(cls.program.with_user(cls.officer).create_new_cycle())
        cls.cycle.with_user(cls.officer).prepare_entitlement()
        cls.cycle.with_user(cls.officer).to_approve()
        cls.cycle.with_user(cls.approver).approve()
        cls.cycle.with_user(cls.validator).validate_entitlement()
        by_partner = {e.partner_id: e for e in cls.cycle.entitlement_ids}
        cls.ent_a1 = by_partner[cls.house_a1]
        cls.ent_a2 = by_partner[cls.house_a2]
        cls.ent_b1 = by_partner[cls.house_b1]
        cls.ent_b2 = by_partner[cls.house_b2]
        cls.currency = cls.program.currency_id.name
        cls.Transaction = cls.env["spp.entitlement.transaction"]

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------
    def api(self, user):
        return self.env["spp.entitlement.transaction"].with_user(user)

    def transactions(self, entitlement=None):
        domain = [("entitlement_id", "=", entitlement.id)] if entitlement else []
        return self.env["spp.entitlement.transaction"].sudo().search(domain)

    def snapshot(self):
        """What must stay the same when a call is refused: every balance and state, and
        the number of transactions."""
        self.env.invalidate_all()
        entitlements = self.cycle.entitlement_ids
        return (
            self.env["spp.entitlement.transaction"].sudo().search_count([]),
            [(e.id, e.amount_redeemed, e.balance, e.state) for e in entitlements],
        )

    def assertRefused(self, code, call, *args, exception=Exception):
        """``call(*args)`` is refused with a message starting with ``[code]`` and changes nothing."""
        before = self.snapshot()
        with self.assertRaises(exception) as caught:
            call(*args)
        message = caught.exception.args[0]
        self.assertTrue(message.startswith("[%s] " % code), "expected [%s], got: %s" % (code, message))
        self.assertEqual(self.snapshot(), before, "a refused call changed nothing")
        return message

    @classmethod
    def days(cls, n):
        return cls.today + timedelta(days=n)


class InkindRedemptionCase(RedemptionCase):
    """Also an in-kind program: 10 kg of rice for ``house_a1`` (at point A) and
    ``house_b1`` (at point B), with stock managed (100 kg in the company's warehouse).
    ``ink_a1`` and ``ink_b1`` are their approved in-kind entitlements.

    Needs ``spp_entitlement_in_kind``, which this addon does not depend on: the tests of
    the suite that span cash and in-kind (access matrix, bad input, dashboard, closing)
    run post-install in a database with all five addons, and are skipped elsewhere."""

    @classmethod
    def setUpClass(cls):
        if "g2p.entitlement.inkind" not in odoo.registry(get_db_name()):
            raise unittest.SkipTest("spp_entitlement_in_kind is not installed")
        super().setUpClass()
        cls.kg = cls.env.ref("uom.product_uom_kgm")
        cls.rice = cls.env["product.product"].create(
            {"name": "Rice", "detailed_type": "product", "uom_id": cls.kg.id, "uom_po_id": cls.kg.id}
        )
        cls.warehouse = cls.env["stock.warehouse"].search([("company_id", "=", cls.env.company.id)], limit=1)
        cls.env["stock.quant"]._update_available_quantity(cls.rice, cls.warehouse.lot_stock_id, 100.0)
        cls.inkind_program = (
            cls.env["g2p.program"]
            .with_user(cls.manager)
            .create(
                {
                    "name": "Rice for redemption",
                    "eligibility_domain": "[('id', 'in', %s)]" % (cls.house_a1 | cls.house_b1).ids,
                }
            )
        )
        cls.env["g2p.program.entitlement.manager.inkind"].with_user(cls.manager).create(
            {
                "program_id": cls.inkind_program.id,
                "validation_group_id": cls.validation_group.id,
                "warehouse_id": cls.warehouse.id,
                "item_ids": [(0, 0, {"product_id": cls.rice.id, "quantity": 10.0, "uom_id": cls.kg.id})],
            }
        )
        cls.inkind_program.with_user(cls.officer).enroll_eligible_registrants()
        cls.inkind_cycle = cls.env["g2p.cycle"].browse(
            cls.inkind_program.with_user(cls.officer).create_new_cycle()
        )
        cls.inkind_cycle.with_user(cls.officer).prepare_entitlement()
        cls.inkind_cycle.with_user(cls.officer).to_approve()
        cls.inkind_cycle.with_user(cls.approver).approve()
        cls.inkind_cycle.with_user(cls.validator).validate_entitlement()
        by_partner = {e.partner_id: e for e in cls.inkind_cycle.inkind_entitlement_ids}
        cls.ink_a1 = by_partner[cls.house_a1]
        cls.ink_b1 = by_partner[cls.house_b1]
