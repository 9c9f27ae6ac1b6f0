from odoo import api, fields, models


class G2PEntitlementBase(models.AbstractModel):
    _inherit = "g2p.entitlement.base"

    service_point_id = fields.Many2one(
        "spp.service.point",
        string="Service point",
        index=True,
        ondelete="restrict",
        help="Where the beneficiary collects: the beneficiary's service point when the entitlement was made.",
    )

    @api.model
    def _complete_vals(self, vals_list):
        """Entitlements without a service point take their beneficiary's (one query per batch)."""
        vals_list = super()._complete_vals(vals_list)
        missing = [v["partner_id"] for v in vals_list if "service_point_id" not in v and v.get("partner_id")]
        if missing:
            self.env["res.partner"].flush_model(["service_point_id"])
            self.env.cr.execute(
                "SELECT id, service_point_id FROM res_partner WHERE id = ANY(%s)", [list(set(missing))]
            )
            points = dict(self.env.cr.fetchall())
            for vals in vals_list:
                if "service_point_id" not in vals and vals.get("partner_id"):
                    vals["service_point_id"] = points.get(vals["partner_id"]) or False
        return vals_list
