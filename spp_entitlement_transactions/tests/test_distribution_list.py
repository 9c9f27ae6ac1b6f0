import csv
import io

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from .common import InkindRedemptionCase
from .test_handout import pdf_text_and_images

REPORT = "spp_entitlement_transactions.spp_distribution_list_report"


@tagged("post_install", "-at_install")
class TestDistributionList(InkindRedemptionCase):
    """Distribution lists per service point and cycle: PDF (rendered to images, text
    checked for every code and quantity) and CSV of the same lines."""

    def wizard(self, user, point, cycle, day=False):
        return (
            self.env["spp.distribution.list.wizard"]
            .with_user(user)
            .create({"service_point_id": point.id, "cycle": str(cycle.id), "day": day})
        )

    def html(self, wizard):
        html, _kind = (
            self.env["ir.actions.report"].with_user(wizard.env.user)._render_qweb_html(REPORT, wizard.ids)
        )
        return html.decode()

    def pdf_text(self, wizard):
        """The PDF's text (rendered to images and checked non-blank). wkhtmltopdf gives a
        text layer for the monospace codes whatever fonts the report CSS brings; the
        other figures are checked in the same report's HTML."""
        pdf, kind = (
            self.env["ir.actions.report"]
            .with_user(wizard.env.user)
            .with_context(force_report_rendering=True)
            ._render_qweb_pdf(REPORT, wizard.ids)
        )
        self.assertEqual(kind, "pdf")
        return pdf_text_and_images(self, pdf)

    def test_officer_prints_any_point_with_every_code_and_quantity(self):
        self.api(self.agent_a).redeem(self.ink_a1.code, 4, self.point_a.id, "DL-1")
        wizard = self.wizard(self.officer, self.point_b, self.inkind_cycle)
        text = self.pdf_text(wizard)
        self.assertIn(self.ink_b1.code, text)
        self.assertNotIn(self.ink_a1.code, text, "only the point's entitlements")
        self.assertIn("House B1", self.html(wizard))
        wizard = self.wizard(self.officer, self.point_a, self.inkind_cycle)
        self.assertIn(self.ink_a1.code, self.pdf_text(wizard))
        html = " ".join(self.html(wizard).split())
        self.assertRegex(
            html,
            r"Rice</td>.*?>10</span> <span>kg</span>.*?>6</span> <span>kg</span>",
            "quantity and what is left",
        )
        self.assertRegex(html, r"Totals.*o_spp_total.*Rice</td>.*?>10</span> <span>kg.*?>6</span> <span>kg")
        self.assertIn("Signature or thumbprint", html)
        data = wizard._distribution_list()
        self.assertEqual(sum(len(g["lines"]) for g in data["households"]), 1)
        self.assertTrue(data["households"][0]["lines"][0]["qr"], "a QR code per ERN")

    def test_agent_prints_own_point_only_cash_in_household_order(self):
        wizard = self.wizard(self.agent_a, self.point_a, self.cycle)
        text = self.pdf_text(wizard)
        html = " ".join(self.html(wizard).split())
        for entitlement in self.ent_a1 | self.ent_a2:
            self.assertIn(entitlement.code, text)
            self.assertIn(entitlement.code, html)
        self.assertLess(html.index("House A1"), html.index("House A2"), "household order")
        self.assertRegex(
            html, r"o_spp_total.*Cash</td>.*?>200</span> <span>%s" % self.currency, "total of the cash"
        )
        with self.assertRaises(AccessError):
            self.wizard(self.agent_a, self.point_b, self.cycle)._distribution_list()

    def test_csv_has_the_same_lines(self):
        wizard = self.wizard(self.officer, self.point_a, self.cycle)
        rows = list(csv.DictReader(io.StringIO(wizard._distribution_csv())))
        self.assertEqual([r["code"] for r in rows], [self.ent_a1.code, self.ent_a2.code])
        self.assertEqual({r["quantity"] for r in rows}, {"100"})
        self.assertEqual([r["household"] for r in rows], ["House A1", "House A2"])
        action = wizard.action_export_csv()
        self.assertEqual(action["type"], "ir.actions.act_url")
        self.assertTrue(wizard.csv_file)

    def test_one_day_and_nothing_to_print(self):
        before = self.days(-400)
        with self.assertRaisesRegex(UserError, r"^\[nothing_to_print\]"):
            self.wizard(self.officer, self.point_a, self.cycle, day=before)._distribution_list()
