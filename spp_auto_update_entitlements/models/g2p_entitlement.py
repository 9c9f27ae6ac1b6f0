from collections import Counter

from odoo import models
from odoo.addons.g2p_programs_ext.models.g2p_entitlement_base import ENTITLEMENT_TRANSITIONS

# The lifecycle actions a closing applies: nothing left, something left, nothing redeemed.
CLOSING_ACTIONS = ("redeem", "redeem_partially", "expire")
# Below this a figure is zero (float_is_zero with precision_digits=6 rounds half up).
ZERO = 0.5e-6


class G2PEntitlementBase(models.AbstractModel):
    _inherit = "g2p.entitlement.base"

    def _transaction_columns(self):
        """(column of spp.entitlement.transaction pointing to this model, its signed figure
        column: negative for reversals), from the redemption hooks."""
        return self._redemption_link_field(), "net_" + self._redemption_figure_field()

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

    def _settle_for_closing(self):
        """Set each entitlement of ``self`` (approved or transferred, row-locked by the
        caller) to its closing state in one UPDATE, from its stored figures (cash: the
        program's currency; in-kind: the entitlement's UoM): ``redeemed`` when nothing is
        left, ``expired`` when nothing was redeemed, ``partially_redeemed`` otherwise. A
        figure counts as zero below 0.5e-6 (``float_is_zero`` at 6 digits). Entitlements
        in any other state are left as they are (the lifecycle's transition table gives
        the states each outcome may come from).

        :return: dict {state: number of entitlements of ``self`` set to it}
        """
        if not self:
            return {}
        redeemed, remaining = self._redeemed_quantity_field(), self._redemption_balance_field()
        targets = {action: ENTITLEMENT_TRANSITIONS[action][1] for action in CLOSING_ACTIONS}
        sources = set.intersection(*(set(ENTITLEMENT_TRANSITIONS[action][0]) for action in CLOSING_ACTIONS))
        self.flush_recordset([redeemed, remaining, "state"])
        self.env.cr.execute(
            f"""UPDATE {self._table}
                   SET state = CASE WHEN abs(coalesce({redeemed}, 0)) < %(zero)s THEN %(expire)s
                                    WHEN abs(coalesce({remaining}, 0)) < %(zero)s THEN %(redeem)s
                                    ELSE %(redeem_partially)s END,
                       write_uid = %(uid)s, write_date = now() at time zone 'UTC'
                 WHERE id = ANY(%(ids)s) AND state IN %(sources)s
             RETURNING state""",
            {
                **targets,
                "zero": ZERO,
                "uid": self.env.uid,
                "ids": self.ids,
                "sources": tuple(sorted(sources)),
            },
        )
        settled = Counter(row[0] for row in self.env.cr.fetchall())
        self.invalidate_recordset(["state", "write_uid", "write_date"])
        self.modified(["state"])
        return dict(settled)
