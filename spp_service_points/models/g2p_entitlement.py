from odoo import api, fields, models
from odoo.tools import SQL


class G2PEntitlementBase(models.AbstractModel):
    _inherit = "g2p.entitlement.base"

    service_point_id = fields.Many2one(
        "spp.service.point",
        string="Service point",
        index=True,
        ondelete="restrict",
        help="Where the beneficiary collects: the beneficiary's service point when the entitlement was made.",
    )
    area_id = fields.Many2one(
        "spp.area",
        index=True,
        ondelete="restrict",
        readonly=True,
        help="The beneficiary's area when the entitlement was made (else its service point's area): "
        "for reports by area.",
    )

    @api.model
    def _complete_sql(self, values):
        """SQL twin of :meth:`_complete_vals`: the beneficiary's (``p``) service point,
        and area (else that service point's area), where ``values`` gives none.

        :param values: {field name: SQL over res_partner ``p``, or a constant}.
        :return: ``values``."""
        values = super()._complete_sql(values)
        point = values.setdefault("service_point_id", SQL("p.service_point_id"))
        if not isinstance(point, SQL):
            point = SQL("CAST(%s AS int4)", point or None)
        values.setdefault(
            "area_id",
            SQL("coalesce(p.area_id, (SELECT sp.area_id FROM spp_service_point sp WHERE sp.id = %s))", point),
        )
        return values

    @api.model
    def _complete_vals(self, vals_list):
        """Entitlements without a service point take their beneficiary's, and without an
        area the beneficiary's area, else that service point's area: one query per batch.

        :param vals_list: list of dicts of ``create`` values (completed in place).
        :return: ``vals_list``."""
        vals_list = super()._complete_vals(vals_list)
        missing = [
            v["partner_id"]
            for v in vals_list
            if v.get("partner_id") and ("service_point_id" not in v or "area_id" not in v)
        ]
        if not missing:
            return vals_list
        self.env["res.partner"].flush_model(["service_point_id", "area_id"])
        self.env["spp.service.point"].flush_model(["area_id"])
        self.env.cr.execute(
            """SELECT p.id, p.service_point_id, p.area_id FROM res_partner p WHERE p.id = ANY(%s)""",
            [list(set(missing))],
        )
        partners = {pid: (point_id, area_id) for pid, point_id, area_id in self.env.cr.fetchall()}
        point_ids = {v.get("service_point_id") for v in vals_list if v.get("service_point_id")}
        point_ids |= {point_id for point_id, _area in partners.values() if point_id}
        point_areas = {}
        if point_ids:
            self.env.cr.execute(
                "SELECT id, area_id FROM spp_service_point WHERE id = ANY(%s)", [list(point_ids)]
            )
            point_areas = dict(self.env.cr.fetchall())
        for vals in vals_list:
            if not vals.get("partner_id"):
                continue
            point_id, area_id = partners.get(vals["partner_id"], (False, False))
            if "service_point_id" not in vals:
                vals["service_point_id"] = point_id or False
            if "area_id" not in vals:
                vals["area_id"] = area_id or point_areas.get(vals["service_point_id"]) or False
        return vals_list
