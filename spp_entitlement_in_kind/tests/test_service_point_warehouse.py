from odoo.addons.spp_service_points.tests.common import ServicePointCase
from odoo.exceptions import UserError
from odoo.tests import tagged


@tagged("post_install", "-at_install")
class TestServicePointWarehouse(ServicePointCase):
    """The warehouse of a service point (added by this addon: spp_service_points has no stock)."""

    def test_warehouse_of_another_company_refused(self):
        other = self.env["res.company"].create({"name": "Other NGO"})
        warehouse = self.env["stock.warehouse"].search([("company_id", "=", other.id)], limit=1)
        self.assertTrue(warehouse, "stock creates a warehouse for every new company")
        with self.assertRaises(UserError):
            self.point_a.write({"warehouse_id": warehouse.id})
        own = self.env["stock.warehouse"].search([("company_id", "=", self.company.id)], limit=1)
        self.point_a.write({"warehouse_id": own.id})
        self.assertEqual(self.point_a.warehouse_id, own)
