from odoo import fields, models


class SppServicePoint(models.Model):
    """The warehouse that supplies a service point: here, not in spp_service_points, so
    that a cash-only deployment has service points without ``stock``."""

    _inherit = "spp.service.point"

    warehouse_id = fields.Many2one(
        "stock.warehouse",
        check_company=True,
        ondelete="restrict",
        help="The warehouse that supplies this point; empty: the program's default warehouse.",
    )
