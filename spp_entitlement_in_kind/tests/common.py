from odoo.addons.g2p_programs_ext.tests.common import G2PCommon
from odoo.addons.mail.tests.common import mail_new_test_user


class InkindCommon(G2PCommon):
    """Two warehouses, two service points, four households and a two-item basket.

    - Warehouse ``wh_main`` (the company's) and ``wh_north``; service point ``sp_a``
      supplied by ``wh_north``, ``sp_b`` without a warehouse (served from the manager's,
      ``wh_main``).
    - Households: ``h1`` (3 members) and ``h2`` (1) at ``sp_a``; ``h3`` (5) at ``sp_b``;
      ``h4`` (2) without a service point.
    - Items: rice, 2,500 g per member (the product is in kg), at most 4 members; oil,
      1 L for households of 2 or more.
      Rice: h1 7,500 g, h2 2,500 g, h3 10,000 g (capped), h4 5,000 g; oil: h1, h3, h4.
    - Keys (cycle × warehouse × service point × product): 3 points (sp_a, sp_b, none) × 2
      products = 6 delivery moves. Needs: north rice 10 kg, oil 1 L; main rice 15 kg, oil 2 L.
    - Stock: 100 kg of rice and 20 L of oil in each warehouse.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kg = cls.env.ref("uom.product_uom_kgm")
        cls.gram = cls.env.ref("uom.product_uom_gram")
        cls.litre = cls.env.ref("uom.product_uom_litre")
        cls.unit = cls.env.ref("uom.product_uom_unit")
        Product = cls.env["product.product"]
        cls.rice = Product.create(
            {
                "name": "Rice",
                "detailed_type": "product",
                "uom_id": cls.kg.id,
                "uom_po_id": cls.kg.id,
                "standard_price": 2.0,
            }
        )
        cls.oil = Product.create(
            {
                "name": "Vegetable oil",
                "detailed_type": "product",
                "uom_id": cls.litre.id,
                "uom_po_id": cls.litre.id,
                "standard_price": 3.0,
            }
        )
        cls.service = Product.create({"name": "Delivery service", "detailed_type": "service"})
        cls.wh_main = cls.env["stock.warehouse"].search([("company_id", "=", cls.env.company.id)], limit=1)
        cls.wh_north = cls.env["stock.warehouse"].create({"name": "North Hub", "code": "NHUB"})
        cls.sp_a = cls.env["spp.service.point"].create(
            {"name": "Alpha school", "code": "IK-A", "warehouse_id": cls.wh_north.id}
        )
        cls.sp_b = cls.env["spp.service.point"].create({"name": "Beta clinic", "code": "IK-B"})
        # their agents, who hand out (the real redemption API)
        cls.agent_a = mail_new_test_user(
            cls.env, login="ik_agent_a", groups="spp_service_points.group_service_point_agent", name="Agent A"
        )
        cls.agent_b = mail_new_test_user(
            cls.env, login="ik_agent_b", groups="spp_service_points.group_service_point_agent", name="Agent B"
        )
        cls.sp_a.user_ids = cls.agent_a
        cls.sp_b.user_ids = cls.agent_b
        cls.h1, _m = cls.make_household("H1", [{}, {}, {}])
        cls.h2, _m = cls.make_household("H2", [{}])
        cls.h3, _m = cls.make_household("H3", [{} for _i in range(5)])
        cls.h4, _m = cls.make_household("H4", [{}, {}])
        (cls.h1 | cls.h2).service_point_id = cls.sp_a
        cls.h3.service_point_id = cls.sp_b
        cls.households = cls.h1 | cls.h2 | cls.h3 | cls.h4
        for warehouse in cls.wh_main | cls.wh_north:
            cls.add_stock(cls.rice, warehouse, 100.0)
            cls.add_stock(cls.oil, warehouse, 20.0)
        cls.validation_group = cls.env["res.groups"].create({"name": "In-kind validators"})
        cls.validator.groups_id = [(4, cls.validation_group.id)]
        cls.program = (
            cls.env["g2p.program"]
            .with_user(cls.manager)
            .create({"name": "Food basket", "eligibility_domain": "[('id', 'in', %s)]" % cls.households.ids})
        )
        cls.manager_inkind = (
            cls.env["g2p.program.entitlement.manager.inkind"]
            .with_user(cls.manager)
            .create(
                {
                    "program_id": cls.program.id,
                    "validation_group_id": cls.validation_group.id,
                    "warehouse_id": cls.wh_main.id,
                    "item_ids": [
                        (
                            0,
                            0,
                            {
                                "product_id": cls.rice.id,
                                "quantity": 2500.0,
                                "uom_id": cls.gram.id,
                                "multiplier_field": "household_size",
                                "max_multiplier": 4,
                            },
                        ),
                        (
                            0,
                            0,
                            {
                                "product_id": cls.oil.id,
                                "quantity": 1.0,
                                "uom_id": cls.litre.id,
                                "condition": "[('household_size', '>=', 2)]",
                            },
                        ),
                    ],
                }
            )
        )
        cls.rice_item, cls.oil_item = cls.manager_inkind.item_ids.sorted("sequence")
        cls.program.with_user(cls.officer).enroll_eligible_registrants()

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------
    @classmethod
    def add_stock(cls, product, warehouse, quantity):
        cls.env["stock.quant"]._update_available_quantity(product, warehouse.lot_stock_id, quantity)

    def new_cycle(self, program=None):
        program = program or self.program
        return self.env["g2p.cycle"].browse(program.with_user(self.officer).create_new_cycle())

    def pending_cycle(self, program=None):
        """A new approved cycle whose entitlements are pending validation."""
        cycle = self.new_cycle(program)
        cycle.with_user(self.officer).prepare_entitlement()
        cycle.with_user(self.officer).to_approve()
        cycle.with_user(self.approver).approve()
        return cycle

    def approved_cycle(self, program=None):
        cycle = self.pending_cycle(program)
        cycle.with_user(self.validator).validate_entitlement()
        return cycle

    def entitlement(self, cycle, partner, product):
        found = cycle.inkind_entitlement_ids.filtered(
            lambda e: e.partner_id == partner and e.product_id == product
        )
        self.assertEqual(len(found), 1)
        return found

    def figures(self, product, warehouse):
        """On hand, forecast and free quantity of ``product`` in ``warehouse`` (product UoM)."""
        p = product.with_context(warehouse=warehouse.id)
        p.invalidate_recordset(["qty_available", "virtual_available", "free_qty"])
        return {"on_hand": p.qty_available, "forecast": p.virtual_available, "free": p.free_qty}

    def delivery_moves(self, cycle):
        customers = self.env.ref("stock.stock_location_customers")
        return self.env["stock.move"].search(
            [("g2p_cycle_id", "=", cycle.id), ("location_dest_id", "=", customers.id)]
        )

    def open_moves(self, cycle):
        return self.delivery_moves(cycle).filtered(lambda m: m.state not in ("done", "cancel"))

    def agent(self, point):
        """The agent of ``point`` (a real user with the agent group, serving it)."""
        return {self.sp_a: self.agent_a, self.sp_b: self.agent_b}[point]

    def redeem(self, entitlement, quantity):
        """Hand out ``quantity`` (in the entitlement's unit) as an agent of its service
        point does: the real ``spp.entitlement.transaction.redeem``. :return: the reference."""
        self._references = getattr(self, "_references", 0) + 1
        reference = "IK-%s-%s" % (entitlement.id, self._references)
        point = entitlement.service_point_id
        self.env["spp.entitlement.transaction"].with_user(self.agent(point)).redeem(
            entitlement.code, quantity, point.id, reference
        )
        entitlement.invalidate_recordset()
        return reference

    def reverse(self, entitlement, quantity):
        """Undo, with the real ``reverse``, the last redemption of ``quantity`` (the
        entitlement's unit) of ``entitlement`` that is not reversed yet."""
        redemption = (
            self.env["spp.entitlement.transaction"]
            .sudo()
            .search(
                [
                    ("inkind_entitlement_id", "=", entitlement.id),
                    ("transaction_type", "=", "redemption"),
                    ("is_reversed", "=", False),
                ],
                order="id desc",
            )
            .filtered(lambda t: abs(t.quantity - quantity) < 1e-9)[:1]
        )
        self.assertTrue(redemption, "a redemption of %s to reverse" % quantity)
        point = redemption.service_point_id
        self.env["spp.entitlement.transaction"].with_user(self.agent(point)).reverse(
            redemption.reference, point.id, "handed out by mistake"
        )
        entitlement.invalidate_recordset()

    def end_cycle(self, cycle):
        """End ``cycle`` as its approver does (*End cycle*): with the closing addon
        installed it settles the cycle (spp_entitlement_in_kind's ``_before_end`` posts
        and releases); this addon does not depend on it."""
        if "end_requested" not in self.env["g2p.cycle"]._fields:
            self.skipTest("spp_auto_update_entitlements (the closing) is not installed")
        cycle.with_user(self.approver).mark_ended()
        self.env.invalidate_all()
