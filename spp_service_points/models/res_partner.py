from odoo import fields, models

# Who may read health and birth data of registrants. Service point agents are not
# listed: a handout needs the name, the ID number and the household, nothing more.
PRIVATE_DATA_GROUPS = (
    "g2p_programs_ext.group_program_officer,"
    "g2p_programs_ext.group_program_validator,"
    "g2p_programs_ext.group_cycle_approver"
)


class ResPartner(models.Model):
    _inherit = "res.partner"

    # ------------------------------------------------------------------
    # Service point and area
    # ------------------------------------------------------------------
    service_point_id = fields.Many2one(
        "spp.service.point",
        string="Service point",
        index=True,
        ondelete="restrict",
        help="Where this registrant collects benefits by default; its agents may read the registrant.",
    )
    area_id = fields.Many2one(
        "spp.area",
        index=True,
        ondelete="restrict",
        help="Administrative area where the registrant (or household) lives.",
    )

    # ------------------------------------------------------------------
    # Privacy: the fields are declared by g2p_programs_ext; re-declaring them with
    # only ``groups`` keeps every other attribute and hides them from anyone outside
    # the suite's back-office roles (agents included): read, search, group by and
    # views. ``age`` is derived from ``birthdate`` and tells the year of birth, so it
    # gets the same groups.
    # ------------------------------------------------------------------
    birthdate = fields.Date(groups=PRIVATE_DATA_GROUPS)
    age = fields.Integer(groups=PRIVATE_DATA_GROUPS)
    has_disability = fields.Boolean(groups=PRIVATE_DATA_GROUPS)
    is_pregnant = fields.Boolean(groups=PRIVATE_DATA_GROUPS)
