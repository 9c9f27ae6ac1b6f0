from odoo.exceptions import AccessError
from odoo.tests import tagged

from .common import ServicePointCase


@tagged("post_install", "-at_install")
class TestRegistrantAccess(ServicePointCase):
    """Agents read the registrants of their points (what a handout needs), and every
    non-registrant contact; health and birth data stay with the back office."""

    def test_agent_sees_own_registrants_only(self):
        Partner = self.env["res.partner"].with_user(self.agent_a)
        own = self.house_a | self.ind_a1 | self.ind_a2
        self.assertEqual(
            Partner.search([("is_registrant", "=", True), ("id", "in", self.registrants.ids)]), own
        )
        self.assertEqual(Partner.search_count([("id", "in", self.registrants.ids)]), 3)
        groups = Partner.read_group(
            [("is_registrant", "=", True), ("id", "in", self.registrants.ids)],
            ["service_point_id"],
            ["service_point_id"],
        )
        self.assertEqual(
            [(g["service_point_id"][0], g["service_point_id_count"]) for g in groups], [(self.point_a.id, 3)]
        )
        self.assertFalse(Partner.name_search("Cleo B"))
        self.assertEqual([pid for pid, _name in Partner.name_search("Ann A")], [self.ind_a1.id])
        with self.assertRaises(AccessError):
            self.ind_b1.with_user(self.agent_a).read(["name"])
        with self.assertRaises(AccessError):
            self.ind_free.with_user(self.agent_a).read(["name"])

    def test_agent_reads_what_a_handout_needs(self):
        values = self.ind_a1.with_user(self.agent_a).read(["name", "id_number", "individual_membership_ids"])[
            0
        ]
        self.assertEqual((values["name"], values["id_number"]), ("Ann A", "ID-A1"))
        membership = (
            self.env["g2p.group.membership"]
            .browse(values["individual_membership_ids"])
            .with_user(self.agent_a)
        )
        self.assertEqual(membership.group_id.name, "House A")
        self.assertEqual(self.house_a.with_user(self.agent_a).household_size, 2)
        # Memberships of other points' households stay hidden.
        Membership = self.env["g2p.group.membership"].with_user(self.agent_a)
        self.assertEqual(Membership.search([("group_id", "=", self.house_b.id)]).ids, [])

    def test_agent_reads_non_registrants(self):
        Partner = self.env["res.partner"].with_user(self.agent_a)
        for partner in (
            self.company.partner_id,
            self.agent_a.partner_id,
            self.agent_b.partner_id,
            self.contact,
        ):
            self.assertEqual(Partner.browse(partner.id).read(["name"])[0]["name"], partner.name)
        self.assertEqual(Partner.search([("id", "=", self.contact.id)]), self.contact)
        # The agent's own preferences still open.
        self.assertEqual(self.agent_a.with_user(self.agent_a).read(["name"])[0]["name"], "Agent A")

    def test_agent_cannot_read_health_and_birth_data(self):
        partner = self.ind_a1.with_user(self.agent_a)
        Partner = self.env["res.partner"].with_user(self.agent_a)
        for fname in ("birthdate", "has_disability", "is_pregnant", "age"):
            with self.subTest(field=fname):
                with self.assertRaises(AccessError):
                    partner.read([fname])
                with self.assertRaises(AccessError):
                    Partner.search([(fname, "!=", False)])
                if fname != "age":  # not stored: cannot be grouped by anyway
                    with self.assertRaises(AccessError):
                        Partner.read_group([], [fname], [fname])
        self.assertNotIn("has_disability", Partner.fields_get())
        self.assertNotIn("has_disability", partner.read()[0])

    def test_officer_reads_health_and_birth_data(self):
        values = self.ind_a1.with_user(self.officer).read(["birthdate", "has_disability", "is_pregnant"])[0]
        self.assertEqual(str(values["birthdate"]), "1990-05-01")
        self.assertTrue(values["has_disability"])
        self.assertTrue(self.ind_a2.with_user(self.officer).is_pregnant)
        self.assertGreater(self.ind_a1.with_user(self.officer).age, 30)
