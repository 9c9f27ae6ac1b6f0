from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext.refusal import coded
from odoo.exceptions import UserError, ValidationError


class SppServicePoint(models.Model):
    """A place where beneficiaries collect their benefits (distribution site, shop,
    health centre), served by agents (``user_ids``); spp_entitlement_in_kind adds the warehouse that supplies it."""

    _name = "spp.service.point"
    _description = "Service point"
    _order = "name, id"
    _check_company_auto = True
    _rec_names_search = ["name", "code"]

    # ------------------------------------------------------------------
    # Identity
    # ------------------------------------------------------------------
    name = fields.Char(required=True)
    code = fields.Char(
        required=True,
        copy=False,
        help="Short unique code of the point, printed on vouchers and used by devices.",
    )
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda self: self.env.company
    )

    # ------------------------------------------------------------------
    # Location and contact
    # ------------------------------------------------------------------
    area_id = fields.Many2one("spp.area", index=True, ondelete="restrict")
    phone = fields.Char()
    street = fields.Char()
    street2 = fields.Char()
    zip = fields.Char(string="ZIP")
    city = fields.Char()
    state_id = fields.Many2one("res.country.state", domain="[('country_id', '=?', country_id)]")
    country_id = fields.Many2one("res.country")
    latitude = fields.Float(digits=(10, 7), help="Decimal degrees (WGS 84), for maps.")
    longitude = fields.Float(digits=(10, 7), help="Decimal degrees (WGS 84), for maps.")

    # ------------------------------------------------------------------
    # Agents and supplies
    # ------------------------------------------------------------------
    user_ids = fields.Many2many(
        "res.users",
        "spp_service_point_res_users_rel",
        "service_point_id",
        "user_id",
        string="Agents",
        check_company=True,
        domain="[('share', '=', False)]",
        help="Users who serve this point; they need the Service Point Agent role to act for it.",
    )

    # ------------------------------------------------------------------
    # Registrants served
    # ------------------------------------------------------------------
    beneficiary_count = fields.Integer(
        string="Registrants",
        compute="_compute_beneficiary_count",
        help="Registrants (households and individuals) whose default service point this is.",
    )
    household_count = fields.Integer(string="Households", compute="_compute_beneficiary_count")

    _sql_constraints = [
        ("code_uniq", "unique(code)", "[duplicate_code] Another service point already uses this code."),
    ]

    @api.depends("name", "code")
    def _compute_display_name(self):
        for point in self:
            point.display_name = f"[{point.code}] {point.name}" if point.code else point.name

    def _compute_beneficiary_count(self):
        """One grouped query for all the points in ``self``, with the user's own rights
        (an agent counts the registrants they may read, i.e. those of their points)."""
        registrants = {}
        households = {}
        if self.ids:
            rows = self.env["res.partner"]._read_group(
                [("service_point_id", "in", self.ids), ("is_registrant", "=", True)],
                ["service_point_id", "is_group"],
                ["__count"],
            )
            for point, is_group, count in rows:
                registrants[point.id] = registrants.get(point.id, 0) + count
                if is_group:
                    households[point.id] = households.get(point.id, 0) + count
        for point in self:
            point.beneficiary_count = registrants.get(point._origin.id, 0)
            point.household_count = households.get(point._origin.id, 0)

    # ------------------------------------------------------------------
    # CRUD: codes are checked before the insert so that the user reads which point
    # holds the code; the unique constraint stays the last word.
    # ------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("code"):
                vals["code"] = vals["code"].strip()
        self._check_codes_free([vals.get("code") for vals in vals_list if vals.get("code")])
        return super().create(vals_list)

    def write(self, vals):
        if vals.get("code"):
            vals["code"] = vals["code"].strip()
            if len(self) > 1:
                raise ValidationError(
                    coded(
                        "duplicate_code",
                        _(
                            "Code %s cannot be given to several service points at once.",
                            vals["code"],
                        ),
                    )
                )
            self._check_codes_free([vals["code"]], exclude_ids=self.ids)
        if "active" in vals and not vals["active"]:
            self.filtered("active")._check_no_open_entitlements()
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_except_open_entitlements(self):
        self._check_no_open_entitlements()

    # ------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------
    def action_view_beneficiaries(self):
        """Open the registrants whose default service point is this one.

        :return: an ``ir.actions.act_window`` dict on ``res.partner``.
        """
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Registrants of %s", self.display_name),
            "res_model": "res.partner",
            "view_mode": "tree,form",
            "domain": [("service_point_id", "=", self.id), ("is_registrant", "=", True)],
            "context": {"default_service_point_id": self.id, "default_is_registrant": True},
        }

    # ------------------------------------------------------------------
    # Hooks for the entitlement addons
    # ------------------------------------------------------------------
    def _count_open_entitlements(self):
        """Count the approved, not (fully) redeemed entitlements of each point in ``self``.

        Counts over every entitlement model of the lifecycle (``g2p.cycle._entitlement_models()``),
        one grouped query per model.

        :return: dict {spp.service.point id: number of open entitlements} with a key for
            every point in ``self``.
        """
        counts = dict.fromkeys(self.ids, 0)
        for model in self.env["g2p.cycle"]._entitlement_models():
            for point, count in (
                self.env[model]
                .sudo()
                ._read_group(
                    [("service_point_id", "in", self.ids), ("state", "in", ("approved", "transferred"))],
                    ["service_point_id"],
                    ["__count"],
                )
            ):
                counts[point.id] += count
        return counts

    def _check_no_open_entitlements(self):
        """Raise UserError when a point in ``self`` still has open entitlements (see
        :meth:`_count_open_entitlements`): archiving or deleting it would strand them."""
        if not self:
            return
        counts = self._count_open_entitlements()
        for point in self:
            if counts.get(point.id):
                raise UserError(
                    coded(
                        "open_entitlements",
                        _(
                            "Service point %(point)s still has %(count)s approved "
                            "entitlement(s) that are not redeemed: wait until they are redeemed or expire, "
                            "or move them to another service point, then archive it.",
                            point=point.display_name,
                            count=counts[point.id],
                        ),
                    )
                )

    def _check_codes_free(self, codes, exclude_ids=()):
        """Raise ValidationError when a code in ``codes`` is repeated or already used by
        another service point (archived ones included), naming that point."""
        if not codes:
            return
        repeated = {code for code in codes if codes.count(code) > 1}
        if repeated:
            raise ValidationError(
                coded("duplicate_code", _("Code(s) %s appear more than once.", ", ".join(sorted(repeated))))
            )
        # sudo: the other point may be archived or in another company; its name is
        # what the user needs to sort the clash out.
        other = (
            self.sudo()
            .with_context(active_test=False)
            .search([("code", "in", codes), ("id", "not in", list(exclude_ids))], limit=1)
        )
        if other:
            raise ValidationError(
                coded(
                    "duplicate_code",
                    _(
                        "Code %(code)s is already used by service point %(point)s "
                        "(%(company)s%(archived)s): choose another code.",
                        code=other.code,
                        point=other.name,
                        company=other.company_id.name,
                        archived="" if other.active else _(", archived"),
                    ),
                )
            )
