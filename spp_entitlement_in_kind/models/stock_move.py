from odoo import api, fields, models


class StockMove(models.Model):
    _inherit = "stock.move"

    g2p_allocation_id = fields.Many2one(
        "g2p.inkind.allocation",
        string="In-kind allocation",
        index="btree_not_null",
        ondelete="restrict",
        readonly=True,
        help="The cycle × warehouse × service point × product whose in-kind entitlements this move "
        "delivers (or returns). Copied onto the remainder when Odoo splits the move.",
    )
    g2p_cycle_id = fields.Many2one(
        related="g2p_allocation_id.cycle_id",
        string="Distribution cycle",
        store=True,
        index="btree_not_null",
    )

    @api.model
    def _prepare_merge_moves_distinct_fields(self):
        # one move per allocation: never merge two of them
        return super()._prepare_merge_moves_distinct_fields() + ["g2p_allocation_id"]
