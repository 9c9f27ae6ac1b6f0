from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from .common import MANAGER, ServicePointCase


@tagged("post_install", "-at_install")
class TestAgentUsers(ServicePointCase):
    """Creating agent users from a point, and API keys for their devices."""

    def _agent_wizard(self, user, **vals):
        return (
            self.env["spp.service.point.agent.wizard"]
            .with_user(user)
            .create(dict({"service_point_id": self.point_b.id, "name": "Eve", "login": "spp_eve"}, **vals))
        )

    def test_create_agent_from_point(self):
        action = self._agent_wizard(self.manager).action_create_agent()
        user = self.env["res.users"].browse(action["res_id"])
        self.assertEqual(user.login, "spp_eve")
        self.assertTrue(user.has_group("spp_service_points.group_service_point_agent"))
        self.assertTrue(user.has_group("base.group_user"))
        self.assertFalse(user.has_group("g2p_programs_ext.group_program_officer"))
        self.assertEqual(user.service_point_ids, self.point_b)
        self.assertIn(user, self.point_b.user_ids)
        self.assertEqual(self.env["spp.service.point"].with_user(user).search([]), self.point_b)

    def test_create_agent_refused(self):
        with self.assertRaisesRegex(UserError, r"^\[duplicate_login\] Login spp_agent_a"):
            self._agent_wizard(self.manager, login="spp_agent_a").action_create_agent()
        manager_only = mail_new_test_user(self.env, login="spp_pm_only", groups=MANAGER)
        with self.assertRaisesRegex(AccessError, r"^\[no_user_rights\]"):
            self._agent_wizard(manager_only).action_create_agent()

    def test_device_api_key(self):
        admin = self.env.ref("base.user_admin")
        key = self.agent_a.with_user(admin).action_generate_api_key_for_device("Tablet 1")
        self.assertIsInstance(key, str)
        ApiKeys = self.env["res.users.apikeys"]
        self.assertEqual(ApiKeys._check_credentials(scope="rpc", key=key), self.agent_a.id)
        self.assertFalse(
            ApiKeys._check_credentials(scope="rpc", key=key[:-1] + ("0" if key[-1] != "0" else "1"))
        )
        tablet = ApiKeys.search([("user_id", "=", self.agent_a.id)])
        self.assertEqual(tablet.mapped("name"), ["Tablet 1"])
        # Revoked on its own; another device's key keeps working.
        key2 = self.agent_a.with_user(admin).action_generate_api_key_for_device("Phone 2")
        tablet.with_user(admin)._remove()
        self.assertFalse(ApiKeys._check_credentials(scope="rpc", key=key))
        self.assertEqual(ApiKeys._check_credentials(scope="rpc", key=key2), self.agent_a.id)

    def test_device_api_key_refused(self):
        admin = self.env.ref("base.user_admin")
        with self.assertRaisesRegex(AccessError, r"^\[not_system\]"):
            self.agent_a.with_user(self.manager).action_generate_api_key_for_device("Tablet")
        with self.assertRaisesRegex(AccessError, r"^\[not_system\]"):
            self.agent_a.with_user(self.agent_a).action_generate_api_key_for_device("Tablet")
        with self.assertRaisesRegex(UserError, r"^\[not_an_agent\] Officer"):
            self.officer.with_user(admin).action_generate_api_key_for_device("Tablet")
        with self.assertRaisesRegex(UserError, r"^\[key_name\]"):
            self.agent_a.with_user(admin).action_generate_api_key_for_device("  ")
