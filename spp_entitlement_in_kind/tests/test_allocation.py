from psycopg2 import IntegrityError

from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import InkindCommon


@tagged("post_install", "-at_install")
class TestAllocation(InkindCommon):
    """The allocation record: one per cycle × warehouse × service point × product, linked
    to its entitlements and moves, whose quantities add up."""

    def allocation(self, cycle, product, service_point):
        allocation = cycle.sudo().inkind_allocation_ids.filtered(
            lambda a: a.product_id == product and a.service_point_id == service_point
        )
        self.assertEqual(len(allocation), 1)
        return allocation

    def assertAddsUp(self, allocation):
        """committed = reserved + delivered (no reversal waiting), committed + released =
        what its entitlements were given, redeemed = Σ their redeemed quantities."""
        allocation.invalidate_recordset()
        entitlements = allocation.entitlement_ids
        to_product = {
            e: e.uom_id._compute_quantity(1.0, e.product_id.uom_id, round=False) for e in entitlements
        }
        self.assertAlmostEqual(
            allocation.quantity_committed, allocation.quantity_reserved + allocation.quantity_delivered
        )
        self.assertAlmostEqual(
            allocation.quantity_committed + allocation.quantity_released,
            sum(e.quantity * to_product[e] for e in entitlements),
        )
        self.assertAlmostEqual(
            allocation.quantity_redeemed, sum(e.quantity_redeemed * to_product[e] for e in entitlements)
        )
        open_moves = allocation.move_ids.filtered(lambda m: m.state not in ("done", "cancel"))
        self.assertLessEqual(len(open_moves), 1)
        self.assertAlmostEqual(sum(open_moves.mapped("product_qty")), allocation.quantity_reserved)

    def test_approval_creates_one_allocation_per_key(self):
        cycle = self.approved_cycle()
        allocations = cycle.sudo().inkind_allocation_ids
        self.assertEqual(len(allocations), 6, "2 products x 3 service points (sp_a, sp_b, none)")
        self.assertEqual(allocations.entitlement_ids, cycle.inkind_entitlement_ids)
        rice_a = self.allocation(cycle, self.rice, self.sp_a)
        self.assertEqual(rice_a.warehouse_id, self.wh_north)
        self.assertEqual(rice_a.entitlement_ids.partner_id, self.h1 | self.h2)
        self.assertEqual(rice_a.uom_id, self.kg)
        self.assertAlmostEqual(rice_a.quantity_committed, 10.0, msg="7,500 g + 2,500 g in the product's kg")
        self.assertAlmostEqual(rice_a.quantity_reserved, 10.0)
        rice_none = self.allocation(cycle, self.rice, self.env["spp.service.point"])
        self.assertEqual(rice_none.warehouse_id, self.wh_main)
        self.assertEqual(rice_none.entitlement_ids.partner_id, self.h4)
        for allocation in allocations:
            self.assertAddsUp(allocation)
        # a second validation (nothing pending) and a sync create nothing new
        self.env["g2p.inkind.stock"]._sync(cycle.ids)
        self.assertEqual(cycle.sudo().inkind_allocation_ids, allocations)

    def test_odoo_split_keeps_every_entitlement_linked(self):
        cycle = self.approved_cycle()
        rice_a = self.allocation(cycle, self.rice, self.sp_a)
        entitlements = rice_a.entitlement_ids
        move = rice_a.move_ids
        self.assertEqual(len(move), 1)
        # a partial posting done with Odoo's own API: 4 of the 10 kg done, the rest split off
        move.quantity = 4.0
        move.picked = True
        move._action_done()
        self.assertEqual(move.state, "done")
        remainder = rice_a.move_ids - move
        self.assertEqual(len(remainder), 1, "Odoo split the move")
        self.assertEqual(remainder.g2p_allocation_id, rice_a, "the split copied the allocation")
        self.assertAlmostEqual(remainder.product_qty, 6.0)
        self.assertEqual(entitlements.allocation_id, rice_a)
        self.assertEqual(
            set(entitlements.mapped(lambda e: frozenset(e.move_ids.ids))), {frozenset((move | remainder).ids)}
        )
        rice_a.invalidate_recordset()
        self.assertAlmostEqual(rice_a.quantity_delivered, 4.0)
        self.assertAlmostEqual(rice_a.quantity_committed, 10.0)
        self.assertAddsUp(rice_a)
        # the handout then follows the split: 4 kg redeemed, posted, nothing more moves
        self.redeem(self.entitlement(cycle, self.h1, self.rice), 4000.0)
        cycle.with_user(self.approver).action_post_deliveries()
        self.assertEqual(len(rice_a.move_ids), 2)
        self.assertAddsUp(rice_a)
        self.assertAlmostEqual(rice_a.quantity_redeemed, rice_a.quantity_delivered)

    def test_quantities_add_up_through_posting_release_and_return(self):
        cycle = self.approved_cycle()
        rice_a = self.allocation(cycle, self.rice, self.sp_a)
        e1 = self.entitlement(cycle, self.h1, self.rice)
        e2 = self.entitlement(cycle, self.h2, self.rice)
        self.redeem(e1, 2000.0)  # two handouts: the first is reversed below
        self.redeem(e1, 5500.0)
        self.redeem(e2, 1000.0)
        cycle.with_user(self.approver).action_post_deliveries()
        self.assertEqual(len(rice_a.move_ids), 2, "one posting: a done move and its remainder")
        self.assertAlmostEqual(rice_a.quantity_delivered, 8.5)
        self.assertAlmostEqual(rice_a.quantity_redeemed, 8.5)
        self.assertAddsUp(rice_a)
        e2.with_user(self.manager).action_cancel()
        rice_a.invalidate_recordset()
        self.assertAlmostEqual(rice_a.quantity_released, 1.5, msg="2.5 kg less the 1 kg handed out")
        self.assertAlmostEqual(rice_a.quantity_reserved, 0.0)
        self.assertAddsUp(rice_a)
        self.reverse(e1, 2000.0)
        cycle.with_user(self.approver).action_post_deliveries()
        rice_a.invalidate_recordset()
        self.assertAlmostEqual(rice_a.quantity_delivered, 6.5, msg="2 kg returned")
        self.assertAlmostEqual(rice_a.quantity_reserved, 2.0, msg="and reserved again for e1")
        returns = rice_a.move_ids.filtered(lambda m: m.location_dest_id == self.wh_north.lot_stock_id)
        self.assertEqual(len(returns), 1)
        self.assertEqual(returns.origin_returned_move_id.g2p_allocation_id, rice_a)
        self.assertAddsUp(rice_a)

    def test_one_allocation_per_key(self):
        cycle = self.approved_cycle()
        Allocation = self.env["g2p.inkind.allocation"]
        for service_point in (self.sp_a, self.env["spp.service.point"]):
            existing = self.allocation(cycle, self.rice, service_point)
            with self.subTest(service_point=service_point.name), mute_logger("odoo.sql_db"):
                with self.assertRaises(IntegrityError), self.env.cr.savepoint():
                    Allocation.create(
                        {
                            "cycle_id": cycle.id,
                            "warehouse_id": existing.warehouse_id.id,
                            "service_point_id": service_point.id,
                            "product_id": self.rice.id,
                            "company_id": existing.company_id.id,
                        }
                    )
                    Allocation.flush_model()
        # another product, warehouse or service point is another key
        other = Allocation.create(
            {
                "cycle_id": cycle.id,
                "warehouse_id": self.wh_north.id,
                "service_point_id": self.sp_b.id,
                "product_id": self.rice.id,
                "company_id": self.wh_north.company_id.id,
            }
        )
        other.flush_recordset()
        self.assertFalse(other.entitlement_ids)
        self.assertEqual(
            (other.quantity_committed, other.quantity_reserved, other.quantity_released), (0.0, 0.0, 0.0)
        )

    def test_allocations_open_from_the_cycle(self):
        cycle = self.approved_cycle()
        self.assertFalse(
            self.env["g2p.inkind.allocation"]
            .with_user(self.officer)
            .check_access_rights("read", raise_exception=False),
            "officers have no stock rights and see no allocation",
        )
        action = cycle.with_user(self.manager).action_open_inkind_allocations()
        self.assertEqual(action["res_model"], "g2p.inkind.allocation")
        allocations = self.env["g2p.inkind.allocation"].with_user(self.manager).search(action["domain"])
        self.assertEqual(len(allocations), 6)
        allocations.read(["display_name", "quantity_committed", "quantity_reserved", "entitlement_ids"])
        self.env["g2p.inkind.allocation"].with_user(self.manager).get_views(
            [(False, "form"), (False, "list")]
        )


@tagged("post_install", "-at_install")
class TestServiceItems(InkindCommon):
    """A service (a consultation) in a basket whose goods are stock-managed: never
    checked against stock nor reserved, approved and redeemable like the goods."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.consultation = cls.env["product.product"].create(
            {"name": "Nutrition consultation", "detailed_type": "service", "uom_id": cls.unit.id}
        )
        cls.service_item = (
            cls.env["g2p.program.entitlement.manager.inkind.item"]
            .with_user(cls.manager)
            .create({"manager_id": cls.manager_inkind.id, "product_id": cls.consultation.id, "quantity": 1.0})
        )

    def test_services_are_never_reserved(self):
        self.assertTrue(self.manager_inkind.manage_inventory)
        cycle = self.pending_cycle()
        services = cycle.inkind_entitlement_ids.filtered(lambda e: e.product_id == self.consultation)
        self.assertEqual(len(services), 4, "one consultation per household")
        coverage = cycle.with_user(self.officer).inkind_coverage_html
        self.assertNotIn("Nutrition consultation", coverage)
        self.assertEqual(cycle.with_user(self.validator).validate_entitlement(), 11)
        self.assertEqual(set(services.mapped("state")), {"approved"})
        self.assertTrue(all(services.mapped("code")), "each has its ERN to be redeemed with")
        self.assertFalse(services.sudo().allocation_id)
        allocations = cycle.sudo().inkind_allocation_ids
        self.assertEqual(allocations.product_id, self.rice | self.oil, "only the goods are reserved")
        self.assertFalse(self.env["stock.move"].search([("product_id", "=", self.consultation.id)]))
        self.assertEqual(len(self.delivery_moves(cycle)), 6)
        # redeemed like a good; postings and releases leave it alone
        consultation = self.entitlement(cycle, self.h1, self.consultation)
        self.redeem(consultation, 1.0)
        self.assertEqual(consultation.state, "redeemed")
        cycle.with_user(self.approver).action_post_deliveries()
        self.entitlement(cycle, self.h2, self.consultation).with_user(self.manager).action_cancel()
        self.assertFalse(self.env["stock.move"].search([("product_id", "=", self.consultation.id)]))

    def test_services_need_no_stock_nor_warehouse(self):
        """No stock of anything: the goods are refused, the services alone are approved."""
        self.manager_inkind.with_user(self.manager).warehouse_id = False
        self.sp_a.warehouse_id = False
        cycle = self.pending_cycle()
        services = cycle.inkind_entitlement_ids.filtered(lambda e: e.product_id == self.consultation)
        goods = cycle.inkind_entitlement_ids - services
        with self.assertRaisesRegex(UserError, r"\[no_warehouse\]"):
            goods[:1].with_user(self.validator).approve_entitlement()
        services.with_user(self.validator).approve_entitlement()
        self.assertEqual(set(services.mapped("state")), {"approved"})
        self.assertFalse(cycle.sudo().inkind_allocation_ids)
