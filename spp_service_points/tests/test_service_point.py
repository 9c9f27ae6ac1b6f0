from odoo.exceptions import ValidationError
from odoo.tests import tagged

from .common import ServicePointCase


@tagged("post_install", "-at_install")
class TestServicePoint(ServicePointCase):
    def test_duplicate_code_names_the_other_point(self):
        Point = self.env["spp.service.point"].with_user(self.manager)
        with self.assertRaisesRegex(ValidationError, r"^\[duplicate_code\] Code SP-A .*Alpha Health Centre"):
            Point.create({"name": "Another", "code": "SP-A"})
        with self.assertRaisesRegex(ValidationError, r"^\[duplicate_code\] Code SP-A .*Alpha Health Centre"):
            Point.create({"name": "Another", "code": "  SP-A "})
        with self.assertRaisesRegex(ValidationError, r"^\[duplicate_code\] Code SP-B .*South Shop"):
            self.point_a.with_user(self.manager).write({"code": "SP-B"})
        with self.assertRaisesRegex(
            ValidationError, r"^\[duplicate_code\] Code\(s\) SP-Z appear more than once"
        ):
            Point.create([{"name": "Z1", "code": "SP-Z"}, {"name": "Z2", "code": "SP-Z"}])

    def test_duplicate_code_of_an_archived_point(self):
        self.point_b.with_user(self.manager).action_archive()
        with self.assertRaisesRegex(ValidationError, r"South Shop \(.*, archived\)"):
            self.env["spp.service.point"].with_user(self.manager).create({"name": "New", "code": "SP-B"})

    def test_code_can_be_kept_on_write(self):
        self.point_a.with_user(self.manager).write({"code": "SP-A", "phone": "+254 1"})
        self.assertEqual(self.point_a.code, "SP-A")

    def test_archive_without_open_entitlements(self):
        """This addon knows no entitlement: the hook counts 0 for every point, so
        archiving goes through; the entitlement addons extend the hook (and test the refusal)."""
        points = self.point_a | self.point_b
        self.assertEqual(points._count_open_entitlements(), {self.point_a.id: 0, self.point_b.id: 0})
        points.with_user(self.manager).action_archive()
        self.assertFalse(self.point_a.active)
        self.assertFalse(self.point_b.active)
        points.with_user(self.manager).action_unarchive()
        self.assertTrue(self.point_a.active)

    def test_display_name_and_search_by_code(self):
        self.assertEqual(self.point_a.display_name, "[SP-A] Alpha Health Centre")
        Point = self.env["spp.service.point"].with_user(self.officer)
        self.assertEqual([pid for pid, _n in Point.name_search("SP-B")], [self.point_b.id])
        self.assertEqual(Point.search([("area_id", "child_of", self.north.id)]), self.point_a)

    def test_beneficiary_counts(self):
        points = (self.point_a | self.point_b).with_user(self.officer)
        self.assertEqual(points.mapped("beneficiary_count"), [3, 2])
        self.assertEqual(points.mapped("household_count"), [1, 1])
        # An agent counts what they may read: their own point's registrants.
        self.assertEqual(self.point_a.with_user(self.agent_a).beneficiary_count, 3)

    def test_view_beneficiaries(self):
        action = self.point_a.with_user(self.officer).action_view_beneficiaries()
        partners = self.env["res.partner"].with_user(self.officer).search(action["domain"])
        self.assertEqual(partners, self.house_a | self.ind_a1 | self.ind_a2)

    def test_areas_nest(self):
        self.assertEqual(self.alpha.complete_name, "North / Alpha")
        with self.assertRaisesRegex(ValidationError, r"^\[recursive_area\]"):
            self.north.parent_id = self.alpha
