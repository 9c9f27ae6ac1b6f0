import psycopg2
from dateutil.relativedelta import relativedelta

from odoo.addons.queue_job.tests.common import trap_jobs
from odoo.exceptions import ValidationError
from odoo.tests import tagged
from odoo.tools import SQL, mute_logger

from .common import InkindCommon


@tagged("post_install", "-at_install")
class TestInkindGeneration(InkindCommon):
    def test_quantities_from_items_multiplier_cap_and_condition(self):
        cycle = self.new_cycle()
        self.assertEqual(cycle.with_user(self.officer).prepare_entitlement(), 7)
        rice = {e.partner_id: e.quantity for e in cycle.inkind_entitlement_ids if e.product_id == self.rice}
        oil = {e.partner_id: e.quantity for e in cycle.inkind_entitlement_ids if e.product_id == self.oil}
        self.assertEqual(rice, {self.h1: 7500.0, self.h2: 2500.0, self.h3: 10000.0, self.h4: 5000.0})
        self.assertEqual(oil, {self.h1: 1.0, self.h3: 1.0, self.h4: 1.0})  # h2 has one member
        self.assertEqual(set(cycle.inkind_entitlement_ids.mapped("state")), {"draft"})
        self.assertEqual(cycle.inkind_entitlement_count, 7)
        e = self.entitlement(cycle, self.h1, self.rice)
        self.assertEqual(e.uom_id, self.gram)
        self.assertEqual(e.inkind_item_id, self.rice_item)
        self.assertEqual(e.quantity_balance, 7500.0)
        self.assertEqual(e.valid_until, cycle.end_date)

    def test_service_point_warehouse_and_price_copied(self):
        cycle = self.new_cycle()
        cycle.with_user(self.officer).prepare_entitlement()
        e1 = self.entitlement(cycle, self.h1, self.rice)
        self.assertEqual(e1.service_point_id, self.sp_a)
        self.assertEqual(e1.warehouse_id, self.wh_north)  # the service point's warehouse
        e3 = self.entitlement(cycle, self.h3, self.rice)
        self.assertEqual(e3.service_point_id, self.sp_b)
        self.assertEqual(e3.warehouse_id, self.wh_main)  # the point has none: the manager's
        e4 = self.entitlement(cycle, self.h4, self.oil)
        self.assertFalse(e4.service_point_id)
        self.assertEqual(e4.warehouse_id, self.wh_main)
        # 2.00 per kg: 7,500 g are worth 15.00
        self.assertAlmostEqual(e1.unit_price, 2.0)
        self.assertAlmostEqual(e1.total_amount, 15.0)

    def test_formula_rounded_to_item_uom(self):
        self.rice_item.write({"formula": "base_quantity / 3.0", "multiplier_field": False})
        cycle = self.new_cycle()
        cycle.with_user(self.officer).prepare_entitlement()
        # 2,500 g / 3 = 833.333... g, rounded to the gram's rounding (0.01 g)
        self.assertEqual(self.gram.rounding, 0.01)
        quantities = cycle.inkind_entitlement_ids.filtered(lambda e: e.product_id == self.rice).mapped(
            "quantity"
        )
        self.assertEqual(set(quantities), {833.33})

    def test_cel_condition_and_formula(self):
        self.oil_item.write(
            {
                "condition": False,
                "condition_expression": "me.household_size > 2",
                "formula": "0.5 * double(me.household_size)",
            }
        )
        cycle = self.new_cycle()
        cycle.with_user(self.officer).prepare_entitlement()
        oil = {e.partner_id: e.quantity for e in cycle.inkind_entitlement_ids if e.product_id == self.oil}
        self.assertEqual(oil, {self.h1: 1.5, self.h3: 2.5})

    def test_rows_same_in_sql_and_per_beneficiary(self):
        """An in-kind row written by the SQL path (one INSERT ... SELECT per item) equals,
        column by column, the one the per-beneficiary path writes (values, then bulk
        insert): quantity rounded to the item UoM, balance, price, total, service point,
        warehouse (the point's, else the manager's), area, state of *Submit automatically*."""
        area = self.env["spp.area"].create({"name": "North", "code": "IK-N"})
        self.sp_b.area_id = area  # H3 takes its point's area
        self.rice_item.write({"formula": "base_quantity / 3.0 * double(me.household_size)"})
        self.manager_inkind.auto_submit = True
        self.assertIsNotNone(self.manager_inkind._items_sql(SQL("(SELECT 1)")), "every item compiles")
        cycle = self.new_cycle().with_user(self.officer)
        volatile = {"id", "create_date", "write_date", "date_submitted"}
        rows = []
        for per_beneficiary in (True, False):
            self.assertEqual(cycle.with_context(cel_per_beneficiary=per_beneficiary).prepare_entitlement(), 7)
            self.env.flush_all()
            self.env.cr.execute("SELECT * FROM g2p_entitlement_inkind WHERE cycle_id = %s", [cycle.id])
            found = {(r["partner_id"], r["inkind_item_id"]): r for r in self.env.cr.dictfetchall()}
            self.assertTrue(all(r["create_date"] and r["date_submitted"] for r in found.values()))
            rows.append({key: {k: v for k, v in r.items() if k not in volatile} for key, r in found.items()})
            self.env["g2p.entitlement.inkind"].sudo().search([("cycle_id", "=", cycle.id)]).unlink()
        self.assertEqual(rows[0], rows[1])
        h3_rice = rows[1][(self.h3.id, self.rice_item.id)]
        # 2,500 g / 3 * 5, times the multiplier (5, capped at 4) = 16,666.666... g -> 16,666.67 g (0.01 g)
        # (float_round's double 1666667 * 0.01, written with all its digits by both paths)
        self.assertAlmostEqual(float(h3_rice["quantity"]), 16666.67, places=6)
        self.assertEqual(h3_rice["area_id"], area.id)
        self.assertEqual(h3_rice["warehouse_id"], self.wh_main.id)
        self.assertEqual(h3_rice["state"], "pending_validation")
        self.assertEqual(rows[1][(self.h1.id, self.rice_item.id)]["warehouse_id"], self.wh_north.id)

    def test_summary_grouped_pass_and_runtime_agree(self):
        """The demo's in-kind condition and counts of members by one atom in the formulas:
        the same rows whether the household summary answers them (the members' sorted
        birthdates, the pregnancy count), the grouped pass over the members
        (``cel_grouped_pass``) or the official runtime per beneficiary. H3 has a member
        without a birthdate: its age count errs (skipped), its condition does not (a child)."""
        births = {
            self.h1: [self.born(2), self.born(30), self.born(35)],
            self.h2: [self.born(40)],
            self.h3: [self.born(1), self.born(10), False, self.born(60), self.born(61)],
            # a day short of 5, and 5 today
            self.h4: [self.born(5) + relativedelta(days=1), self.born(5)],
        }
        for household, dates in births.items():
            memberships = self.env["g2p.group.membership"].search(
                [("group_id", "=", household.id)], order="id"
            )
            for membership, birthdate in zip(memberships, dates, strict=True):
                membership.individual_id.birthdate = birthdate
        self.env["g2p.group.membership"].search(
            [("group_id", "=", self.h2.id)]
        ).individual_id.is_pregnant = True
        self.rice_item.write(
            {
                "condition_expression": "members.exists(m, m.is_pregnant || m.age < 5)",
                "formula": "base_quantity * double(size(members.filter(m, m.age < 5)))",
            }
        )
        self.oil_item.write(
            {"condition": False, "formula": "base_quantity * double(size(members.filter(m, !m.is_pregnant)))"}
        )
        for item in self.rice_item | self.oil_item:
            self.assertIn("household summary", item.cel_path)
        cycle = self.new_cycle().with_user(self.officer)
        volatile = {"id", "create_date", "write_date", "date_submitted"}
        rows = []
        for context in ({}, {"cel_grouped_pass": True}, {"cel_per_beneficiary": True}):
            cycle.with_context(**context).prepare_entitlement()
            self.env.flush_all()
            self.env.cr.execute("SELECT * FROM g2p_entitlement_inkind WHERE cycle_id = %s", [cycle.id])
            found = {(r["partner_id"], r["inkind_item_id"]): r for r in self.env.cr.dictfetchall()}
            rows.append({key: {k: v for k, v in r.items() if k not in volatile} for key, r in found.items()})
            self.env["g2p.entitlement.inkind"].sudo().search([("cycle_id", "=", cycle.id)]).unlink()
        self.assertEqual(rows[0], rows[1], "summary vs grouped pass")
        self.assertEqual(rows[0], rows[2], "SQL vs per beneficiary")
        quantities = {(key[0], key[1]): float(r["quantity"]) for key, r in rows[0].items()}
        rice, oil = self.rice_item.id, self.oil_item.id
        # rice: 2,500 g per child under 5, times the members (at most 4); H2: pregnant, no
        # child (0: nothing); H3: a member without a birthdate (skipped); H4: one child
        self.assertEqual(quantities[(self.h1.id, rice)], 2500.0 * 3)
        self.assertNotIn((self.h2.id, rice), quantities)
        self.assertNotIn((self.h3.id, rice), quantities)
        self.assertEqual(quantities[(self.h4.id, rice)], 2500.0 * 2)
        # oil: 1 L per member who is not pregnant
        self.assertEqual(quantities[(self.h1.id, oil)], 3.0)
        self.assertNotIn((self.h2.id, oil), quantities)
        self.assertEqual(quantities[(self.h3.id, oil)], 5.0)

    def test_generation_is_idempotent_and_unique_in_database(self):
        cycle = self.new_cycle()
        self.assertEqual(cycle.with_user(self.officer).prepare_entitlement(), 7)
        self.assertEqual(cycle.with_user(self.officer).prepare_entitlement(), 0)
        self.assertEqual(len(cycle.inkind_entitlement_ids), 7)
        e = cycle.inkind_entitlement_ids[0]
        with mute_logger("odoo.sql_db"), self.assertRaises(psycopg2.IntegrityError), self.env.cr.savepoint():
            self.env.cr.execute(
                """INSERT INTO g2p_entitlement_inkind (cycle_id, partner_id, inkind_item_id, product_id, uom_id,
                   quantity, state) VALUES (%s, %s, %s, %s, %s, 1, 'draft')""",
                [e.cycle_id.id, e.partner_id.id, e.inkind_item_id.id, e.product_id.id, e.uom_id.id],
            )

    def test_async_generation_equals_sync(self):
        sync_cycle = self.new_cycle()
        sync_cycle.with_user(self.officer).prepare_entitlement()
        expected = {(e.partner_id.id, e.product_id.id, e.quantity) for e in sync_cycle.inkind_entitlement_ids}
        sync_cycle.with_user(self.officer).to_approve()
        cycle = self.new_cycle()
        self.env["ir.config_parameter"].sudo().set_param("g2p_programs_ext.async_threshold", "2")
        with trap_jobs() as trap:
            self.assertEqual(cycle.with_user(self.officer).prepare_entitlement(), 0)
            trap.perform_enqueued_jobs()
        self.assertEqual(
            {(e.partner_id.id, e.product_id.id, e.quantity) for e in cycle.inkind_entitlement_ids}, expected
        )

    def test_basket_with_cash_and_inkind(self):
        self.env["g2p.program.entitlement.manager.cash"].with_user(self.manager).create(
            {
                "program_id": self.program.id,
                "validation_group_id": self.validation_group.id,
                "item_ids": [(0, 0, {"amount": 30.0})],
            }
        )
        cycle = self.pending_cycle()
        self.assertEqual(len(cycle.entitlement_ids), 4)
        self.assertEqual(len(cycle.inkind_entitlement_ids), 7)
        self.assertEqual(cycle.with_user(self.validator).validate_entitlement(), 11)
        self.assertEqual(set(cycle.inkind_entitlement_ids.mapped("state")), {"approved"})
        self.assertEqual(set(cycle.entitlement_ids.mapped("state")), {"approved"})


@tagged("post_install", "-at_install")
class TestInkindBadInput(InkindCommon):
    def test_bad_items_refused_at_save(self):
        Item = self.env["g2p.program.entitlement.manager.inkind.item"].with_user(self.manager)
        base = {"manager_id": self.manager_inkind.id, "product_id": self.rice.id, "quantity": 1.0}
        soap = self.env["product.product"].create({"name": "Soap", "detailed_type": "consu"})
        with self.assertRaisesRegex(ValidationError, r"\[not_storable\].*Soap"):
            Item.create(dict(base, product_id=soap.id))
        with self.assertRaisesRegex(ValidationError, r"\[wrong_uom\].*Units.*Rice"):
            Item.create(dict(base, uom_id=self.unit.id))
        with self.assertRaisesRegex(ValidationError, r"\[bad_quantity\]"):
            Item.create(dict(base, quantity=0.0))
        with self.assertRaisesRegex(ValidationError, r"\[bad_quantity\]"):
            Item.create(dict(base, quantity=-2.0))
        with self.assertRaisesRegex(ValidationError, r"\[invalid_expression\]"):
            Item.create(dict(base, formula="me.age *"))
        item = Item.create(base)
        self.assertEqual(item.uom_id, self.kg, "the UoM defaults to the product's")
        with self.assertRaisesRegex(ValidationError, r"\[wrong_uom\]"):
            item.uom_id = self.litre

    def test_warehouse_of_another_company_refused(self):
        other = self.env["res.company"].create({"name": "Other NGO"})
        warehouse = self.env["stock.warehouse"].search([("company_id", "=", other.id)], limit=1)
        self.assertTrue(warehouse)
        self.manager.company_ids = [(4, other.id)]
        with self.assertRaisesRegex(ValidationError, r"\[wrong_company\].*Other NGO"):
            self.manager_inkind.with_user(self.manager).warehouse_id = warehouse

    def test_one_manager_per_program(self):
        with mute_logger("odoo.sql_db"), self.assertRaises(psycopg2.IntegrityError), self.env.cr.savepoint():
            self.env["g2p.program.entitlement.manager.inkind"].create({"program_id": self.program.id})
