from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import Form

from .common import G2PCommon


class TestProgramCreateWizard(G2PCommon):
    """The program creation wizard, used by a program manager (readme/USAGE.md, Roles)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.big, _m = cls.make_household("Wizard big", [{}, {}, {}])
        cls.small, _m = cls.make_household("Wizard small", [{}])
        cls.ids_domain = "[('id', 'in', %s)]" % (cls.big | cls.small).ids

    def wizard_form(self):
        return Form(self.env["g2p.program.create.wizard"].with_user(self.manager))

    def test_live_count_domain_then_cel(self):
        form = self.wizard_form()
        form.name = "Wizard cash"
        form.eligibility_domain = self.ids_domain
        self.assertEqual(form.domain_count, 2)
        self.assertEqual(form.eligible_count, 2)
        form.eligibility_expression = "me.household_size >= 2"
        self.assertEqual(form.domain_count, 2, "the domain alone keeps both households")
        self.assertEqual(form.eligible_count, 1, "the CEL expression keeps the household of 3")
        form.target_type = "individual"
        self.assertEqual(form.domain_count, 0, "the domain names households only")

    def test_wrong_expression_shown_live_and_refused(self):
        form = self.wizard_form()
        form.name = "Wizard bad CEL"
        form.eligibility_expression = "me.household_size >="
        self.assertIn("[invalid_expression]", form.eligibility_message)
        self.assertEqual(form.eligible_count, 0)
        with self.assertRaisesRegex(ValidationError, r"\[invalid_expression\].*line 1"):
            form.save()

    def test_creates_program_and_cash_manager(self):
        form = self.wizard_form()
        form.name = "Wizard cash"
        form.eligibility_domain = self.ids_domain
        form.eligibility_expression = "me.household_size >= 2"
        form.cycle_duration = 14
        form.max_amount = 900.0
        with form.cash_item_ids.new() as item:
            item.amount = 300.0
            item.multiplier_field = "household_size"
        wizard = form.save()
        action = wizard.action_create_program()
        program = self.env["g2p.program"].browse(action["res_id"])
        self.assertEqual((action["res_model"], action["view_mode"]), ("g2p.program", "form"))
        self.assertEqual(program.name, "Wizard cash")
        self.assertEqual(program.cycle_duration, 14)
        self.assertEqual(program.eligibility_expression, "me.household_size >= 2")
        manager = program.entitlement_manager_cash_ids
        self.assertEqual(len(manager), 1)
        self.assertEqual(
            manager.validation_group_id, self.env.ref("g2p_programs_ext.group_program_validator")
        )
        self.assertEqual(manager.max_amount, 900.0)
        self.assertEqual(manager.item_ids.mapped("amount"), [300.0])
        self.assertEqual(manager.item_ids.multiplier_field, "household_size")
        # the program works: the officer enrolls the one eligible household
        self.assertEqual(program.with_user(self.officer).enroll_eligible_registrants(), 1)

    def test_no_items_refused(self):
        form = self.wizard_form()
        form.name = "Wizard empty"
        wizard = form.save()
        with self.assertRaisesRegex(UserError, r"\[no_items\]"):
            wizard.action_create_program()
        self.assertFalse(self.env["g2p.program"].search([("name", "=", "Wizard empty")]))

    def test_managers_only(self):
        for user in (self.officer, self.validator, self.approver):
            with self.assertRaises(AccessError):
                self.env["g2p.program.create.wizard"].with_user(user).create({"name": "Not mine"})
