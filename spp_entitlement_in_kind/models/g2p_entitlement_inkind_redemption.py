from odoo import fields, models
from odoo.addons.spp_entitlement_transactions.models.g2p_entitlement_base import Redemption


class G2PEntitlementInkind(models.Model):
    """In-kind entitlements in the ledger of spp_entitlement_transactions: quantities in
    the entitlement's unit of measure. Redemptions only update ``quantity_redeemed``;
    the stock is posted in batches (``g2p.cycle.action_post_deliveries``)."""

    _inherit = "g2p.entitlement.inkind"

    # currency: read from the stored program_id (= currency_id, related through the
    # cycle): one query less on every in-kind redemption
    _redemption = Redemption(
        link="inkind_entitlement_id",
        figure="quantity",
        total="quantity",
        redeemed="quantity_redeemed",
        balance="quantity_balance",
        unit="uom_id",
        default_rounding=0.001,
        currency="program_id.currency_id",
        product="product_id",
        uom="uom_id",
    )

    transaction_ids = fields.One2many(
        "spp.entitlement.transaction", "inkind_entitlement_id", string="Transactions"
    )
