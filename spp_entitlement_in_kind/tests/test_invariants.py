"""Property-based test: any sequence of approvals, rejections, cancellations,
redemptions, reversals, postings, expiries, resets and closings keeps the stock
invariants of the contract.

Per product and warehouse, after every step:
- on-hand drop = what the done moves delivered (net of returns);
- forecast drop = free drop = reserved + delivered (reservations are really held);
- per allocation (cycle × warehouse × service point × product): at most one open move,
  holding max(0, committed − delivered) (committed: the quantity of an open entitlement,
  the redeemed quantity of any other); its computed quantities (committed, redeemed,
  delivered, reserved, released) are those figures;
- reserved + delivered + released = approved (whenever no reversal waits to be returned);
- right after a posting, delivered = redeemed for every key.
"""

from collections import defaultdict
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import InkindCommon

N = 7  # entitlements of the common fixture: 4 rice + 3 oil
OPEN = ("approved", "transferred")
# Redemptions, reversals and postings weigh more: they are what the stock has to follow;
# a closing ends the story, so it is rare.
NAMES = ["redeem"] * 6 + ["post"] * 3 + ["reverse"] * 3 + ["reject", "cancel", "expire", "reset", "approve"]
NAMES += ["approve_all", "close"]
OPERATIONS = st.tuples(st.sampled_from(NAMES), st.integers(0, N - 1), st.sampled_from([0.2, 0.4, 0.5, 1.0]))


@tagged("post_install", "-at_install")
class TestStockInvariants(InkindCommon):
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.booleans(), st.lists(OPERATIONS, min_size=8, max_size=20))
    def test_random_sequences_keep_the_invariants(self, validate_first, operations):
        savepoint = self.env.cr.savepoint()
        try:
            # half the stories start with the cycle validated, the others approve one by one
            self.run_sequence([("approve_all", 0, 1.0)] * validate_first + operations)
        finally:
            savepoint.close(rollback=True)
            self.env.invalidate_all()

    # ------------------------------------------------------------------
    def run_sequence(self, operations):
        cycle = self.pending_cycle()
        entitlements = cycle.inkind_entitlement_ids.sorted("id").sudo()
        self.assertEqual(len(entitlements), N)
        keys = [(p, w) for p in (self.rice, self.oil) for w in (self.wh_main, self.wh_north)]
        self.start = {key: self.figures(*key) for key in keys}
        self.approved = defaultdict(float)  # product -> quantity ever committed by approvals
        self.released = defaultdict(float)  # product -> quantity given back
        self.ever_approved = set()
        for step, operation in enumerate(operations):
            posted = self.apply(cycle, entitlements, operation)
            self.check(cycle, entitlements, "step %s %s of %s" % (step, operation, operations), posted)
            if cycle.state == "ended":
                break  # a closing ends the story: nothing moves in an ended cycle

    def product_qty(self, entitlement, quantity):
        return entitlement.uom_id._compute_quantity(quantity, entitlement.product_id.uom_id, round=False)

    def release(self, entitlement):
        if entitlement.state in OPEN:
            self.released[entitlement.product_id] += self.product_qty(
                entitlement, entitlement.quantity - entitlement.quantity_redeemed
            )

    def approve(self, records):
        for e in records:
            held = e.quantity_redeemed if e.id in self.ever_approved else 0.0
            self.approved[e.product_id] += self.product_qty(e, e.quantity - held)
            self.ever_approved.add(e.id)

    ELIGIBLE = {
        "approve": lambda e: e.state == "pending_validation",
        "reject": lambda e: e.state in ("draft", "pending_validation", "approved"),
        "cancel": lambda e: e.state in ("draft", "pending_validation", "approved", "transferred"),
        # handed out by the agent of its service point (none: it cannot be redeemed)
        "redeem": lambda e: (
            e.state in OPEN and e.service_point_id and e.quantity_balance >= e.uom_id.rounding
        ),
        # a whole redemption is reversed, by the agent of the point that made it
        "reverse": lambda e: e.state in ("approved", "redeemed") and e.quantity_redeemed > 0,
        "expire": lambda e: e.state in OPEN and not e.quantity_redeemed,
        "reset": lambda e: e.state in ("pending_validation", "rejected", "cancelled"),
    }

    def apply(self, cycle, entitlements, operation):
        """Run ``operation`` as the role that would; return True when it posted. The
        index picks among the entitlements the operation applies to (none: skipped)."""
        name, index, fraction = operation
        if name in ("approve_all", "post", "close"):
            return getattr(self, "op_%s" % name)(cycle, entitlements)
        eligible = entitlements.filtered(self.ELIGIBLE[name])
        if eligible:
            getattr(self, "op_%s" % name)(eligible[index % len(eligible)], fraction)
        return False

    def op_approve(self, e, _fraction):
        self.approve(e)
        e.with_user(self.validator).approve_entitlement()

    def op_approve_all(self, cycle, entitlements):
        self.approve(entitlements.filtered(lambda x: x.state == "pending_validation"))
        cycle.with_user(self.validator).validate_entitlement()
        return False

    def op_reject(self, e, _fraction):
        self.release(e)
        e.with_user(self.validator).action_reject("declined")

    def op_cancel(self, e, _fraction):
        self.release(e)
        e.with_user(self.manager).action_cancel()

    def op_redeem(self, e, fraction):
        self.redeem(e, min(round(e.quantity * fraction, 6), e.quantity_balance))

    def op_reverse(self, e, fraction):
        """Reverse one of the entitlement's redemptions not reversed yet (the fraction picks which)."""
        redemptions = self.env["spp.entitlement.transaction"].search(
            [
                ("inkind_entitlement_id", "=", e.id),
                ("transaction_type", "=", "redemption"),
                ("is_reversed", "=", False),
            ],
            order="id",
        )
        if redemptions:
            pick = redemptions[min(int(fraction * len(redemptions)), len(redemptions) - 1)]
            self.reverse(e, pick.quantity)

    def op_expire(self, e, _fraction):
        self.release(e)
        e.valid_until = self.today - timedelta(days=1)
        self.env["g2p.entitlement.inkind"]._cron_expire()
        self.assertEqual(e.state, "expired")

    def op_reset(self, e, _fraction):
        e.with_user(self.manager).action_reset_to_draft()
        e.with_user(self.officer).action_submit()

    def op_post(self, cycle, _entitlements):
        cycle.with_user(self.approver).action_post_deliveries()
        return True

    def op_close(self, cycle, entitlements):
        """End cycle, as the approver does. With the closing addon installed this is the
        closing's settlement (final states from the ledger, deliveries posted, the rest
        released); without it End cycle is refused while entitlements are open."""
        open_ones = entitlements.filtered(lambda x: x.state in OPEN)
        if "end_requested" not in self.env["g2p.cycle"]._fields and open_ones:
            with self.assertRaisesRegex(UserError, r"^\[open_entitlements\]"):
                cycle.with_user(self.approver).mark_ended()
            return False
        for x in open_ones:
            self.release(x)
        cycle.with_user(self.approver).mark_ended()
        self.env.invalidate_all()
        self.assertEqual(cycle.state, "ended")
        self.assertFalse(entitlements.filtered(lambda x: x.state in OPEN), "every entitlement settled")
        return True

    def check(self, cycle, entitlements, where, posted):
        customers = self.env.ref("stock.stock_location_customers")
        # from the stock moves, per allocation
        reserved = defaultdict(float)
        delivered = defaultdict(float)
        open_move = {}
        for move in self.env["stock.move"].search([("g2p_cycle_id", "=", cycle.id)]):
            allocation = move.g2p_allocation_id
            self.assertTrue(allocation, "%s: every move of the cycle has its allocation" % where)
            if move.location_dest_id == customers:
                self.assertEqual(move.location_id, allocation.warehouse_id.lot_stock_id, where)
                if move.state == "done":
                    delivered[allocation] += move.product_qty
                elif move.state != "cancel":
                    self.assertNotIn(allocation, open_move, "%s: one open move per allocation" % where)
                    open_move[allocation] = move
                    reserved[allocation] += move.product_qty
            elif move.state == "done":
                self.assertEqual(move.location_dest_id, allocation.warehouse_id.lot_stock_id, where)
                delivered[allocation] -= move.product_qty
        # from the entitlements
        committed = defaultdict(float)
        redeemed = defaultdict(float)
        released = defaultdict(float)
        for e in entitlements:
            allocation = e.allocation_id
            if not allocation:
                self.assertNotIn(
                    e.id, self.ever_approved, "%s: an approved entitlement has its allocation" % where
                )
                continue
            self.assertEqual(
                (allocation.cycle_id, allocation.product_id, allocation.service_point_id),
                (cycle, e.product_id, e.service_point_id),
                where,
            )
            held = self.product_qty(e, e.quantity if e.state in OPEN else e.quantity_redeemed)
            committed[allocation] += held
            redeemed[allocation] += self.product_qty(e, e.quantity_redeemed)
            released[allocation] += self.product_qty(e, e.quantity) - held
        allocations = self.env["g2p.inkind.allocation"].search([("cycle_id", "=", cycle.id)])
        allocations.invalidate_recordset()
        self.assertEqual(allocations, self.env["g2p.inkind.allocation"].union(*committed), where)
        for allocation in allocations:
            target = committed[allocation] - delivered[allocation]
            self.assertAlmostEqual(
                reserved[allocation],
                max(0.0, target),
                places=6,
                msg="%s: %s" % (where, allocation.display_name),
            )
            figures = (
                allocation.quantity_committed,
                allocation.quantity_redeemed,
                allocation.quantity_delivered,
                allocation.quantity_reserved,
                allocation.quantity_released,
            )
            expected = (
                committed[allocation],
                redeemed[allocation],
                delivered[allocation],
                reserved[allocation],
                released[allocation],
            )
            for got, want in zip(figures, expected, strict=True):
                self.assertAlmostEqual(
                    got, want, places=6, msg="%s: %s figures" % (where, allocation.display_name)
                )
            if allocation in open_move:
                self.assertEqual(open_move[allocation].state, "assigned", where)
            if posted:
                self.assertAlmostEqual(
                    delivered[allocation],
                    redeemed[allocation],
                    places=6,
                    msg="%s: %s" % (where, allocation.display_name),
                )
        # per product and warehouse, against the quantities Odoo reports
        for product, warehouse in self.start:
            start, now = self.start[(product, warehouse)], self.figures(product, warehouse)
            mine = allocations.filtered(
                lambda a, p=product, w=warehouse: (a.product_id, a.warehouse_id) == (p, w)
            )
            out = sum(delivered[a] for a in mine)
            held = out + sum(reserved[a] for a in mine)
            self.assertAlmostEqual(start["on_hand"] - now["on_hand"], out, places=6, msg=where)
            self.assertAlmostEqual(start["forecast"] - now["forecast"], held, places=6, msg=where)
            self.assertAlmostEqual(start["free"] - now["free"], held, places=6, msg=where)
        # the contract's identity, whenever no reversal waits to be returned
        if all(committed[a] - delivered[a] >= -1e-9 for a in committed):
            for product in (self.rice, self.oil):
                mine = allocations.filtered(lambda a, p=product: a.product_id == p)
                stock = sum(reserved[a] + delivered[a] for a in mine)
                self.assertAlmostEqual(
                    stock + self.released[product],
                    self.approved[product],
                    places=6,
                    msg="%s: %s" % (where, product.name),
                )
