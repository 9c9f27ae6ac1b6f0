from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install")
class TestRoles(TransactionCase):
    def test_manager_implies_the_three_roles(self):
        manager = mail_new_test_user(self.env, login="pm", groups="g2p_programs_ext.group_program_manager")
        for xmlid in (
            "g2p_programs_ext.group_program_officer",
            "g2p_programs_ext.group_program_validator",
            "g2p_programs_ext.group_cycle_approver",
            "base.group_user",
        ):
            self.assertTrue(manager.has_group(xmlid), xmlid)

    def test_officer_is_not_a_validator(self):
        officer = mail_new_test_user(self.env, login="po", groups="g2p_programs_ext.group_program_officer")
        self.assertTrue(officer.has_group("base.group_user"))
        self.assertFalse(officer.has_group("g2p_programs_ext.group_program_validator"))
        self.assertFalse(officer.has_group("g2p_programs_ext.group_cycle_approver"))
