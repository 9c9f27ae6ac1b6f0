from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..refusal import coded


class G2PGroupMembershipKind(models.Model):
    _name = "g2p.group.membership.kind"
    _description = "Household role"
    _order = "sequence, id"

    name = fields.Char(required=True, translate=True)
    sequence = fields.Integer(default=10)
    is_unique = fields.Boolean(help="At most one active member of a household may have this role.")

    _sql_constraints = [("name_uniq", "unique(name)", "Household roles must have unique names.")]


class G2PGroupMembership(models.Model):
    _name = "g2p.group.membership"
    _description = "Household membership"
    _order = "group_id, id"
    _rec_name = "individual_id"

    group_id = fields.Many2one(
        "res.partner",
        string="Household",
        required=True,
        index=True,
        ondelete="cascade",
        domain=[("is_registrant", "=", True), ("is_group", "=", True)],
    )
    individual_id = fields.Many2one(
        "res.partner",
        string="Member",
        required=True,
        index=True,
        ondelete="cascade",
        domain=[("is_registrant", "=", True), ("is_group", "=", False)],
    )
    kind_ids = fields.Many2many("g2p.group.membership.kind", string="Roles")
    start_date = fields.Date(default=fields.Date.context_today)
    end_date = fields.Date(help="Set when the member leaves the household; empty while active.")
    is_active = fields.Boolean(compute="_compute_is_active", string="Active member")

    _sql_constraints = [
        (
            "dates_ordered",
            "CHECK (end_date IS NULL OR start_date IS NULL OR end_date >= start_date)",
            "A membership cannot end before it starts.",
        ),
    ]

    def init(self):
        # An individual is an active member of at most one household (two would mean a
        # double benefit); enforced by the database, explained by _check_one_household.
        self.env.cr.execute(
            """CREATE UNIQUE INDEX IF NOT EXISTS g2p_group_membership_one_active_household
               ON g2p_group_membership (individual_id) WHERE end_date IS NULL"""
        )

    @api.depends("end_date")
    def _compute_is_active(self):
        for membership in self:
            membership.is_active = not membership.end_date

    @api.constrains("group_id", "individual_id")
    def _check_group_and_individual(self):
        for membership in self:
            if not membership.group_id.is_group or membership.individual_id.is_group:
                raise ValidationError(
                    coded(
                        "not_a_household",
                        _(
                            "%(member)s can only join a household, and %(group)s is not one.",
                            member=membership.individual_id.display_name,
                            group=membership.group_id.display_name,
                        ),
                    )
                )

    # ------------------------------------------------------------------
    # CRUD: one active household per individual is checked before the insert so
    # that the message names the household; the partial unique index stays the last word.
    # ------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        self._check_no_other_household(
            [v["individual_id"] for v in vals_list if v.get("individual_id") and not v.get("end_date")]
        )
        return super().create(vals_list)

    def write(self, vals):
        if "individual_id" in vals or ("end_date" in vals and not vals["end_date"]):
            if "end_date" in vals:
                active_after = self.browse() if vals["end_date"] else self
            else:
                active_after = self.filtered(lambda m: not m.end_date)
            individual_ids = [vals.get("individual_id") or m.individual_id.id for m in active_after]
            self._check_no_other_household(individual_ids, exclude_ids=self.ids)
        return super().write(vals)

    def _check_no_other_household(self, individual_ids, exclude_ids=()):
        """Raise ValidationError when an individual in ``individual_ids`` (res.partner ids)
        would be an active member of two households."""
        if not individual_ids:
            return
        partners = self.env["res.partner"].sudo()
        repeated = {i for i in individual_ids if individual_ids.count(i) > 1}
        if repeated:
            raise ValidationError(
                coded(
                    "two_households",
                    _(
                        "%s would join two households at once.",
                        ", ".join(partners.browse(sorted(repeated)).mapped("display_name")),
                    ),
                )
            )
        self.flush_model(["individual_id", "end_date"])
        self.env.cr.execute(
            """SELECT individual_id, group_id FROM g2p_group_membership
               WHERE end_date IS NULL AND individual_id = ANY(%s) AND NOT (id = ANY(%s)) LIMIT 1""",
            [list(individual_ids), list(exclude_ids)],
        )
        row = self.env.cr.fetchone()
        if row:
            raise ValidationError(
                coded(
                    "two_households",
                    _(
                        "%(member)s is already an active member of %(group)s: end that "
                        "membership first (an individual belongs to one household at a time).",
                        member=partners.browse(row[0]).display_name,
                        group=partners.browse(row[1]).display_name,
                    ),
                )
            )
