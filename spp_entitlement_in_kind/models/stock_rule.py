from odoo import models


class StockRule(models.Model):
    _inherit = "stock.rule"

    def _get_custom_move_fields(self):
        # carried from the procurement values of in-kind reservations onto their moves
        return super()._get_custom_move_fields() + ["g2p_cycle_id", "g2p_service_point_id"]
