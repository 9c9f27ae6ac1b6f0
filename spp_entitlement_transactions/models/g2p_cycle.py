from odoo import fields, models

# States of entitlements that were approved and not taken back (rejected, cancelled).
APPROVED_STATES = ("approved", "transferred", "redeemed", "partially_redeemed", "expired")


class G2PCycle(models.Model):
    """The cycle dashboard's redemption progress: what was redeemed against what was
    approved, cash in the program's currency (spp_entitlement_in_kind adds in-kind, per
    product in its unit)."""

    _inherit = "g2p.cycle"

    # ------------------------------------------------------------------
    # Redemption progress
    # ------------------------------------------------------------------
    redemption_amount_approved = fields.Monetary(
        compute="_compute_redemption_progress",
        currency_field="currency_id",
        string="Cash approved",
        help="Total of the cash entitlements approved (and not rejected or cancelled since).",
    )
    redemption_amount_redeemed = fields.Monetary(
        compute="_compute_redemption_progress", currency_field="currency_id", string="Cash redeemed"
    )
    redemption_amount_rate = fields.Float(
        compute="_compute_redemption_progress", string="Cash redeemed (%)", digits=(16, 1)
    )

    def _compute_redemption_progress(self):
        """One grouped query for the whole set of cycles, as the user may see the
        entitlements (spp_entitlement_in_kind adds the in-kind figures)."""
        cash = {
            cycle.id: (approved, redeemed)
            for cycle, approved, redeemed in self.env["g2p.entitlement"]._read_group(
                [("cycle_id", "in", self.ids), ("state", "in", APPROVED_STATES)],
                ["cycle_id"],
                ["initial_amount:sum", "amount_redeemed:sum"],
            )
        }
        for cycle in self:
            approved, redeemed = cash.get(cycle.id, (0.0, 0.0))
            cycle.redemption_amount_approved = approved
            cycle.redemption_amount_redeemed = redeemed
            cycle.redemption_amount_rate = 100.0 * redeemed / approved if approved else 0.0
