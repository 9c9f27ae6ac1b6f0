from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.tests import TransactionCase

AGENT = "spp_service_points.group_service_point_agent"
OFFICER = "g2p_programs_ext.group_program_officer"
MANAGER = "g2p_programs_ext.group_program_manager"


class ServicePointCase(TransactionCase):
    """Two areas, two service points, their agents, back-office users and registrants.

    - Region North (KE-NO) > Municipality Alpha (KE-NO-A); Region South (KE-SO).
    - Point A (SP-A, in Alpha) served by ``agent_a`` and ``officer_agent``;
      point B (SP-B, in South) served by ``agent_b``.
    - Household ``house_a`` (Alpha, point A) with members ``ind_a1`` and ``ind_a2``;
      household ``house_b`` (South, point B) with member ``ind_b1``; individual
      ``ind_free`` (Alpha, no point); a plain contact ``contact`` (not a registrant).
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.company = cls.env.company

        # Users, with their real groups
        cls.agent_a = mail_new_test_user(cls.env, login="spp_agent_a", groups=AGENT, name="Agent A")
        cls.agent_b = mail_new_test_user(cls.env, login="spp_agent_b", groups=AGENT, name="Agent B")
        cls.officer = mail_new_test_user(cls.env, login="spp_officer", groups=OFFICER, name="Officer")
        cls.officer_agent = mail_new_test_user(
            cls.env, login="spp_officer_agent", groups=f"{OFFICER},{AGENT}", name="Officer and agent"
        )
        cls.manager = mail_new_test_user(
            cls.env, login="spp_manager", groups=f"{MANAGER},base.group_erp_manager", name="Manager"
        )

        # Areas and points
        Area = cls.env["spp.area"]
        cls.north = Area.create({"name": "North", "code": "KE-NO", "kind": "region"})
        cls.alpha = Area.create(
            {"name": "Alpha", "code": "KE-NO-A", "kind": "municipality", "parent_id": cls.north.id}
        )
        cls.south = Area.create({"name": "South", "code": "KE-SO", "kind": "region"})
        Point = cls.env["spp.service.point"]
        cls.point_a = Point.create(
            {
                "name": "Alpha Health Centre",
                "code": "SP-A",
                "area_id": cls.alpha.id,
                "user_ids": [(6, 0, (cls.agent_a | cls.officer_agent).ids)],
            }
        )
        cls.point_b = Point.create(
            {
                "name": "South Shop",
                "code": "SP-B",
                "area_id": cls.south.id,
                "user_ids": [(6, 0, cls.agent_b.ids)],
            }
        )

        # Registrants
        Partner = cls.env["res.partner"]

        def registrant(name, **vals):
            return Partner.create(dict({"name": name, "is_registrant": True}, **vals))

        cls.house_a = registrant(
            "House A", is_group=True, area_id=cls.alpha.id, service_point_id=cls.point_a.id, id_number="H-A"
        )
        cls.ind_a1 = registrant(
            "Ann A",
            id_number="ID-A1",
            birthdate="1990-05-01",
            has_disability=True,
            service_point_id=cls.point_a.id,
        )
        cls.ind_a2 = registrant("Ben A", id_number="ID-A2", is_pregnant=True, service_point_id=cls.point_a.id)
        cls.house_b = registrant(
            "House B", is_group=True, area_id=cls.south.id, service_point_id=cls.point_b.id, id_number="H-B"
        )
        cls.ind_b1 = registrant("Cleo B", id_number="ID-B1", service_point_id=cls.point_b.id)
        cls.ind_free = registrant("Dan Free", id_number="ID-F", area_id=cls.alpha.id)
        Membership = cls.env["g2p.group.membership"]
        Membership.create(
            [
                {"group_id": cls.house_a.id, "individual_id": cls.ind_a1.id},
                {"group_id": cls.house_a.id, "individual_id": cls.ind_a2.id},
                {"group_id": cls.house_b.id, "individual_id": cls.ind_b1.id},
            ]
        )
        cls.contact = Partner.create({"name": "Plain Contact (not a registrant)"})
        cls.registrants = cls.house_a | cls.ind_a1 | cls.ind_a2 | cls.house_b | cls.ind_b1 | cls.ind_free
