from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import ServicePointCase


@tagged("post_install", "-at_install")
class TestEntitlementServicePoint(ServicePointCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        program = cls.env["g2p.program"].create(
            {"name": "SP cash", "eligibility_domain": "[('id', 'in', %s)]" % (cls.house_a | cls.house_b).ids}
        )
        cls.env["g2p.program.entitlement.manager.cash"].create(
            {
                "program_id": program.id,
                "validation_group_id": cls.env.ref("g2p_programs_ext.group_program_validator").id,
                "item_ids": [(0, 0, {"amount": 25.0})],
            }
        )
        program.enroll_eligible_registrants()
        cls.cycle = cls.env["g2p.cycle"].browse(program.create_new_cycle())
        cls.cycle.prepare_entitlement()
        cls.entitlements = cls.cycle.entitlement_ids

    def test_entitlement_takes_the_beneficiary_service_point(self):
        by_partner = {e.partner_id: e.service_point_id for e in self.entitlements}
        self.assertEqual(by_partner, {self.house_a: self.point_a, self.house_b: self.point_b})

    def test_agent_sees_only_own_entitlements(self):
        Entitlement = self.env["g2p.entitlement"].with_user(self.agent_a)
        self.assertEqual(Entitlement.search([("cycle_id", "=", self.cycle.id)]).partner_id, self.house_a)
        self.assertEqual(Entitlement.search_count([("cycle_id", "=", self.cycle.id)]), 1)
        self.assertEqual(
            self.env["g2p.entitlement"]
            .with_user(self.officer_agent)
            .search_count([("cycle_id", "=", self.cycle.id)]),
            2,
        )

    def test_archiving_a_point_with_open_entitlements_is_refused(self):
        self.cycle.to_approve()
        self.cycle.approve()
        self.cycle.validate_entitlement()
        self.assertEqual(self.point_a._count_open_entitlements(), {self.point_a.id: 1})
        with self.assertRaisesRegex(UserError, r"\[open_entitlements\].*1 approved"):
            self.point_a.action_archive()
