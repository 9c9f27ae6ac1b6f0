from markupsafe import Markup, escape

from odoo import _, fields, models

# States of entitlements that were approved and not taken back (rejected, cancelled).
APPROVED_STATES = ("approved", "transferred", "redeemed", "partially_redeemed", "expired")


class G2PCycle(models.Model):
    """The cycle dashboard's redemption progress: what was redeemed against what was
    approved, cash in the program's currency, in-kind per product in its unit."""

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
    redemption_inkind_html = fields.Html(
        compute="_compute_redemption_progress",
        string="In-kind redemption",
        help="Per product, in the entitlements' unit: quantity approved, redeemed, and the share redeemed.",
    )

    def _compute_redemption_progress(self):
        """Two grouped queries for the whole set of cycles (cash, in-kind), as the user
        may see the entitlements."""
        cash = {
            cycle.id: (approved, redeemed)
            for cycle, approved, redeemed in self.env["g2p.entitlement"]._read_group(
                [("cycle_id", "in", self.ids), ("state", "in", APPROVED_STATES)],
                ["cycle_id"],
                ["initial_amount:sum", "amount_redeemed:sum"],
            )
        }
        inkind = {}
        for cycle, product, uom, approved, redeemed in self.env["g2p.entitlement.inkind"]._read_group(
            [("cycle_id", "in", self.ids), ("state", "in", APPROVED_STATES)],
            ["cycle_id", "product_id", "uom_id"],
            ["quantity:sum", "quantity_redeemed:sum"],
        ):
            inkind.setdefault(cycle.id, []).append((product, uom, approved, redeemed))
        for cycle in self:
            approved, redeemed = cash.get(cycle.id, (0.0, 0.0))
            cycle.redemption_amount_approved = approved
            cycle.redemption_amount_redeemed = redeemed
            cycle.redemption_amount_rate = 100.0 * redeemed / approved if approved else 0.0
            rows = inkind.get(cycle.id)
            cycle.redemption_inkind_html = self._redemption_table(rows) if rows else False

    def _redemption_table(self, rows):
        """An HTML table of (product, uom, approved, redeemed) rows."""
        headers = [_("Product"), _("Unit"), _("Approved"), _("Redeemed"), _("Left"), _("Redeemed (%)")]
        head = Markup("").join(Markup("<th>%s</th>") % h for h in headers)
        body = Markup("")
        for product, uom, approved, redeemed in sorted(rows, key=lambda r: r[0].display_name or ""):
            rate = 100.0 * redeemed / approved if approved else 0.0
            cells = [
                product.display_name,
                uom.name,
                "%g" % round(approved, 6),
                "%g" % round(redeemed, 6),
                "%g" % round(approved - redeemed, 6),
                "%.1f %%" % rate,
            ]
            body += Markup("<tr>%s</tr>") % Markup("").join(Markup("<td>%s</td>") % escape(c) for c in cells)
        return Markup('<table class="table table-sm"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>') % (
            head,
            body,
        )
