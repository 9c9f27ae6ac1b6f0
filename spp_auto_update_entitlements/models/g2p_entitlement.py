from collections import Counter

from odoo import models
from odoo.addons.g2p_programs_ext.models.g2p_entitlement_base import ENTITLEMENT_TRANSITIONS
from odoo.tools import SQL

# The lifecycle actions a closing applies: nothing left, something left, nothing redeemed.
CLOSING_ACTIONS = ("redeem", "redeem_partially", "expire")
# Below this a figure is zero (float_is_zero with precision_digits=6 rounds half up).
ZERO = 0.5e-6


class G2PEntitlementBase(models.AbstractModel):
    _inherit = "g2p.entitlement.base"

    def _recompute_redeemed_from_transactions(self):
        """Set the redeemed figure of ``self`` to Σ redemptions − Σ reversals of its
        transactions (one SQL aggregate), so that closing trusts the ledger, not a
        running total. Returns the number of entitlements that were corrected.

        SQL, not the ORM: one aggregate UPDATE per batch of up to 20,000 entitlements
        (the closing runs as superuser after the caller's rights were checked); the
        cache stays right: both tables are flushed first, the records invalidated and
        their dependants marked modified after."""
        if not self:
            return 0
        spec = self._redemption
        Transaction = self.env["spp.entitlement.transaction"]
        Transaction.flush_model()
        self.flush_recordset()
        redeemed = SQL.identifier(spec.redeemed)
        self.env.cr.execute(
            SQL(
                """UPDATE %(table)s e SET %(redeemed)s = coalesce(s.total, 0)
                     FROM (SELECT e2.id, round(sum(t.%(figure)s)::numeric, 6)::float AS total
                             FROM %(table)s e2
                             LEFT JOIN %(transactions)s t ON t.%(link)s = e2.id
                            WHERE e2.id = ANY(%(ids)s) GROUP BY e2.id) s
                    WHERE e.id = s.id AND e.%(redeemed)s IS DISTINCT FROM coalesce(s.total, 0)""",
                table=SQL.identifier(self._table),
                redeemed=redeemed,
                figure=SQL.identifier("net_" + spec.figure),
                transactions=SQL.identifier(Transaction._table),
                link=SQL.identifier(spec.link),
                ids=self.ids,
            )
        )
        corrected = self.env.cr.rowcount
        if corrected:
            self.invalidate_recordset()
            self.modified([spec.redeemed])
        return corrected

    def _settle_for_closing(self):
        """Set each entitlement of ``self`` (approved or transferred, row-locked by the
        caller) to its closing state in one UPDATE, from its stored figures (cash: the
        program's currency; in-kind: the entitlement's UoM): ``redeemed`` when nothing is
        left, ``expired`` when nothing was redeemed, ``partially_redeemed`` otherwise. A
        figure counts as zero below 0.5e-6 (``float_is_zero`` at 6 digits). Entitlements
        in any other state are left as they are (the lifecycle's transition table gives
        the states each outcome may come from).

        SQL, not ``write``: one UPDATE per batch without tracking (a closing settles up to
        100,000 entitlements; one summary message is posted on the cycle); the cache stays
        right: flushed first, ``state`` invalidated and marked modified after.

        :return: dict {state: number of entitlements of ``self`` set to it}
        """
        if not self:
            return {}
        spec = self._redemption
        targets = {action: ENTITLEMENT_TRANSITIONS[action][1] for action in CLOSING_ACTIONS}
        sources = set.intersection(*(set(ENTITLEMENT_TRANSITIONS[action][0]) for action in CLOSING_ACTIONS))
        self.flush_recordset([spec.redeemed, spec.balance, "state"])
        self.env.cr.execute(
            SQL(
                """UPDATE %(table)s
                      SET state = CASE WHEN abs(coalesce(%(redeemed)s, 0)) < %(zero)s THEN %(expire)s
                                       WHEN abs(coalesce(%(remaining)s, 0)) < %(zero)s THEN %(redeem)s
                                       ELSE %(redeem_partially)s END,
                          write_uid = %(uid)s, write_date = now() at time zone 'UTC'
                    WHERE id = ANY(%(ids)s) AND state IN %(sources)s
                RETURNING state""",
                table=SQL.identifier(self._table),
                redeemed=SQL.identifier(spec.redeemed),
                remaining=SQL.identifier(spec.balance),
                zero=ZERO,
                uid=self.env.uid,
                ids=self.ids,
                sources=tuple(sorted(sources)),
                **targets,
            )
        )
        settled = Counter(row[0] for row in self.env.cr.fetchall())
        self.invalidate_recordset(["state", "write_uid", "write_date"])
        self.modified(["state"])
        return dict(settled)
