import base64
import math
from collections import defaultdict

from odoo import _, api, models
from odoo.addons.g2p_programs_ext import ern
from odoo.addons.g2p_programs_ext.refusal import coded
from odoo.exceptions import UserError
from odoo.tools.misc import formatLang

# What a beneficiary can still bring to a service point.
PRINTABLE_STATES = ("approved", "transferred")
QR_SIZE = 300  # pixels of the generated PNG; printed at about 3 cm (see the template)


class G2PVoucherReportMixin(models.AbstractModel):
    """Values of the voucher report: one page per beneficiary and cycle.

    The pages are the (beneficiary, cycle) pairs of the selected entitlements (cash or
    in-kind); each page lists every entitlement of that beneficiary in that cycle that
    can be redeemed (``approved`` or ``transferred``, so with an ERN), cash and in-kind
    together, each with its ERN as text and as a QR code.
    """

    _name = "report.spp_entitlement_in_kind.voucher_mixin"
    _description = "Entitlement voucher values"

    @api.model
    def _get_report_values(self, docids, data=None):
        """:param docids: ids of the report's model (g2p.entitlement or g2p.entitlement.inkind)
        :return: dict for the template: ``pages`` (list of dicts, see ``_voucher_pages``)
        :raise UserError: ``[nothing_to_print]`` none of the selection can be redeemed."""
        report = self.env["ir.actions.report"]._get_report_from_name(self._name[len("report.") :])
        selected = self.env[report.model].browse(docids)
        pages = self._voucher_pages(selected)
        if not pages:
            raise UserError(
                coded(
                    "nothing_to_print",
                    _(
                        "None of the %s selected entitlement(s) can be redeemed "
                        "(approved or transferred, with an ERN): nothing to print.",
                        len(selected),
                    ),
                )
            )
        return {"doc_ids": docids, "doc_model": report.model, "docs": selected, "pages": pages}

    @api.model
    def _voucher_pages(self, selected):
        """The pages for the entitlements ``selected`` (a recordset of g2p.entitlement or
        g2p.entitlement.inkind), ordered by service point, beneficiary and cycle.

        :return: list of dicts ``{partner, household, cycle, program, title, company, service_point,
            valid_from, valid_until, lines}``; ``lines`` a list of dicts ``{code,
            label, quantity, qr}`` (``quantity`` already formatted with its unit or
            currency, ``qr`` a PNG as base64 text).
        """
        selected.check_access_rights("read")
        selected.check_access_rule("read")
        pairs = {(e.partner_id.id, e.cycle_id.id) for e in selected}
        if not pairs:
            return []
        partner_ids = list({p for p, _c in pairs})
        cycle_ids = list({c for _p, c in pairs})
        by_pair = defaultdict(list)
        for model in self.env["g2p.cycle"]._entitlement_models():
            found = self.env[model].search(
                [
                    ("partner_id", "in", partner_ids),
                    ("cycle_id", "in", cycle_ids),
                    ("state", "in", PRINTABLE_STATES),
                    ("code", "!=", False),
                ],
                order="id",
            )
            for entitlement in found:
                key = (entitlement.partner_id.id, entitlement.cycle_id.id)
                if key in pairs:
                    by_pair[key].append(entitlement)
        households = self._households(self.env["res.partner"].browse(partner_ids))
        pages = []
        for entitlements in by_pair.values():
            first = entitlements[0]
            points = [e.service_point_id for e in entitlements if e.service_point_id]
            starts = [e.valid_from for e in entitlements if e.valid_from]
            ends = [e.valid_until for e in entitlements if e.valid_until]
            pages.append(
                {
                    "partner": first.partner_id,
                    "household": households.get(first.partner_id.id),
                    "cycle": first.cycle_id,
                    "program": first.program_id,
                    "title": first.cycle_id.name
                    if first.program_id.name and first.program_id.name in (first.cycle_id.name or "")
                    else "%s · %s" % (first.program_id.name, first.cycle_id.name),
                    "company": first.company_id,
                    "service_point": points[0] if points else False,
                    "valid_from": min(starts) if starts else False,
                    "valid_until": max(ends) if ends else False,
                    "lines": [self._voucher_line(e) for e in entitlements],
                }
            )
        pages.sort(
            key=lambda p: (
                p["service_point"].name if p["service_point"] else "",
                p["partner"].name or "",
                str(p["cycle"].start_date or ""),
            )
        )
        return pages

    @api.model
    def _voucher_line(self, entitlement):
        """One row of a voucher for ``entitlement`` (cash or in-kind)."""
        code = ern.display(entitlement.code)
        if entitlement._name == "g2p.entitlement.inkind":
            label = entitlement.product_id.display_name
            quantity = "%s %s" % (
                self._format_quantity(entitlement.quantity, entitlement.uom_id.rounding),
                entitlement.uom_id.name,
            )
        else:
            label = _("Cash")
            quantity = formatLang(self.env, entitlement.initial_amount, currency_obj=entitlement.currency_id)
        png = self.env["ir.actions.report"].barcode(
            "QR", code, width=QR_SIZE, height=QR_SIZE, quiet=0, barLevel="M"
        )
        return {"code": code, "label": label, "quantity": quantity, "qr": base64.b64encode(png).decode()}

    @api.model
    def _format_quantity(self, quantity, rounding):
        """``quantity`` with as many decimals as ``rounding`` allows, trailing zeros dropped."""
        digits = max(0, -math.floor(math.log10(rounding))) if rounding and rounding < 1 else 0
        text = formatLang(self.env, quantity, digits=digits)
        point = self.env["res.lang"]._lang_get(self.env.lang or "en_US").decimal_point or "."
        if digits and point in text:
            text = text.rstrip("0").rstrip(point)
        return text

    @api.model
    def _households(self, partners):
        """{partner id: household (res.partner)}: a household is its own; an individual's
        is the household of their current membership; none is left out."""
        result = {p.id: p for p in partners if p.is_group}
        individuals = partners.filtered(lambda p: not p.is_group)
        if individuals:
            memberships = (
                self.env["g2p.group.membership"]
                .sudo()
                .search([("individual_id", "in", individuals.ids), ("end_date", "=", False)])
            )
            for membership in memberships:
                result.setdefault(membership.individual_id.id, membership.group_id.with_env(self.env))
        return result


class G2PVoucherReportInkind(models.AbstractModel):
    _name = "report.spp_entitlement_in_kind.voucher_inkind"
    _inherit = ["report.spp_entitlement_in_kind.voucher_mixin"]
    _description = "Vouchers (printed from in-kind entitlements)"


class G2PVoucherReportCash(models.AbstractModel):
    _name = "report.spp_entitlement_in_kind.voucher_cash"
    _inherit = ["report.spp_entitlement_in_kind.voucher_mixin"]
    _description = "Vouchers (printed from cash entitlements)"
