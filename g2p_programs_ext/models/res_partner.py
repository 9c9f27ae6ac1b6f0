from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..refusal import coded


class ResPartner(models.Model):
    _inherit = "res.partner"

    # ------------------------------------------------------------------
    # Registrant
    # ------------------------------------------------------------------
    is_registrant = fields.Boolean(index=True, help="In the social protection registry.")
    is_group = fields.Boolean(string="Is a household", index=True)
    id_number = fields.Char(
        string="ID number", index=True, copy=False, help="National ID; unique among registrants when set."
    )
    birthdate = fields.Date(groups="base.group_user")
    age = fields.Integer(
        compute="_compute_age", search="_search_age", help="Whole years at today's date (UTC)."
    )
    gender = fields.Selection([("female", "Female"), ("male", "Male"), ("other", "Other")])
    has_disability = fields.Boolean()
    is_pregnant = fields.Boolean()

    # ------------------------------------------------------------------
    # Household
    # ------------------------------------------------------------------
    group_membership_ids = fields.One2many("g2p.group.membership", "group_id", string="Members")
    individual_membership_ids = fields.One2many("g2p.group.membership", "individual_id", string="Households")
    household_size = fields.Integer(
        compute="_compute_household_size",
        store=True,
        help="Members of the household whose membership has no end date.",
    )

    _sql_constraints = [
        (
            "registrant_group_or_individual",
            "CHECK (NOT is_group OR is_registrant)",
            "A household must be a registrant.",
        ),
    ]

    def init(self):
        # Unique among registrants only: other contacts may share or lack an ID.
        self.env.cr.execute(
            """CREATE UNIQUE INDEX IF NOT EXISTS res_partner_registrant_id_number_uniq
               ON res_partner (id_number) WHERE is_registrant AND id_number IS NOT NULL"""
        )
        # The households' ids in order (a program's candidates, ``is_registrant`` and
        # ``is_group`` true), by an index-only scan once vacuumed: the eligible count then
        # merges it with the household summary's index without reading res_partner.
        self.env.cr.execute(
            """CREATE INDEX IF NOT EXISTS res_partner_registrant_group_id_index
               ON res_partner (is_group, is_registrant, id)"""
        )

    @api.depends("birthdate")
    def _compute_age(self):
        today = fields.Date.context_today(self)
        for partner in self:
            partner.age = relativedelta(today, partner.birthdate).years if partner.birthdate else 0

    def _search_age(self, operator, value):
        """Turn an age condition into a birthdate one (so it runs in SQL).

        age >= N  <=>  birthdate <= today - N years;  age < N  <=>  birthdate > today - N years.
        """
        if operator not in ("=", "!=", "<", "<=", ">", ">=") or not isinstance(value, int):
            raise ValidationError(_("Age can only be compared to a whole number of years (got %s).", value))
        today = fields.Date.context_today(self)

        def born_before(years):  # birthdate <= this date  <=>  age >= years
            return today - relativedelta(years=years)

        if operator == ">=":
            return [("birthdate", "<=", born_before(value))]
        if operator == ">":
            return [("birthdate", "<=", born_before(value + 1))]
        if operator == "<":
            return [("birthdate", ">", born_before(value))]
        if operator == "<=":
            return [("birthdate", ">", born_before(value + 1))]
        same_age = ["&", ("birthdate", "<=", born_before(value)), ("birthdate", ">", born_before(value + 1))]
        if operator == "=":
            return same_age
        return ["|", ("birthdate", "=", False), "!", *same_age]

    @api.depends("group_membership_ids.end_date", "group_membership_ids.individual_id")
    def _compute_household_size(self):
        """One grouped query for all the households in ``self``."""
        groups = self.filtered("is_group")
        counts = {}
        if groups.ids:
            rows = self.env["g2p.group.membership"]._read_group(
                [("group_id", "in", groups.ids), ("end_date", "=", False)], ["group_id"], ["__count"]
            )
            counts = {group.id: count for group, count in rows}
        for partner in self:
            partner.household_size = (
                counts.get(partner._origin.id or partner.id, 0) if partner.is_group else 0
            )

    # ------------------------------------------------------------------
    # CRUD: ID numbers are checked before the insert so that the user reads which
    # registrant holds the number; the partial unique index stays the last word.
    # ------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        self._check_id_numbers_free(
            [v["id_number"] for v in vals_list if v.get("id_number") and v.get("is_registrant")]
        )
        return super().create(vals_list)

    def write(self, vals):
        if vals.get("id_number") or vals.get("is_registrant"):
            after = [
                (vals.get("id_number", p.id_number), vals.get("is_registrant", p.is_registrant)) for p in self
            ]
            self._check_id_numbers_free(
                [n for n, registrant in after if n and registrant], exclude_ids=self.ids
            )
        return super().write(vals)

    def _check_id_numbers_free(self, numbers, exclude_ids=()):
        """Raise ValidationError when an ID number in ``numbers`` is repeated or held by another registrant."""
        if not numbers:
            return
        repeated = {n for n in numbers if numbers.count(n) > 1}
        if repeated:
            raise ValidationError(
                coded(
                    "duplicate_id_number",
                    _("ID number(s) %s appear more than once.", ", ".join(sorted(repeated))),
                )
            )
        self.flush_model(["id_number", "is_registrant"])
        self.env.cr.execute(
            """SELECT id_number, id FROM res_partner
               WHERE is_registrant AND id_number = ANY(%s) AND NOT (id = ANY(%s)) LIMIT 1""",
            [list(numbers), list(exclude_ids)],
        )
        row = self.env.cr.fetchone()
        if row:
            raise ValidationError(
                coded(
                    "duplicate_id_number",
                    _(
                        "ID number %(number)s is already held by %(holder)s: "
                        "each registrant needs their own ID number.",
                        number=row[0],
                        holder=self.browse(row[1]).sudo().display_name,
                    ),
                )
            )

    def active_members_by_group(self):
        """Active members of the households in ``self``.

        :return: dict {household id: list of individual ids} (res.partner ids), one query.
        """
        result = {gid: [] for gid in self.ids}
        if not self.ids:
            return result
        self.env["g2p.group.membership"].flush_model(["group_id", "individual_id", "end_date"])
        self.env.cr.execute(
            """SELECT group_id, individual_id FROM g2p_group_membership
               WHERE group_id = ANY(%s) AND end_date IS NULL ORDER BY group_id, id""",
            [self.ids],
        )
        for gid, iid in self.env.cr.fetchall():
            result[gid].append(iid)
        return result
