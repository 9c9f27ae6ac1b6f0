from odoo import _, models
from odoo.addons.g2p_programs_ext.refusal import coded
from odoo.exceptions import UserError


class StockPicking(models.Model):
    _inherit = "stock.picking"

    def _check_not_g2p_managed(self):
        managed = self.filtered(
            lambda p: (
                p.state not in ("done", "cancel")
                and p.picking_type_code == "outgoing"
                and any(p.move_ids.mapped("g2p_allocation_id"))
            )
        )
        if managed:
            raise UserError(
                coded(
                    "managed_by_cycle",
                    _(
                        "Transfer %(name)s delivers the in-kind entitlements of cycle %(cycle)s: "
                        "its quantities are posted from the cycle (Post deliveries) as beneficiaries collect them, "
                        "and released when entitlements are rejected, cancelled or expire. Do not validate or "
                        "cancel it by hand.",
                        name=managed[0].name,
                        cycle=managed[0].move_ids.g2p_allocation_id.cycle_id[:1].name,
                    ),
                )
            )

    def button_validate(self):
        self._check_not_g2p_managed()
        return super().button_validate()

    def action_cancel(self):
        self._check_not_g2p_managed()
        return super().action_cancel()
