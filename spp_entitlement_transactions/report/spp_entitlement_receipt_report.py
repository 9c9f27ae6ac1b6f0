from odoo import api, models
from odoo.tools import float_repr


class SppEntitlementReceiptReport(models.AbstractModel):
    """Values of the handout receipt: the receipts (spp.entitlement.receipt) the user may
    read, and ``format_qty`` (a quantity with the decimals its UoM's rounding allows)."""

    _name = "report.spp_entitlement_transactions.receipt_document"
    _description = "Handout receipt"

    @api.model
    def _get_report_values(self, docids, data=None):
        receipts = self.env["spp.entitlement.receipt"].browse(docids)
        receipts.check_access_rights("read")
        receipts.check_access_rule("read")
        return {
            "doc_ids": docids,
            "doc_model": "spp.entitlement.receipt",
            "docs": receipts,
            "format_qty": self._format_qty,
        }

    @api.model
    def _format_qty(self, quantity, uom):
        """``quantity`` (float, in ``uom``) as text, trailing zeros dropped: 7.5, 10."""
        digits = max(0, len(float_repr(uom.rounding or 1.0, 6).rstrip("0").split(".")[1])) if uom else 2
        text = float_repr(quantity, digits)
        return text.rstrip("0").rstrip(".") if "." in text else text
