from odoo import fields, models

from .g2p_entitlement_base import Redemption


class G2PEntitlement(models.Model):
    """Cash entitlements: their redemptions, amounts in the program's currency.
    ``service_point_id`` comes from spp_service_points."""

    _inherit = "g2p.entitlement"

    _redemption = Redemption(
        link="entitlement_id",
        figure="amount",
        total="initial_amount",
        redeemed="amount_redeemed",
        balance="balance",
        unit="currency_id",
        default_rounding=0.01,
        currency="currency_id",
    )

    transaction_ids = fields.One2many("spp.entitlement.transaction", "entitlement_id", string="Transactions")
