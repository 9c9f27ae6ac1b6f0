import io

from odoo.addons.g2p_programs_ext import ern
from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools.pdf import PdfFileReader

from .common import InkindCommon

REPORT_INKIND = "spp_entitlement_in_kind.g2p_voucher_inkind_report"
REPORT_CASH = "spp_entitlement_in_kind.g2p_voucher_cash_report"


@tagged("post_install", "-at_install")
class TestVoucher(InkindCommon):
    """Vouchers printed by a program officer: one page per beneficiary and cycle, every
    redeemable entitlement of that page with its ERN as text and as a QR code.

    Post-install: the PDF needs the report assets of the installed database."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["g2p.program.entitlement.manager.cash"].with_user(cls.manager).create(
            {
                "program_id": cls.program.id,
                "validation_group_id": cls.validation_group.id,
                "item_ids": [(0, 0, {"amount": 40.0})],
            }
        )

    def render_html(self, report, records):
        html, _kind = (
            self.env["ir.actions.report"].with_user(self.officer)._render_qweb_html(report, records.ids)
        )
        return html.decode()

    def test_pdf_and_html_hold_every_ern(self):
        cycle = self.approved_cycle()
        selected = cycle.inkind_entitlement_ids.filtered(lambda e: e.partner_id in (self.h1 | self.h3))
        self.assertTrue(selected and all(selected.mapped("code")))
        pdf, kind = (
            self.env["ir.actions.report"]
            .with_user(self.officer)
            .with_context(force_report_rendering=True)
            ._render_qweb_pdf(REPORT_INKIND, selected.ids)
        )
        self.assertEqual(kind, "pdf")
        self.assertTrue(pdf.startswith(b"%PDF-"), "wkhtmltopdf made a PDF")
        self.assertEqual(PdfFileReader(io.BytesIO(pdf)).getNumPages(), 2, "one page per household")
        html = self.render_html(REPORT_INKIND, selected)
        cash = cycle.entitlement_ids.filtered(lambda e: e.partner_id in (self.h1 | self.h3))
        self.assertEqual(len(cash), 2)
        for entitlement in [*selected, *cash]:
            self.assertIn(
                ern.display(entitlement.code), html, "each ERN is printed, the household's cash too"
            )
        self.assertEqual(html.count("o_g2p_qr"), len(selected) + len(cash), "one QR code per ERN")
        self.assertEqual(html.count("o_g2p_voucher"), 2, "one page per household and cycle")
        for text in ("Alpha school", "Beta clinic", ">7,500 g<", ">10,000 g<", ">1 L<", ">H1<", ">H3<"):
            self.assertIn(text, html)
        self.assertNotIn(">H2<", html, "households not selected are not printed")

    def test_printed_from_cash_entitlements(self):
        cycle = self.approved_cycle()
        cash = cycle.entitlement_ids.filtered(lambda e: e.partner_id == self.h2)
        html = self.render_html(REPORT_CASH, cash)
        goods = cycle.inkind_entitlement_ids.filtered(lambda e: e.partner_id == self.h2)
        for entitlement in [*cash, *goods]:
            self.assertIn(ern.display(entitlement.code), html)

    def test_only_redeemable_entitlements(self):
        cycle = self.approved_cycle()
        rejected = self.entitlement(cycle, self.h1, self.oil)
        rejected_code = ern.display(rejected.code)
        rejected.with_user(self.validator).action_reject("other", "Duplicate")
        html = self.render_html(
            REPORT_INKIND, cycle.inkind_entitlement_ids.filtered(lambda e: e.partner_id == self.h1)
        )
        self.assertIn(ern.display(self.entitlement(cycle, self.h1, self.rice).code), html)
        self.assertNotIn(rejected_code, html, "a rejected entitlement is not printed")
        pending = self.pending_cycle()
        with self.assertRaisesRegex(UserError, r"\[nothing_to_print\]"):
            self.render_html(REPORT_INKIND, pending.inkind_entitlement_ids)

    def test_print_menu_for_officers(self):
        report = self.env.ref(REPORT_INKIND)
        self.assertEqual(report.binding_model_id.model, "g2p.entitlement.inkind")
        self.assertEqual(self.env.ref(REPORT_CASH).binding_model_id.model, "g2p.entitlement")
        bindings = (
            self.env["ir.actions.actions"].with_user(self.officer).get_bindings("g2p.entitlement.inkind")
        )
        self.assertIn(report.id, [a["id"] for a in bindings.get("report", [])])
        bindings = (
            self.env["ir.actions.actions"].with_user(self.internal).get_bindings("g2p.entitlement.inkind")
        )
        self.assertNotIn(report.id, [a["id"] for a in bindings.get("report", [])])
