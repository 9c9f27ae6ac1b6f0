from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import ServicePointCase


@tagged("post_install", "-at_install")
class TestAssignWizard(ServicePointCase):
    """Action > Assign service point, as a program officer."""

    def _wizard(self, partners=None, **vals):
        context = {}
        if partners is not None:
            context = {"active_model": "res.partner", "active_ids": partners.ids}
        Wizard = self.env["spp.assign.service.point.wizard"].with_user(self.officer).with_context(**context)
        return Wizard.create(dict({"service_point_id": self.point_b.id}, **vals))

    def test_assign_selected_registrants(self):
        wizard = self._wizard(self.ind_a1 | self.ind_free, include_members=False)
        self.assertEqual(wizard.assign_by, "selection")
        self.assertEqual(wizard.registrant_count, 2)
        action = wizard.action_assign()
        self.assertEqual(action["params"]["count"], 2)
        self.assertEqual((self.ind_a1 | self.ind_free).service_point_id, self.point_b)
        self.assertEqual(self.ind_a2.service_point_id, self.point_a)

    def test_assign_selected_household_with_its_members(self):
        wizard = self._wizard(self.house_a)
        self.assertEqual(wizard.registrant_count, 3)
        wizard.action_assign()
        self.assertEqual((self.house_a | self.ind_a1 | self.ind_a2).service_point_id, self.point_b)
        # Agent A lost them at once, agent B has them.
        Partner = self.env["res.partner"]
        self.assertFalse(Partner.with_user(self.agent_a).search([("id", "in", self.registrants.ids)]))
        self.assertEqual(
            Partner.with_user(self.agent_b).search([("id", "in", self.registrants.ids)]),
            self.house_a | self.ind_a1 | self.ind_a2 | self.house_b | self.ind_b1,
        )

    def test_assign_by_area_with_sub_areas_and_members(self):
        wizard = self._wizard(assign_by="area", area_id=self.north.id)
        # North > Alpha: House A and its two members, and Dan Free (an individual of Alpha).
        self.assertEqual(wizard.registrant_count, 4)
        self.assertEqual(wizard.action_assign()["params"]["count"], 4)
        self.assertEqual(
            (self.house_a | self.ind_a1 | self.ind_a2 | self.ind_free).service_point_id, self.point_b
        )
        self.assertEqual(self.house_b.service_point_id, self.point_b)

    def test_assign_by_area_without_members(self):
        self._wizard(assign_by="area", area_id=self.alpha.id, include_members=False).action_assign()
        self.assertEqual((self.house_a | self.ind_free).service_point_id, self.point_b)
        self.assertEqual((self.ind_a1 | self.ind_a2).service_point_id, self.point_a)

    def test_bad_input(self):
        with self.assertRaisesRegex(UserError, r"^\[not_registrant\] Plain Contact"):
            self._wizard(self.contact | self.ind_a1).action_assign()
        with self.assertRaisesRegex(UserError, r"^\[nothing_to_assign\]"):
            self._wizard(self.env["res.partner"], assign_by="selection").action_assign()
        with self.assertRaisesRegex(UserError, r"^\[no_area\]"):
            self._wizard(assign_by="area").action_assign()
        empty = self.env["spp.area"].create({"name": "Empty", "code": "KE-EM"})
        with self.assertRaisesRegex(UserError, r"^\[nothing_to_assign\]"):
            self._wizard(assign_by="area", area_id=empty.id).action_assign()
