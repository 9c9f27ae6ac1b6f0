from odoo.exceptions import AccessError
from odoo.tests import tagged

from .common import ServicePointCase


@tagged("post_install", "-at_install")
class TestServicePointAccess(ServicePointCase):
    """Agents see their own service points through every read path; the back office sees all."""

    def test_agent_sees_own_points_only(self):
        Point = self.env["spp.service.point"].with_user(self.agent_a)
        self.assertEqual(Point.search([]), self.point_a)
        self.assertEqual(Point.search_count([]), 1)
        self.assertEqual(Point.search([("code", "=", "SP-B")]), Point.browse())
        groups = Point.read_group([], ["area_id"], ["area_id"])
        self.assertEqual([(g["area_id"][0], g["area_id_count"]) for g in groups], [(self.alpha.id, 1)])
        self.assertEqual([pid for pid, _name in Point.name_search("S")], [self.point_a.id])
        self.assertEqual(Point.name_search("SP-B"), [])
        self.assertEqual(Point.search_read([], ["code"]), [{"id": self.point_a.id, "code": "SP-A"}])
        with self.assertRaises(AccessError):
            Point.browse(self.point_b.id).read(["name"])

    def test_agent_sees_own_points_through_related_fields(self):
        # A registrant of point B is out of reach, so is point B through a path.
        Partner = self.env["res.partner"].with_user(self.agent_a)
        self.assertFalse(Partner.search([("service_point_id.code", "=", "SP-B")]))
        self.assertEqual(
            Partner.search([("service_point_id.code", "=", "SP-A"), ("is_group", "=", True)]), self.house_a
        )
        self.assertEqual(self.ind_a1.with_user(self.agent_a).service_point_id.code, "SP-A")

    def test_agent_loses_access_at_once_when_removed(self):
        Point = self.env["spp.service.point"].with_user(self.agent_a)
        Partner = self.env["res.partner"].with_user(self.agent_a)
        self.assertEqual(Point.search([]), self.point_a)
        self.assertTrue(Partner.search([("id", "=", self.ind_a1.id)]))

        self.point_a.with_user(self.manager).write({"user_ids": [(3, self.agent_a.id)]})

        self.assertFalse(Point.search([]))
        self.assertEqual(Point.search_count([]), 0)
        self.assertFalse(Partner.search([("id", "=", self.ind_a1.id)]))
        with self.assertRaises(AccessError):
            self.ind_a1.with_user(self.agent_a).read(["name"])

        # ... and gains it at once, here from the user's side of the relation.
        self.agent_a.with_user(self.manager).write({"service_point_ids": [(4, self.point_b.id)]})
        self.assertEqual(Point.search([]), self.point_b)
        self.assertEqual(Partner.search([("id", "=", self.ind_b1.id)]), self.ind_b1)

    def test_service_point_ids_is_the_inverse_of_user_ids(self):
        self.assertEqual(self.agent_a.service_point_ids, self.point_a)
        self.assertEqual(self.officer_agent.service_point_ids, self.point_a)
        self.assertEqual(self.agent_b.service_point_ids, self.point_b)

    def test_officer_sees_all(self):
        Point = self.env["spp.service.point"].with_user(self.officer)
        points = self.point_a | self.point_b
        self.assertEqual(Point.search([("id", "in", points.ids)]), points)
        self.assertEqual(Point.search_count([("id", "in", points.ids)]), 2)
        Partner = self.env["res.partner"].with_user(self.officer)
        self.assertEqual(Partner.search([("id", "in", self.registrants.ids)]), self.registrants)

    def test_officer_who_is_also_an_agent_sees_all(self):
        # Rules of different groups are OR-ed: the officers' rule opens what the agents' closes.
        Point = self.env["spp.service.point"].with_user(self.officer_agent)
        points = self.point_a | self.point_b
        self.assertEqual(Point.search([("id", "in", points.ids)]), points)
        Partner = self.env["res.partner"].with_user(self.officer_agent)
        self.assertEqual(Partner.search([("id", "in", self.registrants.ids)]), self.registrants)

    def test_agent_cannot_change_points(self):
        with self.assertRaises(AccessError):
            self.point_a.with_user(self.agent_a).write({"phone": "+254 700 000000"})
        with self.assertRaises(AccessError):
            self.env["spp.service.point"].with_user(self.agent_a).create({"name": "Mine", "code": "SP-X"})
