from odoo.tests import tagged

from .common import ServicePointCase


@tagged("post_install", "-at_install")
class TestEntitlementArea(ServicePointCase):
    """Entitlements keep the area of their beneficiary (else of its service point), set
    at generation in bulk; the assignment wizard opened from an entitlement list moves
    the entitlements that are not approved yet."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # ind_b1 has no area of its own: its entitlement takes point B's (South).
        partners = cls.house_a | cls.house_b | cls.ind_b1 | cls.ind_free
        cls.program = cls.env["g2p.program"].create(
            {"name": "Area cash", "eligibility_domain": "[('id', 'in', %s)]" % partners.ids}
        )
        cls.env["g2p.program.entitlement.manager.cash"].create(
            {
                "program_id": cls.program.id,
                "validation_group_id": cls.env.ref("g2p_programs_ext.group_program_validator").id,
                "item_ids": [(0, 0, {"amount": 25.0})],
            }
        )
        # every registrant type: enrolment by domain only
        cls.env["g2p.program.membership"].create(
            [{"program_id": cls.program.id, "partner_id": p.id, "state": "enrolled"} for p in partners]
        )
        cls.cycle = cls.env["g2p.cycle"].browse(cls.program.with_user(cls.officer).create_new_cycle())
        cls.cycle.with_user(cls.officer).prepare_entitlement()
        cls.entitlements = cls.cycle.entitlement_ids

    def test_generation_fills_area_from_beneficiary_then_service_point(self):
        areas = {e.partner_id: e.area_id for e in self.entitlements}
        self.assertEqual(
            areas,
            {
                self.house_a: self.alpha,  # its own area
                self.house_b: self.south,
                self.ind_b1: self.south,  # no area: point B's
                self.ind_free: self.alpha,  # no point: its own area
            },
        )
        # Readable and searchable by area (with sub-areas) by the officer.
        Entitlement = self.env["g2p.entitlement"].with_user(self.officer)
        north = Entitlement.search([("cycle_id", "=", self.cycle.id), ("area_id", "child_of", self.north.id)])
        self.assertEqual(north.partner_id, self.house_a | self.ind_free)

    def test_create_keeps_a_given_area(self):
        entitlement = (
            self.env["g2p.entitlement"]
            .sudo()
            .create(
                {
                    "partner_id": self.ind_a1.id,
                    "cycle_id": self.cycle.id,
                    "initial_amount": 5.0,
                    "area_id": self.south.id,
                }
            )
        )
        self.assertEqual(entitlement.area_id, self.south)
        self.assertEqual(entitlement.service_point_id, self.point_a)

    def test_assign_wizard_from_entitlement_list_moves_open_entitlements(self):
        ent_a = self.entitlements.filtered(lambda e: e.partner_id == self.house_a)
        ent_free = self.entitlements.filtered(lambda e: e.partner_id == self.ind_free)
        selected = ent_a | ent_free
        wizard = (
            self.env["spp.assign.service.point.wizard"]
            .with_user(self.officer)
            .with_context(active_model="g2p.entitlement", active_ids=selected.ids)
            .create({"service_point_id": self.point_b.id, "include_members": False})
        )
        self.assertEqual(wizard.assign_by, "selection")
        self.assertEqual(wizard.partner_ids, self.house_a | self.ind_free)
        self.assertEqual(wizard.entitlement_count, 2)
        messages_before = len(self.cycle.message_ids)
        action = wizard.action_assign()
        self.assertEqual(action["params"]["count"], 2)
        self.assertIn("2 entitlement(s) moved", action["params"]["message"])
        self.assertEqual(selected.service_point_id, self.point_b)
        self.assertEqual((self.house_a | self.ind_free).service_point_id, self.point_b)
        # one message on the cycle for the batch
        self.cycle.invalidate_recordset(["message_ids"])
        self.assertEqual(len(self.cycle.message_ids), messages_before + 1)
        self.assertIn("Moved to service point", self.cycle.message_ids[0].body)

    def test_assign_wizard_leaves_approved_entitlements(self):
        self.cycle.to_approve()
        self.cycle.approve()
        self.cycle.validate_entitlement()
        ent_a = self.entitlements.filtered(lambda e: e.partner_id == self.house_a)
        wizard = (
            self.env["spp.assign.service.point.wizard"]
            .with_user(self.officer)
            .with_context(active_model="g2p.entitlement", active_ids=ent_a.ids)
            .create({"service_point_id": self.point_b.id, "include_members": False})
        )
        self.assertEqual(wizard.entitlement_count, 0)
        wizard.action_assign()
        self.assertEqual(ent_a.service_point_id, self.point_a, "an approved entitlement keeps its point")
        self.assertEqual(self.house_a.service_point_id, self.point_b, "the registrant's default changed")
