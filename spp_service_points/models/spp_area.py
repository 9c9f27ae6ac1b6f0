from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext.refusal import coded
from odoo.exceptions import ValidationError


class SppArea(models.Model):
    """An administrative area (region, province, municipality).

    Odoo has ``res.country.state`` (one level, the ISO 3166-2 subdivisions) and no
    municipality: areas nest through ``parent_id`` and may point at the state they
    correspond to, so that addresses and areas can be matched.
    """

    _name = "spp.area"
    _description = "Administrative area"
    _parent_store = True
    _rec_name = "complete_name"
    _rec_names_search = ["complete_name", "code"]
    _order = "complete_name"

    # ------------------------------------------------------------------
    # Identity
    # ------------------------------------------------------------------
    name = fields.Char(required=True, translate=True)
    code = fields.Char(index=True, help="Official code of the area, e.g. its ISO 3166-2 code (KE-30).")
    kind = fields.Selection(
        [("region", "Region"), ("province", "Province"), ("municipality", "Municipality")],
        required=True,
        default="region",
    )
    active = fields.Boolean(default=True)

    # ------------------------------------------------------------------
    # Hierarchy
    # ------------------------------------------------------------------
    parent_id = fields.Many2one("spp.area", string="Parent area", index=True, ondelete="restrict")
    parent_path = fields.Char(index=True, unaccent=False)
    child_ids = fields.One2many("spp.area", "parent_id", string="Sub-areas")
    complete_name = fields.Char(compute="_compute_complete_name", store=True, recursive=True)

    # ------------------------------------------------------------------
    # Link with Odoo's geography
    # ------------------------------------------------------------------
    country_id = fields.Many2one("res.country")
    state_id = fields.Many2one(
        "res.country.state",
        domain="[('country_id', '=?', country_id)]",
        help="The Odoo state (ISO 3166-2 subdivision) this area corresponds to, if any.",
    )

    _sql_constraints = [("code_uniq", "unique(code)", "Two areas cannot share a code.")]

    @api.depends("name", "parent_id.complete_name")
    def _compute_complete_name(self):
        for area in self:
            if area.parent_id:
                area.complete_name = f"{area.parent_id.complete_name} / {area.name}"
            else:
                area.complete_name = area.name

    def write(self, vals):
        # Checked before Odoo's parent_path update, which would only say "Recursion Detected."
        if vals.get("parent_id"):
            parent = self.browse(vals["parent_id"])
            if self.with_context(active_test=False).search_count(
                [("id", "=", parent.id), ("id", "child_of", self.ids)], limit=1
            ):
                raise ValidationError(
                    coded(
                        "recursive_area",
                        _(
                            "%(parent)s is inside %(areas)s: an area cannot be inside "
                            "itself. Choose another parent area.",
                            parent=parent.display_name,
                            areas=", ".join(self.mapped("display_name")),
                        ),
                    )
                )
        return super().write(vals)
