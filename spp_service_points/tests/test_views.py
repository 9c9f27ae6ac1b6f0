from odoo.tests import tagged

from .common import ServicePointCase


@tagged("post_install", "-at_install")
class TestViews(ServicePointCase):
    """The web client's calls, as each role: views load and their fields can be read."""

    def _open(self, user, model, records, view_xmlid=None):
        Model = self.env[model].with_user(user)
        view_id = self.env.ref(view_xmlid).id if view_xmlid else False
        views = Model.get_views([(view_id, "tree"), (False, "form"), (False, "search")])
        fnames = [f for f in views["models"][model] if f in Model._fields]
        return records.with_user(user).read(fnames)

    def test_agent_opens_own_point_and_registrants(self):
        rows = self._open(self.agent_a, "spp.service.point", self.point_a)
        self.assertEqual(rows[0]["code"], "SP-A")
        rows = self._open(self.agent_a, "res.partner", self.ind_a1 | self.contact)
        self.assertEqual(rows[0]["service_point_id"][0], self.point_a.id)
        self.assertNotIn("has_disability", rows[0])
        self.assertNotIn("birthdate", rows[0])

    def test_officer_opens_points_map_list_and_registrants(self):
        rows = self._open(
            self.officer,
            "spp.service.point",
            self.point_a | self.point_b,
            "spp_service_points.spp_service_point_view_tree_map",
        )
        self.assertEqual([r["beneficiary_count"] for r in rows], [3, 2])
        rows = self._open(self.officer, "res.partner", self.ind_a1)
        self.assertEqual(rows[0]["area_id"], False)

    def test_manager_opens_users_and_areas(self):
        users = (
            self.env["res.users"]
            .with_user(self.manager)
            .get_views([(self.env.ref("base.view_users_form").id, "form")])
        )
        self.assertIn("service_point_ids", users["models"]["res.users"])
        self.assertEqual(self.agent_a.with_user(self.manager).service_point_ids, self.point_a)
        self._open(self.manager, "spp.area", self.north | self.alpha)
        wizard = self.env["spp.assign.service.point.wizard"].with_user(self.officer)
        self.assertIn("service_point_id", wizard.get_views([(False, "form")])["models"][wizard._name])
