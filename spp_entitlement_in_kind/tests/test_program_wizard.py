from odoo.tests import Form

from .common import InkindCommon


class TestProgramWizardInkind(InkindCommon):
    """The program wizard with in-kind goods and cash (a basket), as a program manager."""

    def test_basket_program_in_one_step(self):
        form = Form(self.env["g2p.program.create.wizard"].with_user(self.manager))
        form.name = "Wizard basket"
        form.eligibility_domain = "[('id', 'in', %s)]" % self.households.ids
        form.eligibility_expression = "me.household_size >= 2"
        self.assertEqual((form.domain_count, form.eligible_count), (4, 3), "h2 has one member")
        form.validation_group_id = self.validation_group
        form.warehouse_id = self.wh_north
        form.manage_inventory = True
        with form.inkind_item_ids.new() as item:
            item.product_id = self.rice
            self.assertEqual(item.uom_id, self.kg, "the product's unit by default")
            item.uom_id = self.gram
            item.quantity = 2000.0
        with form.inkind_item_ids.new() as item:
            item.product_id = self.oil
            item.quantity = 1.0
        with form.cash_item_ids.new() as item:
            item.amount = 25.0
        action = form.save().action_create_program()
        program = self.env["g2p.program"].browse(action["res_id"])
        inkind = program.entitlement_manager_inkind_ids
        self.assertEqual(len(inkind), 1)
        self.assertEqual(len(program.entitlement_manager_cash_ids), 1)
        self.assertEqual(inkind.validation_group_id, self.validation_group)
        self.assertEqual(program.entitlement_manager_cash_ids.validation_group_id, self.validation_group)
        self.assertEqual(inkind.warehouse_id, self.wh_north)
        self.assertTrue(inkind.manage_inventory)
        self.assertEqual(
            [(i.product_id, i.quantity, i.uom_id) for i in inkind.item_ids],
            [(self.rice, 2000.0, self.gram), (self.oil, 1.0, self.litre)],
        )
        # and it runs: 3 households x (2 goods + cash) once approved
        program.with_user(self.officer).enroll_eligible_registrants()
        cycle = self.approved_cycle(program)
        self.assertEqual(len(cycle.inkind_entitlement_ids.filtered(lambda e: e.state == "approved")), 6)
        self.assertEqual(len(cycle.entitlement_ids.filtered(lambda e: e.state == "approved")), 3)
