from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext.refusal import coded
from odoo.exceptions import AccessError, UserError

# Entitlements whose service point may still change: no code handed out, no stock reserved.
MOVABLE_ENTITLEMENT_STATES = ("draft", "pending_validation")


class SppAssignServicePointWizard(models.TransientModel):
    """Set the default service point of many registrants at once: the registrants
    selected in a list, or every registrant of an area. Opened from an entitlement
    list, it takes the selected entitlements' beneficiaries and also moves those
    entitlements (draft or pending validation) to the service point."""

    _name = "spp.assign.service.point.wizard"
    _description = "Assign a service point to registrants"

    # ------------------------------------------------------------------
    # What to assign
    # ------------------------------------------------------------------
    service_point_id = fields.Many2one("spp.service.point", string="Service point", required=True)

    # ------------------------------------------------------------------
    # To whom
    # ------------------------------------------------------------------
    assign_by = fields.Selection(
        [("selection", "Selected registrants"), ("area", "Area")],
        required=True,
        default=lambda self: "selection" if self._default_partner_ids()[0][2] else "area",
    )
    partner_ids = fields.Many2many(
        "res.partner",
        string="Registrants",
        domain=[("is_registrant", "=", True)],
        default=lambda self: self._default_partner_ids(),
    )
    area_id = fields.Many2one(
        "spp.area",
        help="Every registrant (household or individual) of this area and of its sub-areas.",
    )
    include_members = fields.Boolean(
        string="Include household members",
        default=True,
        help="Also assign the active members of the households, wherever they are recorded.",
    )
    registrant_count = fields.Integer(string="Registrants to assign", compute="_compute_registrant_count")

    # ------------------------------------------------------------------
    # Entitlements (opened from an entitlement list)
    # ------------------------------------------------------------------
    entitlement_model = fields.Char(readonly=True, default=lambda self: self._default_entitlement_model())
    entitlement_ids = fields.Json(
        readonly=True,
        default=lambda self: (
            self.env.context.get("active_ids") or [] if self._default_entitlement_model() else []
        ),
    )
    move_entitlements = fields.Boolean(
        string="Move the selected entitlements",
        default=True,
        help="The selected entitlements that are draft or pending validation collect at this service "
        "point from now on; approved ones keep theirs (their code and stock are already there).",
    )
    entitlement_count = fields.Integer(string="Entitlements to move", compute="_compute_entitlement_count")

    def _default_entitlement_model(self):
        model = self.env.context.get("active_model")
        return model if model in self.env["g2p.cycle"]._entitlement_models() else False

    def _default_partner_ids(self):
        model = self.env.context.get("active_model")
        ids = self.env.context.get("active_ids") or []
        if model == "res.partner":
            return [(6, 0, ids)]
        if model and model in self.env["g2p.cycle"]._entitlement_models():
            return [(6, 0, self.env[model].browse(ids).partner_id.ids)]
        return [(6, 0, [])]

    @api.depends("entitlement_model", "entitlement_ids", "move_entitlements")
    def _compute_entitlement_count(self):
        for wizard in self:
            wizard.entitlement_count = (
                len(wizard._get_movable_entitlements()) if wizard.move_entitlements else 0
            )

    @api.depends("assign_by", "partner_ids", "area_id", "include_members")
    def _compute_registrant_count(self):
        for wizard in self:
            wizard.registrant_count = len(wizard._get_registrants(check=False))

    # ------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------
    def action_assign(self):
        """Write the service point on the registrants chosen (see :meth:`_get_registrants`).

        Runs with the user's own rights: they need write access to the registrants.

        :return: a ``display_notification`` client action dict saying how many
            registrants were assigned (its ``params.count`` holds the number).
        :raise UserError: ``[not_registrant]`` when selected contacts are not registrants,
            ``[no_area]`` when assigning by area without an area, ``[nothing_to_assign]``
            when no registrant matches.
        """
        self.ensure_one()
        registrants = self._get_registrants()
        if not registrants:
            raise UserError(
                coded(
                    "nothing_to_assign",
                    _(
                        "No registrant to assign to %s: select registrants or an area that has some.",
                        self.service_point_id.display_name,
                    ),
                )
            )
        registrants.with_context(tracking_disable=True).write({"service_point_id": self.service_point_id.id})
        message = _(
            "%(count)s registrant(s) now collect their benefits at %(point)s.",
            count=len(registrants),
            point=self.service_point_id.display_name,
        )
        moved = self._move_entitlements() if self.move_entitlements else 0
        if moved:
            message += " " + _("%s entitlement(s) moved there.", moved)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "title": _("Service point assigned"),
                "message": message,
                "count": len(registrants),
                "sticky": False,
                "next": {"type": "ir.actions.act_window_close"},
            },
        }

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------
    def _get_movable_entitlements(self):
        """The selected entitlements that are draft or pending validation and visible to
        the user. :return: a recordset of ``entitlement_model`` (empty when none)."""
        self.ensure_one()
        if (
            not self.entitlement_model
            or self.entitlement_model not in self.env["g2p.cycle"]._entitlement_models()
        ):
            return self.env["g2p.entitlement"]
        return self.env[self.entitlement_model].search(
            [("id", "in", self.entitlement_ids or []), ("state", "in", MOVABLE_ENTITLEMENT_STATES)]
        )

    def _move_entitlements(self):
        """Move the movable selected entitlements to the wizard's service point, one
        UPDATE for the batch and one message per cycle (program officers: they prepare
        entitlements). :return: int, how many moved.
        :raise AccessError: the user is not a program officer."""
        entitlements = self._get_movable_entitlements()
        if not entitlements:
            return 0
        if not self.env.su and not self.env.user.has_group("g2p_programs_ext.group_program_officer"):
            raise AccessError(
                coded("not_allowed", _("Only program officers move entitlements to a service point."))
            )
        entitlements.check_access_rule("read")
        entitlements.sudo().with_context(tracking_disable=True).write(
            {"service_point_id": self.service_point_id.id}
        )
        entitlements.sudo()._log_on_cycles(
            _(
                "Moved to service point %(point)s by %(user)s",
                point=self.service_point_id.display_name,
                user=self.env.user.name,
            )
        )
        return len(entitlements)

    def _get_registrants(self, check=True):
        """The registrants to assign: the selection, or the registrants whose area is
        the wizard's area or one of its sub-areas; plus, with ``include_members``, the
        active members of the households among them.

        :param bool check: raise on bad input (else return what can be found).
        :return: ``res.partner`` recordset.
        """
        self.ensure_one()
        Partner = self.env["res.partner"]
        if self.assign_by == "area":
            if not self.area_id:
                if check:
                    raise UserError(coded("no_area", _("Choose the area whose registrants to assign.")))
                return Partner
            registrants = Partner.search(
                [("is_registrant", "=", True), ("area_id", "child_of", self.area_id.id)]
            )
        else:
            registrants = self.partner_ids.filtered("is_registrant")
            others = self.partner_ids - registrants
            if others and check:
                raise UserError(
                    coded(
                        "not_registrant",
                        _(
                            "%s are contacts, not registrants: only registrants get a "
                            "service point. Remove them from the selection.",
                            ", ".join(others[:5].mapped("display_name")) + ("…" if len(others) > 5 else ""),
                        ),
                    )
                )
        households = registrants.filtered("is_group")
        if self.include_members and households:
            memberships = self.env["g2p.group.membership"].search(
                [("group_id", "in", households.ids), ("end_date", "=", False)]
            )
            registrants |= memberships.individual_id
        return registrants
