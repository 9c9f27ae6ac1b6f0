from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install")
class TestAgentGroup(TransactionCase):
    def test_agent_is_internal_but_no_officer(self):
        agent = mail_new_test_user(
            self.env, login="agent", groups="spp_service_points.group_service_point_agent"
        )
        self.assertTrue(agent.has_group("base.group_user"))
        self.assertFalse(agent.has_group("g2p_programs_ext.group_program_officer"))
