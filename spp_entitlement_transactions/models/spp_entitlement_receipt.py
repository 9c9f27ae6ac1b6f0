from odoo import api, fields, models

COLLECTED_BY = [("beneficiary", "Beneficiary"), ("alternate", "Alternate collector")]


class SppEntitlementReceipt(models.Model):
    """Proof of receipt of one handout: who collected, whether their ID was checked, the
    signature when taken, and the redemptions handed out together (one household, one
    service point). Made by ``spp.entitlement.transaction.record_receipt`` (as
    superuser, after its checks) right after the redemptions; never changed (read-only
    for every group: the access rights grant no write)."""

    _name = "spp.entitlement.receipt"
    _description = "Proof of receipt of a handout"
    _order = "date desc, id desc"

    # Handout
    service_point_id = fields.Many2one("spp.service.point", required=True, index=True, readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    user_id = fields.Many2one("res.users", string="Agent", required=True, readonly=True)
    date = fields.Datetime(required=True, readonly=True, default=fields.Datetime.now)
    household_id = fields.Many2one("res.partner", readonly=True)
    transaction_ids = fields.Many2many(
        "spp.entitlement.transaction",
        "spp_entitlement_receipt_transaction_rel",
        "receipt_id",
        "transaction_id",
        string="Redemptions",
        readonly=True,
    )
    # Proof
    collected_by = fields.Selection(COLLECTED_BY, required=True, readonly=True)
    collector_name = fields.Char(
        readonly=True, help="Who collected: the beneficiary or the alternate collector."
    )
    id_checked = fields.Boolean(string="ID checked", readonly=True)
    signature = fields.Binary(
        attachment=True, readonly=True, help="The collector's signature (PNG), when taken."
    )
    # Idempotency
    references_key = fields.Char(
        required=True, readonly=True, help="The redemptions' references, sorted, joined by a new line."
    )
    payload_hash = fields.Char(readonly=True)

    _sql_constraints = [
        (
            "references_uniq",
            "unique (service_point_id, references_key)",
            "These redemptions already have their proof of receipt.",
        )
    ]

    @api.depends("household_id", "date")
    def _compute_display_name(self):
        for receipt in self:
            receipt.display_name = "%s · %s" % (receipt.household_id.name or "", receipt.date or "")
