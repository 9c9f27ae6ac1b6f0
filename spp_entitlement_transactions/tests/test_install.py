from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install")
class TestInstall(TransactionCase):
    def test_installed_with_its_dependencies(self):
        module = self.env["ir.module.module"].search([("name", "=", "spp_entitlement_transactions")])
        self.assertEqual(module.state, "installed")
        deps = module.dependencies_id.mapped("depend_id")
        self.assertTrue(deps, "the addon declares its dependencies")
        self.assertEqual(set(deps.mapped("state")), {"installed"})
