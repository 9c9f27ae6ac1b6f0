from odoo import models


class StockRule(models.Model):
    _inherit = "stock.rule"

    def _get_custom_move_fields(self):
        # carried from the procurement values of an allocation onto its moves
        return super()._get_custom_move_fields() + ["g2p_allocation_id"]
