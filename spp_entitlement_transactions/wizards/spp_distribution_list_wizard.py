import base64
import csv
import io
from collections import defaultdict

from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext import ern
from odoo.exceptions import UserError
from odoo.tools import float_repr

from ..models.spp_entitlement_transaction import REDEEMABLE_STATES, refusal

QR_SIZE = 200  # pixels of the generated PNG; printed at about 2 cm
CSV_COLUMNS = [
    "household",
    "beneficiary",
    "id_digits",
    "code",
    "item",
    "quantity",
    "balance",
    "unit",
    "valid_until",
]


class SppDistributionListWizard(models.TransientModel):
    """A distribution list: for one service point and cycle (optionally one day), every
    open entitlement collected there, in household order, with its ERN (text and QR),
    item and quantity, a column to sign or thumbprint, and totals per item; as a PDF or
    a CSV of the same lines.

    Generic over the entitlement models that take redemptions (cash and, when
    installed, in-kind): each gives its item and unit through its redemption hooks
    (``_redemption_product``, ``_redemption_uom``, ``_redemption_unit``), so the list
    also serves a cash-only deployment. Officers (back office) print it for any point,
    agents for their own points (``spp.entitlement.transaction._check_service_point``)."""

    _name = "spp.distribution.list.wizard"
    _description = "Distribution list"

    service_point_id = fields.Many2one("spp.service.point", required=True)
    # A selection, not a many2one: agents do not read cycles (g2p.cycle has no agent
    # access); the choices are the approved or distributed cycles, read as superuser.
    cycle = fields.Selection(selection="_selection_cycle", required=True)
    day = fields.Date(help="Only the entitlements that can be collected on this day (optional).")
    csv_file = fields.Binary(string="CSV", readonly=True, attachment=False)
    csv_filename = fields.Char(readonly=True)

    @api.model
    def _selection_cycle(self):
        cycles = (
            self.env["g2p.cycle"]
            .sudo()
            .search([("state", "in", ("approved", "distributed"))], order="start_date desc, id desc")
        )
        return [(str(cycle.id), "%s · %s" % (cycle.program_id.name, cycle.name)) for cycle in cycles]

    def _cycle(self):
        """The chosen g2p.cycle (sudo: agents do not read cycles; rights are checked on the point)."""
        return self.env["g2p.cycle"].sudo().browse(int(self.cycle))

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        points = self.env.user.service_point_ids
        if "service_point_id" in fields_list and len(points) == 1 and not values.get("service_point_id"):
            values["service_point_id"] = points.id
        return values

    # ------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------
    def action_print(self):
        """The PDF (QWeb report ``spp_entitlement_transactions.distribution_list``).

        :return: dict, an ``ir.actions.report``
        :raise UserError: ``[nothing_to_print]``; as ``_check_service_point``."""
        self.ensure_one()
        self._distribution_list()  # checks rights and that there is something to print
        return self.env.ref("spp_entitlement_transactions.spp_distribution_list_report").report_action(self)

    def action_export_csv(self):
        """The same lines as a CSV file (UTF-8, one row per entitlement), downloaded.

        :return: dict, an ``ir.actions.act_url``"""
        self.ensure_one()
        content = self._distribution_csv()
        self.write(
            {
                "csv_file": base64.b64encode(content.encode()),
                "csv_filename": "distribution-list-%s-%s.csv"
                % (self.service_point_id.code or self.service_point_id.id, self.cycle),
            }
        )
        return {
            "type": "ir.actions.act_url",
            "url": "/web/content/?model=%s&id=%s&field=csv_file&filename_field=csv_filename&download=true"
            % (self._name, self.id),
            "target": "self",
        }

    # ------------------------------------------------------------------
    # Lines
    # ------------------------------------------------------------------
    def _distribution_list(self):
        """``{point, cycle, day, households, totals}``: ``households`` a list of dicts
        ``{household, beneficiary, id_digits, lines}`` in household name order, ``lines``
        dicts ``{code, item, quantity, balance, unit, valid_until, qr}`` (``quantity``
        the entitlement's figure, ``balance`` what is left, both as text with the unit's
        decimals, ``qr`` a base64 PNG); ``totals`` a list of ``{item, unit, quantity,
        balance}`` per item and unit.

        :raise AccessError: as ``spp.entitlement.transaction._check_service_point``.
        :raise UserError: ``[nothing_to_print]`` when no entitlement is open there."""
        self.ensure_one()
        Transaction = self.env["spp.entitlement.transaction"]
        point = Transaction._check_service_point(self.service_point_id.id, back_office=True).sudo()
        cycle = self._cycle()
        domain = [
            ("service_point_id", "=", point.id),
            ("cycle_id", "=", cycle.id),
            ("state", "in", REDEEMABLE_STATES),
            ("code", "!=", False),
        ]
        if self.day:
            domain += [
                "|",
                ("valid_from", "=", False),
                ("valid_from", "<=", self.day),
                "|",
                ("valid_until", "=", False),
                ("valid_until", ">=", self.day),
            ]
        groups = {}
        totals = defaultdict(lambda: [0.0, 0.0, 0.01])
        for model in self.env["g2p.entitlement.base"]._redemption_models():
            for entitlement in self.env[model].sudo().search(domain, order="code"):
                household = Transaction._handout_household(entitlement.partner_id)
                key = (
                    household.name or "",
                    household.id,
                    entitlement.partner_id.name or "",
                    entitlement.partner_id.id,
                )
                if key not in groups:
                    groups[key] = {
                        "household": household.name,
                        "beneficiary": entitlement.partner_id.name,
                        "id_digits": Transaction._id_digits(entitlement.partner_id, household) or "",
                        "lines": [],
                    }
                product = entitlement._redemption_product()
                item = product.display_name if product else _("Cash")
                unit = entitlement._redemption_unit_name()
                rounding = entitlement._redemption_rounding()
                total = entitlement[entitlement._redemption.total]
                balance = entitlement._redemption_balance()
                code = ern.display(entitlement.code)
                png = self.env["ir.actions.report"].barcode(
                    "QR", code, width=QR_SIZE, height=QR_SIZE, quiet=0, barLevel="M"
                )
                groups[key]["lines"].append(
                    {
                        "code": code,
                        "item": item,
                        "quantity": self._format(total, rounding),
                        "balance": self._format(balance, rounding),
                        "unit": unit,
                        "valid_until": fields.Date.to_string(entitlement.valid_until)
                        if entitlement.valid_until
                        else "",
                        "qr": base64.b64encode(png).decode(),
                    }
                )
                figures = totals[(item, unit)]
                figures[0] += total
                figures[1] += balance
                figures[2] = rounding
        if not groups:
            raise refusal(
                UserError,
                "nothing_to_print",
                _(
                    "No open entitlement of cycle %(cycle)s is collected at %(point)s%(day)s: nothing to print.",
                    cycle=cycle.name,
                    point=point.display_name,
                    day=_(" on %s", self.day) if self.day else "",
                ),
            )
        return {
            "point": point,
            "cycle": cycle,
            "day": self.day,
            "households": [groups[key] for key in sorted(groups)],
            "totals": [
                {
                    "item": item,
                    "unit": unit,
                    "quantity": self._format(figures[0], figures[2]),
                    "balance": self._format(figures[1], figures[2]),
                }
                for (item, unit), figures in sorted(totals.items())
            ],
        }

    def _distribution_csv(self):
        """The lines of :meth:`_distribution_list` as CSV text (header ``CSV_COLUMNS``)."""
        data = self._distribution_list()
        out = io.StringIO()
        writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for group in data["households"]:
            for line in group["lines"]:
                writer.writerow({**group, **line})
        return out.getvalue()

    @api.model
    def _format(self, figure, rounding):
        """``figure`` with the decimals ``rounding`` allows, trailing zeros dropped."""
        decimals = len(float_repr(rounding or 1.0, 6).rstrip("0").split(".")[1])
        text = float_repr(figure, decimals)
        return text.rstrip("0").rstrip(".") if "." in text else text


class SppDistributionListReport(models.AbstractModel):
    _name = "report.spp_entitlement_transactions.distribution_list"
    _description = "Distribution list"

    @api.model
    def _get_report_values(self, docids, data=None):
        wizards = self.env["spp.distribution.list.wizard"].browse(docids)
        return {
            "doc_ids": docids,
            "doc_model": wizards._name,
            "docs": wizards,
            "lists": [w._distribution_list() for w in wizards],
        }
