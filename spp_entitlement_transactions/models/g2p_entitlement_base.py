from odoo import fields, models
from odoo.tools import SQL


class G2PEntitlementBase(models.AbstractModel):
    """What cash and in-kind entitlements share about their transactions: the count on
    the form's button and the action it opens. Each model's ``transaction_ids`` and
    redemption hooks (``_redemption_link_field`` ...) are on the model itself."""

    _inherit = "g2p.entitlement.base"

    transaction_count = fields.Integer(compute="_compute_transaction_count", string="Number of transactions")

    def _compute_transaction_count(self):
        link = self._redemption_link_field()
        counts = dict(
            self.env["spp.entitlement.transaction"]._read_group([(link, "in", self.ids)], [link], ["__count"])
        )
        for entitlement in self:
            entitlement.transaction_count = counts.get(entitlement, 0)

    def action_open_transactions(self):
        """Open the redemptions and reversals of this entitlement (one record of a
        concrete entitlement model) in the read-only transaction list.

        :return: dict, an ``ir.actions.act_window``"""
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "spp_entitlement_transactions.spp_entitlement_transaction_action"
        )
        action["domain"] = [(self._redemption_link_field(), "=", self.id)]
        action["context"] = {}
        return action

    def _redemption_link_field(self):
        """Field of spp.entitlement.transaction that points at this model."""
        raise NotImplementedError

    def _redemption_balance_field(self):
        """Name of the stored field holding what is left to redeem (the entitlement's unit)."""
        raise NotImplementedError

    def _redemption_fields(self):
        """The fields the redemption API reads of a locked entitlement: read by the lock
        query itself (one query of these columns, not of every column of the model)."""
        return [
            "code",
            "state",
            "service_point_id",
            "valid_from",
            "valid_until",
            "partner_id",
            "program_id",
            "cycle_id",
            "company_id",
            "area_id",
            self._redeemed_quantity_field(),
            self._redemption_balance_field(),
        ]

    def _redemption_related_fields(self):
        """``many2one.field`` paths the redemption API reads besides the entitlement's own
        fields (the rounding of its currency or UoM, ...): the lock query joins them, so
        a redemption needs no query for them. Each path is a stored many2one of this
        model among :meth:`_redemption_fields` and a stored, untranslated column of its
        comodel."""
        return []

    def _record_redeemed(self, redeemed, balance, state=None):
        """Store on this (locked) entitlement what a redemption or reversal decided, in one
        UPDATE: the redeemed figure and the balance, both in the entitlement's unit (cash:
        the program's currency; in-kind: its UoM), computed by the caller from the row read
        under the lock, and the new state when it changes (``None``: unchanged). No
        chatter, no tracking: the transaction row is the audit trail.

        :return: None
        """
        self.env.cr.execute(self._record_redeemed_query(redeemed, balance, state))
        self._invalidate_redeemed(state)

    def _record_redeemed_query(self, redeemed, balance, state=None):
        """The UPDATE of :meth:`_record_redeemed` (SQL, ending with its WHERE clause, so
        that a caller may add a condition), not run: the redemption API runs it in the
        same statement as the insert of the transaction row. Call
        :meth:`_invalidate_redeemed` once it ran."""
        self.ensure_one()
        self.flush_recordset()
        columns = self._redeemed_columns(state)
        values = [redeemed, balance] if state is None else [redeemed, balance, state]
        assignments = SQL(", ").join(
            SQL("%s = %s", SQL.identifier(c), v) for c, v in zip(columns, values, strict=True)
        )
        return SQL(
            "UPDATE %s SET %s, write_uid = %s, write_date = now() at time zone 'UTC' WHERE id = %s",
            SQL.identifier(self._table),
            assignments,
            self.env.uid,
            self.id,
        )

    def _invalidate_redeemed(self, state=None):
        """Forget the cached figures (and state) after :meth:`_record_redeemed_query` ran.
        Only these columns changed, and the balance was written with them: no stored
        field depends on them besides the balance (nothing to recompute)."""
        self.invalidate_recordset([*self._redeemed_columns(state), "write_uid", "write_date"])

    def _redeemed_columns(self, state=None):
        """The columns :meth:`_record_redeemed_query` sets: the redeemed figure, the
        balance, and the state unless ``state`` is None."""
        columns = [self._redeemed_quantity_field(), self._redemption_balance_field()]
        return columns if state is None else [*columns, "state"]
