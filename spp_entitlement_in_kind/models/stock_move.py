from odoo import api, fields, models


class StockMove(models.Model):
    _inherit = "stock.move"

    g2p_cycle_id = fields.Many2one(
        "g2p.cycle",
        string="Distribution cycle",
        index="btree_not_null",
        ondelete="restrict",
        readonly=True,
        help="The cycle whose in-kind entitlements this move delivers (or returns).",
    )
    g2p_service_point_id = fields.Many2one(
        "spp.service.point",
        string="Service point",
        index="btree_not_null",
        ondelete="restrict",
        readonly=True,
        help="The service point whose beneficiaries this move serves.",
    )

    @api.model
    def _prepare_merge_moves_distinct_fields(self):
        # one move per cycle, warehouse, service point and product: never merge two of them
        return super()._prepare_merge_moves_distinct_fields() + ["g2p_cycle_id", "g2p_service_point_id"]
