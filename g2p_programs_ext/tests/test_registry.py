import psycopg2

from odoo.exceptions import ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import G2PCommon


@tagged("post_install", "-at_install")
class TestRegistry(G2PCommon):
    def test_household_size_follows_memberships(self):
        group, members = self.make_household(
            "Santos", [{"birthdate": self.born(40)}, {"birthdate": self.born(3)}]
        )
        self.assertEqual(group.household_size, 2)
        group.group_membership_ids[1].end_date = self.today
        self.assertEqual(group.household_size, 1)
        group.group_membership_ids[1].end_date = False
        self.assertEqual(group.household_size, 2)

    def test_household_size_batch_is_one_query(self):
        groups = self.Partner.create(
            [{"name": "H%s" % i, "is_registrant": True, "is_group": True} for i in range(20)]
        )
        people = self.Partner.create([{"name": "P%s" % i, "is_registrant": True} for i in range(40)])
        self.env["g2p.group.membership"].create(
            [{"group_id": groups[i // 2].id, "individual_id": p.id} for i, p in enumerate(people)]
        )
        self.env.flush_all()
        groups.invalidate_recordset(["household_size"])
        # one read of is_group for the batch, one grouped count: not one per household
        with self.assertQueryCount(2):
            groups._compute_household_size()
        self.assertEqual(set(groups.mapped("household_size")), {2})

    def test_age_is_searchable(self):
        _g, (adult, child, baby) = self.make_household(
            "Cruz",
            [
                {"birthdate": self.born(35)},
                {"birthdate": self.born(5)},
                {"birthdate": self.born(4, days=-30)},
            ],
        )
        people = adult | child | baby
        self.assertEqual(baby.age, 3)
        self.assertEqual(self.Partner.search([("id", "in", people.ids), ("age", "<", 5)]), baby)
        self.assertEqual(self.Partner.search([("id", "in", people.ids), ("age", ">=", 5)]), adult | child)
        self.assertEqual(self.Partner.search([("id", "in", people.ids), ("age", "=", 5)]), child)
        self.assertEqual(self.Partner.search([("id", "in", people.ids), ("age", ">", 34)]), adult)

    def test_id_number_unique_among_registrants(self):
        self.Partner.create({"name": "A", "is_registrant": True, "id_number": "PH-1"})
        with self.assertRaisesRegex(ValidationError, r"\[duplicate_id_number\].*already held by A"):
            self.Partner.create({"name": "B", "is_registrant": True, "id_number": "PH-1"})
        # not registrants: no constraint
        self.Partner.create({"name": "Vendor", "id_number": "PH-1"})

    def test_one_active_household(self):
        g1, (person,) = self.make_household("Reyes", [{"birthdate": self.born(30)}])
        g2 = self.Partner.create({"name": "Other", "is_registrant": True, "is_group": True})
        with self.assertRaisesRegex(ValidationError, r"\[two_households\].*Reyes"):
            self.env["g2p.group.membership"].create({"group_id": g2.id, "individual_id": person.id})
        g1.group_membership_ids.end_date = self.today
        self.env["g2p.group.membership"].create({"group_id": g2.id, "individual_id": person.id})
        self.assertEqual(g2.household_size, 1)
        self.assertEqual(g1.household_size, 0)

    @mute_logger("odoo.sql_db")
    def test_database_enforces_one_active_household(self):
        """Two concurrent inserts would both pass the check: the partial unique index decides."""
        g1, (person,) = self.make_household("Lim", [{}])
        g2 = self.Partner.create({"name": "Other", "is_registrant": True, "is_group": True})
        self.env.flush_all()
        with self.assertRaises(psycopg2.IntegrityError), self.env.cr.savepoint():
            self.env.cr.execute(
                "INSERT INTO g2p_group_membership (group_id, individual_id) VALUES (%s, %s)",
                [g2.id, person.id],
            )
