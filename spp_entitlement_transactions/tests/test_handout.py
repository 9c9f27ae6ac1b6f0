import base64
import shutil
import subprocess
import tempfile
from pathlib import Path

from odoo.addons.g2p_programs_ext import ern
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import tagged

from .common import InkindRedemptionCase

# The smallest valid PNG (1x1), as a signature pad would send it
PNG = base64.b64encode(
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
).decode()


@tagged("post_install", "-at_install")
class TestHandoutApi(InkindRedemptionCase):
    """The handout screen's side of the API: a household's open entitlements, the proof
    of receipt, legacy codes, the agents' home action."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        head = cls.env.ref("g2p_programs_ext.membership_kind_head")
        alternate = cls.env.ref("g2p_programs_ext.membership_kind_alternate_collector")
        cls.ind_a1.write({"id_number": "PH-1234-5678", "is_pregnant": True})
        cls.house_a1.group_membership_ids.filtered(lambda m: m.individual_id == cls.ind_a1).kind_ids = head
        cls.ben = cls.env["res.partner"].create({"name": "Ben A1", "is_registrant": True})
        cls.env["g2p.group.membership"].create(
            {"group_id": cls.house_a1.id, "individual_id": cls.ben.id, "kind_ids": [(6, 0, alternate.ids)]}
        )

    def test_handout_lookup_gives_the_household_basket(self):
        answer = self.api(self.agent_a).handout_lookup(
            self.point_a.id, ern.normalize(self.ink_a1.code).lower()
        )
        self.assertEqual((answer["code"], answer["state"]), (self.ink_a1.code, "approved"))
        household = answer["household"]
        self.assertEqual(
            {k: household[k] for k in ("household", "beneficiary", "id_digits", "alternate_collectors")},
            {
                "household": "House A1",
                "beneficiary": "House A1",
                "id_digits": "5678",
                "alternate_collectors": ["Ben A1"],
            },
        )
        lines = {line["code"]: line for line in household["entitlements"]}
        self.assertEqual(
            set(lines), {self.ink_a1.code, self.ent_a1.code}, "cash and rice of House A1 at Point A"
        )
        self.assertEqual(
            {k: lines[self.ink_a1.code][k] for k in ("product", "uom", "balance", "kind", "currency")},
            {"product": "Rice", "uom": "kg", "balance": 10.0, "kind": "inkind", "currency": False},
        )
        self.assertEqual(lines[self.ent_a1.code]["kind"], "cash")
        self.assertEqual(lines[self.ent_a1.code]["currency"], self.currency)
        self.assertNotIn("pregnant", str(answer).lower(), "no health data")

    def test_handout_lookup_refusals(self):
        self.assertRefused(
            "wrong_service_point",
            self.api(self.agent_a).handout_lookup,
            self.point_a.id,
            self.ink_b1.code,
            exception=UserError,
        )
        self.assertRefused(
            "not_your_service_point",
            self.api(self.agent_a).handout_lookup,
            self.point_b.id,
            self.ink_b1.code,
            exception=AccessError,
        )

    def test_handout_entitlements_group_by_household(self):
        groups = self.api(self.agent_a).handout_entitlements(self.point_a.id)
        self.assertEqual([g["household"] for g in groups], ["House A1", "House A2"])
        codes = {e["code"] for g in groups for e in g["entitlements"]}
        expected = {a["code"] for a in self.api(self.agent_a).entitlements_for_service_point(self.point_a.id)}
        self.assertEqual(codes, expected, "the same entitlements as entitlements_for_service_point")

    def handout(self, agent=None, refs=("H-1", "H-2")):
        agent = self.api(agent or self.agent_a)
        agent.redeem(self.ink_a1.code, 4, self.point_a.id, refs[0])
        agent.redeem(self.ent_a1.code, 30, self.point_a.id, refs[1])
        return list(refs)

    def test_record_receipt_is_idempotent(self):
        refs = self.handout()
        agent = self.api(self.agent_a)
        answer = agent.record_receipt(self.point_a.id, refs, "alternate", "Ben A1", True, PNG)
        self.assertEqual(
            {k: answer[k] for k in ("references", "collected_by", "collector_name", "id_checked", "signed")},
            {
                "references": refs,
                "collected_by": "alternate",
                "collector_name": "Ben A1",
                "id_checked": True,
                "signed": True,
            },
        )
        self.assertEqual(
            agent.record_receipt(self.point_a.id, refs[::-1], "alternate", "Ben A1", True, PNG), answer
        )
        self.assertEqual(self.env["spp.entitlement.receipt"].sudo().search_count([]), 1)
        transactions = self.Transaction.sudo().search([("reference", "in", refs)])
        self.assertEqual(set(transactions.mapped("collector_name")), {"Ben A1"})
        self.assertTrue(all(transactions.mapped("id_checked")))
        self.assertTrue(all(transactions.mapped("signature")))
        self.assertRefused(
            "receipt_exists",
            agent.record_receipt,
            self.point_a.id,
            refs,
            "beneficiary",
            "",
            False,
            False,
            exception=UserError,
        )

    def test_record_receipt_refusals(self):
        refs = self.handout()
        agent = self.api(self.agent_a)
        point = self.point_a.id
        self.assertRefused(
            "not_alternate_collector",
            agent.record_receipt,
            point,
            refs,
            "alternate",
            "Somebody",
            True,
            False,
            exception=UserError,
        )
        self.assertRefused(
            "bad_collector",
            agent.record_receipt,
            point,
            refs,
            "neighbour",
            "",
            True,
            False,
            exception=ValidationError,
        )
        self.assertRefused(
            "bad_signature",
            agent.record_receipt,
            point,
            refs,
            "beneficiary",
            "",
            True,
            "bm90IGEgcG5n",
            exception=ValidationError,
        )
        self.assertRefused(
            "unknown_reference",
            agent.record_receipt,
            point,
            ["NOPE"],
            "beneficiary",
            "",
            True,
            False,
            exception=UserError,
        )
        self.assertRefused(
            "bad_reference",
            agent.record_receipt,
            point,
            [],
            "beneficiary",
            "",
            True,
            False,
            exception=ValidationError,
        )
        self.api(self.agent_a).redeem(self.ent_a2.code, 1, point, "H-3")
        self.assertRefused(
            "mixed_households",
            agent.record_receipt,
            point,
            [*refs, "H-3"],
            "beneficiary",
            "",
            True,
            False,
            exception=UserError,
        )
        self.assertRefused(
            "not_your_service_point",
            self.api(self.agent_b).record_receipt,
            point,
            refs,
            "beneficiary",
            "",
            True,
            False,
            exception=AccessError,
        )
        answer = agent.record_receipt(point, refs, "beneficiary", "", False, False)
        self.assertEqual(answer["collector_name"], "House A1", "the beneficiary's name when none is given")

    def test_legacy_code_accepted_only_when_it_exists(self):
        def legacy_code():
            """A code with a correct MOD 37-2 check character that the new check refuses."""
            while True:
                body = ern.generate()[:-1]
                code = body + ern.legacy_check_character(body)
                if not ern.is_valid(code):
                    return ern.display(code)

        legacy = legacy_code()
        self.env.cr.execute("UPDATE g2p_entitlement SET code = %s WHERE id = %s", [legacy, self.ent_a2.id])
        self.ent_a2.invalidate_recordset()
        self.assertEqual(
            self.api(self.agent_a).lookup(legacy)["code"], legacy, "a printed legacy voucher still works"
        )
        self.assertEqual(self.api(self.agent_a).redeem(legacy, 5, self.point_a.id, "LEG-1")["balance"], 95.0)
        self.assertRefused(
            "bad_check_character", self.api(self.agent_a).lookup, legacy_code(), exception=ValidationError
        )

    def test_agents_home_action(self):
        action = self.env.ref("spp_entitlement_transactions.spp_handout_action")
        self.assertEqual(self.agent_a.action_id.id, action.id)
        self.assertFalse(self.officer.action_id)
        self.officer.groups_id = [(4, self.env.ref("spp_service_points.group_service_point_agent").id)]
        self.assertEqual(self.officer.action_id.id, action.id, "made an agent: lands on the handout screen")

    def test_receipt_pdf_holds_every_code_and_quantity(self):
        refs = self.handout()
        receipt_id = self.api(self.agent_a).record_receipt(
            self.point_a.id, refs, "alternate", "Ben A1", True, PNG
        )["receipt_id"]
        pdf, kind = (
            self.env["ir.actions.report"]
            .with_user(self.agent_a)
            .with_context(force_report_rendering=True)
            ._render_qweb_pdf("spp_entitlement_transactions.spp_entitlement_receipt_report", [receipt_id])
        )
        self.assertEqual(kind, "pdf")
        text = pdf_text_and_images(self, pdf)
        for code in (self.ink_a1.code, self.ent_a1.code):
            self.assertIn(code, text, "every code in the PDF")
        html, _kind = (
            self.env["ir.actions.report"]
            .with_user(self.agent_a)
            ._render_qweb_html("spp_entitlement_transactions.spp_entitlement_receipt_report", [receipt_id])
        )
        html = " ".join(html.decode().split())
        for expected in (
            "Rice",
            ">4</span> <span>kg",
            "30.00",
            "Ben A1",
            "ID checked: <strong>yes",
            "House A1",
        ):
            self.assertIn(expected, html)
        with self.assertRaises(AccessError):
            self.env["ir.actions.report"].with_user(self.agent_b)._render_qweb_html(
                "spp_entitlement_transactions.spp_entitlement_receipt_report", [receipt_id]
            )


def pdf_text_and_images(case, pdf):
    """The text of ``pdf`` (pdftotext, layout kept) after checking each page renders to
    a non-blank PNG image (pdftoppm)."""
    case.assertTrue(shutil.which("pdftoppm") and shutil.which("pdftotext"), "poppler-utils is needed")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.pdf"
        path.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-r", "60", "-png", str(path), str(Path(tmp) / "page")], check=True)
        pages = sorted(Path(tmp).glob("page*.png"))
        case.assertTrue(pages, "rendered to images")
        for page in pages:
            png = page.read_bytes()
            case.assertTrue(png.startswith(b"\x89PNG"))
            case.assertGreater(len(set(png[200:])), 20, "the page image is not blank")
        return subprocess.run(
            ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
        ).stdout
