from odoo import models


class G2PEntitlementBase(models.AbstractModel):
    _inherit = "g2p.entitlement.base"

    def _transaction_columns(self):
        """(column of spp.entitlement.transaction pointing to this model, its signed figure
        column: negative for reversals), from the redemption hooks."""
        return self._redemption_link_field(), "net_" + self._redemption_figure_field()

    def _remaining_field(self):
        """Name of the stored field holding what is left to redeem."""
        raise NotImplementedError

    def _recompute_redeemed_from_transactions(self):
        """Set the redeemed figure of ``self`` to Σ redemptions − Σ reversals of its
        transactions (one SQL aggregate), so that closing trusts the ledger, not a
        running total. Returns the number of entitlements that were corrected."""
        if not self:
            return 0
        link, figure = self._transaction_columns()
        redeemed = self._redeemed_quantity_field()
        self.env["spp.entitlement.transaction"].flush_model()
        self.flush_recordset()
        self.env.cr.execute(
            f"""UPDATE {self._table} e SET {redeemed} = coalesce(s.total, 0)
                FROM (SELECT e2.id, round(sum(t.{figure})::numeric, 6)::float AS total
                      FROM {self._table} e2
                      LEFT JOIN spp_entitlement_transaction t ON t.{link} = e2.id
                      WHERE e2.id = ANY(%s) GROUP BY e2.id) s
                WHERE e.id = s.id AND e.{redeemed} IS DISTINCT FROM coalesce(s.total, 0)""",
            [self.ids],
        )
        corrected = self.env.cr.rowcount
        if corrected:
            self.invalidate_recordset()
            self.modified([redeemed])
        return corrected

    def _closing_figures(self):
        """{id: (redeemed, remaining)} of ``self`` in the entitlement's unit (cash: the
        program's currency; in-kind: the entitlement's UoM), read in one query: reading
        the records would fetch every column of every entitlement of the batch."""
        if not self:
            return {}
        redeemed, remaining = self._redeemed_quantity_field(), self._remaining_field()
        self.flush_recordset([redeemed, remaining])
        self.env.cr.execute(
            f"SELECT id, coalesce({redeemed}, 0), coalesce({remaining}, 0) FROM {self._table} WHERE id = ANY(%s)",
            [self.ids],
        )
        return {row[0]: (float(row[1]), float(row[2])) for row in self.env.cr.fetchall()}


class G2PEntitlement(models.Model):
    _inherit = "g2p.entitlement"

    def _remaining_field(self):
        return "balance"


class G2PEntitlementInkind(models.Model):
    _inherit = "g2p.entitlement.inkind"

    def _remaining_field(self):
        return "quantity_balance"
