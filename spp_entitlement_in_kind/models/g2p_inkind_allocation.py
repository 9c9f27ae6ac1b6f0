"""The stock of a cycle for one product at one service point: ``g2p.inkind.allocation``.

An allocation is one cycle × warehouse × service point × product (unique together; no
service point is a value of its own). It holds the entitlements that take their goods
from it (``entitlement_ids``, set on approval) and the stock moves that carry them
(``move_ids``): at most one open delivery move (warehouse stock → customers), reserved,
created by ``procurement.group.run`` with one procurement per allocation (never one per
beneficiary), and its done deliveries and returns, the posting history. Moves carry the
allocation from the procurement values (``stock.rule._get_custom_move_fields``) and
Odoo copies it onto the remainder when it splits a partly done move, so the link holds
by itself.

Per allocation, in the product's UoM:
*committed* = Σ ``quantity`` of its open entitlements (approved, transferred) + Σ
``quantity_redeemed`` of the others (what was handed out is all they will take);
*released* = Σ ``quantity`` − committed (what they will never take);
*redeemed* = Σ ``quantity_redeemed``;
*delivered* = done deliveries − done returns;
*reserved* = the demand of the open delivery move.
The open move holds committed − delivered; a posting makes redeemed − delivered done
(or returns it when negative). Nothing is incremented: every call recomputes these from
the entitlements and the moves, so rounding never drifts and an allocation that went
wrong (a move cancelled by hand) is healed by the next call. Postings write no
entitlement row: redemptions never wait for, nor conflict with, a posting.

Only storable products (``detailed_type = 'product'``) are stock-managed: a service
item (a consultation, a training) is never checked against stock nor reserved, even
when its manager manages the inventory of the goods of the same program.

The stock work runs as superuser: callers check the user's rights first (the suite's
roles have no stock rights).
"""

import logging
from collections import defaultdict, namedtuple

from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext.refusal import coded
from odoo.exceptions import UserError
from odoo.tools import SQL, create_unique_index, float_compare, float_is_zero, float_round

_logger = logging.getLogger(__name__)

OPEN_STATES = ("approved", "transferred")
SQL_BATCH = 5000

# What an allocation holds, in its product's UoM (see the module docstring), with its open
# delivery move and its last done delivery (stock.move ids or None).
Figures = namedtuple("Figures", "total committed redeemed delivered reserved open_move_id last_delivery_id")
NO_FIGURES = Figures(0.0, 0.0, 0.0, 0.0, 0.0, None, None)


# The batch-computed quantities (see _compute_quantities).
QUANTITY_FIELDS = [
    "quantity_committed",
    "quantity_reserved",
    "quantity_redeemed",
    "quantity_delivered",
    "quantity_released",
]


class G2PInkindAllocation(models.Model):
    _name = "g2p.inkind.allocation"
    _description = "In-kind allocation: a cycle's stock of a product for a service point"
    _order = "cycle_id desc, warehouse_id, service_point_id, product_id"
    _check_company_auto = True

    # ------------------------------------------------------------------
    # Key
    # ------------------------------------------------------------------
    cycle_id = fields.Many2one("g2p.cycle", required=True, index=True, ondelete="restrict", readonly=True)
    company_id = fields.Many2one("res.company", required=True, readonly=True)
    warehouse_id = fields.Many2one(
        "stock.warehouse", required=True, ondelete="restrict", readonly=True, check_company=True
    )
    service_point_id = fields.Many2one(
        "spp.service.point",
        ondelete="restrict",
        readonly=True,
        help="Empty for the beneficiaries without a service point.",
    )
    product_id = fields.Many2one("product.product", required=True, ondelete="restrict", readonly=True)
    uom_id = fields.Many2one(related="product_id.uom_id", string="UoM")

    # ------------------------------------------------------------------
    # Contents
    # ------------------------------------------------------------------
    entitlement_ids = fields.One2many(
        "g2p.entitlement.inkind", "allocation_id", string="Entitlements", readonly=True
    )
    move_ids = fields.One2many(
        "stock.move",
        "g2p_allocation_id",
        string="Stock moves",
        readonly=True,
        help="Its open delivery (the reservation), its done deliveries and its returns.",
    )

    # ------------------------------------------------------------------
    # Quantities (product UoM), computed for the whole recordset at once
    # ------------------------------------------------------------------
    quantity_committed = fields.Float(
        compute="_compute_quantities",
        digits="Product Unit of Measure",
        string="Committed",
        help="What the entitlements take: the quantity of the approved ones, what was handed out "
        "of the others.",
    )
    quantity_reserved = fields.Float(
        compute="_compute_quantities",
        digits="Product Unit of Measure",
        string="Reserved",
        help="The demand of the open delivery move: committed less delivered.",
    )
    quantity_redeemed = fields.Float(
        compute="_compute_quantities", digits="Product Unit of Measure", string="Redeemed"
    )
    quantity_delivered = fields.Float(
        compute="_compute_quantities",
        digits="Product Unit of Measure",
        string="Delivered",
        help="Done deliveries less done returns: what was posted to stock.",
    )
    quantity_released = fields.Float(
        compute="_compute_quantities",
        digits="Product Unit of Measure",
        string="Released",
        help="What rejected, cancelled, expired or closed entitlements gave back.",
    )

    def init(self):
        # One allocation per key, a missing service point included: a plain UNIQUE treats
        # two NULLs as distinct (UNIQUE NULLS NOT DISTINCT needs PostgreSQL 15).
        create_unique_index(
            self.env.cr,
            "g2p_inkind_allocation_key_uniq",
            self._table,
            ["cycle_id", "warehouse_id", "COALESCE(service_point_id, 0)", "product_id"],
        )

    def _compute_quantities(self):
        figures = self._read_figures()
        for allocation in self:
            fig = figures.get(allocation.id, NO_FIGURES)
            allocation.quantity_committed = fig.committed
            allocation.quantity_reserved = fig.reserved
            allocation.quantity_redeemed = fig.redeemed
            allocation.quantity_delivered = fig.delivered
            allocation.quantity_released = fig.total - fig.committed

    def _compute_display_name(self):
        for allocation in self:
            allocation.display_name = _(
                "%(cycle)s: %(product)s from %(warehouse)s for %(point)s",
                cycle=allocation.cycle_id.name,
                product=allocation.product_id.display_name,
                warehouse=allocation.warehouse_id.name,
                point=allocation.service_point_id.name or _("no service point"),
            )

    # ------------------------------------------------------------------
    # Entry points (g2p.inkind.stock delegates to these)
    # ------------------------------------------------------------------
    @api.model
    def _reserve_entitlements(self, entitlements):
        """Check that stock covers ``entitlements`` (g2p.entitlement.inkind, pending,
        about to be approved) and reserve it; change nothing when it does not.

        Needs of stock-managed entitlements (manager's ``manage_inventory``, storable
        product) are summed per (warehouse, product) in the product's UoM and compared
        with the free quantity (``free_qty``) of the warehouse's stock location (with its
        children: what a delivery from there can reserve). An entitlement approved again
        after a reset keeps its allocation and needs only what it did not redeem. Then
        every entitlement joins the allocation of its key (created when new) and the
        allocations launch their procurements; the moves are reserved at once.

        :return: g2p.inkind.allocation, the allocations of the stock-managed entitlements
        :raise UserError: ``[no_warehouse]`` an entitlement has no warehouse to serve it;
            ``[out_of_stock]`` listing every (warehouse, product, needed, available).
        """
        values = self._allocate_entitlements(entitlements)
        self._write_allocations(values)
        return self._reserve_allocated(entitlements)

    @api.model
    def _allocate_entitlements(self, entitlements):
        """The first half of :meth:`_reserve_entitlements`, writing no entitlement row:
        lock the cycles, check the stock, find or create the allocation of each
        stock-managed entitlement of ``entitlements`` that has none. The approval writes
        the answer in its own UPDATE of the entitlements (a second UPDATE of the same
        rows in one transaction costs three times the first: PostgreSQL then checks every
        foreign key of the row again), then calls :meth:`_reserve_allocated`.

        :return: ``{"allocation_id": {entitlement id: allocation id}, "warehouse_id":
            {entitlement id: stock.warehouse id}}`` (empty dicts when none is new)
        :raise UserError: as :meth:`_reserve_entitlements`."""
        values = {"allocation_id": {}, "warehouse_id": {}}
        if not entitlements:
            return values
        # first of all: two approvals of one cycle must not both reserve
        self.env["g2p.cycle"]._lock_rows(entitlements._cycles().ids)
        rows = [r for r in self._check_entitlements_stock(entitlements) if not r["allocation_id"]]
        for entitlement_id, allocation_id, warehouse_id in self._allocations_of(rows):
            values["allocation_id"][entitlement_id] = allocation_id
            values["warehouse_id"][entitlement_id] = warehouse_id
        return values

    @api.model
    def _reserve_allocated(self, entitlements):
        """The second half of :meth:`_reserve_entitlements`, once the entitlements hold
        their allocation: bring the open moves of their allocations to what they commit
        (``entitlements`` counted as open) and check that the moves are reserved.

        :return: g2p.inkind.allocation, the allocations of ``entitlements``
        :raise UserError: ``[out_of_stock]`` a move could not be reserved."""
        if not entitlements:
            return self.browse()
        self.env["g2p.entitlement.inkind"].flush_model(["allocation_id"])
        # Raw SQL: the distinct allocations of up to 100,000 rows, where the ORM would read
        # every row; flushed above, reads only.
        self.env.cr.execute(
            SQL(
                "SELECT DISTINCT allocation_id FROM g2p_entitlement_inkind WHERE id = ANY(%s) AND allocation_id IS NOT NULL",
                entitlements.ids,
            )
        )
        allocations = self.browse(sorted(row[0] for row in self.env.cr.fetchall()))
        if not allocations:
            return allocations
        allocations.invalidate_recordset(["entitlement_ids"])
        open_moves = allocations._action_launch_stock_rule(count_open=entitlements.ids)
        self._check_reserved(open_moves)
        return allocations

    @api.model
    def _check_entitlements_stock(self, entitlements):
        """The checks of :meth:`_reserve_entitlements`, writing nothing: every
        stock-managed entitlement of ``entitlements`` (g2p.entitlement.inkind, pending)
        has a warehouse, and the free stock covers their needs summed per (warehouse,
        product). Also run alone on a whole cycle before its approval jobs.

        :return: list of dicts, the stock-managed entitlements (see :meth:`_stock_managed`)
        :raise UserError: ``[no_warehouse]``, ``[out_of_stock]`` as :meth:`_reserve_entitlements`."""
        rows = self._stock_managed(entitlements.ids)
        if not rows:
            return rows
        missing = [r for r in rows if not r["allocation_id"] and not r["warehouse_id"]]
        if missing:
            raise self._no_warehouse_refusal(entitlements.browse(missing[0]["id"]), len(missing))
        needs = defaultdict(float)
        for r in rows:
            if r["allocation_id"]:
                # approved again after a reset: it already holds what it redeemed
                needs[(r["allocation_warehouse_id"], r["product_id"])] += r["quantity"] - r["redeemed"]
            else:
                needs[(r["warehouse_id"], r["product_id"])] += r["quantity"]
        shortages = self._shortages(needs)
        if shortages:
            raise UserError(self._shortage_message(shortages))
        return rows

    @api.model
    def _release_entitlements(self, entitlements):
        """Lower the reservations of ``entitlements`` (g2p.entitlement.inkind about to be
        rejected, cancelled, expired or closed) by what they will never take: quantity −
        quantity redeemed. A move left with nothing is cancelled.
        :return: g2p.inkind.allocation, those of ``entitlements``"""
        if not entitlements:
            return self.browse()
        groups = (
            self.env["g2p.entitlement.inkind"]
            .sudo()
            ._read_group([("id", "in", entitlements.ids), ("allocation_id", "!=", False)], ["allocation_id"])
        )
        allocations = self.browse([allocation.id for (allocation,) in groups])
        if allocations:
            self.env["g2p.cycle"]._lock_rows(allocations.cycle_id.ids)
            allocations._action_launch_stock_rule(count_closed=entitlements.ids)
        return allocations

    @api.model
    def _sync_cycles(self, cycle_ids):
        """Bring the reservations of ``cycle_ids`` (g2p.cycle ids) to what the states and
        redeemed quantities of their entitlements say, e.g. after states were set in bulk
        (closing: ``redeemed``, ``partially_redeemed``, ``expired``). Idempotent, cheap
        when nothing changed (one grouped query, stock work per changed allocation).
        :return: True"""
        cycle_ids = sorted(cycle_ids)
        if cycle_ids:
            self.env["g2p.cycle"]._lock_rows(cycle_ids)
            self.search([("cycle_id", "in", cycle_ids)])._action_launch_stock_rule()
        return True

    @api.model
    def _post_cycle_deliveries(self, cycle_ids):
        """Post what was redeemed in ``cycle_ids`` (g2p.cycle ids) since the last posting
        (see :meth:`_post_deliveries`).
        :return: dict ``{"delivered": delivery moves done, "returned": return moves done}``"""
        cycle_ids = sorted(cycle_ids)
        if not cycle_ids:
            return {"delivered": 0, "returned": 0}
        self.env["g2p.cycle"]._lock_rows(cycle_ids)
        return self.search([("cycle_id", "in", cycle_ids)])._post_deliveries()

    # ------------------------------------------------------------------
    # Procurement (the shape of sale_stock's sale.order.line)
    # ------------------------------------------------------------------
    def _get_procurement_group(self):
        """The cycle's procurement group (shared by its allocations' transfers)."""
        self.ensure_one()
        return self.cycle_id._inkind_procurement_group()

    def _prepare_procurement_values(self, group_id=False):
        """Values of the allocation's procurement: they carry the allocation onto the move
        (``stock.rule._get_custom_move_fields``) and pick the warehouse's delivery rule."""
        self.ensure_one()
        return {
            "group_id": group_id,
            "warehouse_id": self.warehouse_id,
            "route_ids": self._delivery_rule(self.warehouse_id).route_id,
            "date_planned": fields.Datetime.now(),
            "company_id": self.company_id,
            "g2p_allocation_id": self.id,
        }

    def _create_procurement(self, product_qty, values):
        """A procurement of ``product_qty`` (product UoM) from the warehouse to the customers."""
        self.ensure_one()
        name = _(
            "%(cycle)s: %(product)s for %(point)s",
            cycle=self.cycle_id.name,
            product=self.product_id.display_name,
            point=self.service_point_id.display_name or _("no service point"),
        )
        return self.env["procurement.group"].Procurement(
            self.product_id,
            product_qty,
            self.product_id.uom_id,
            self._customer_location(),
            name,
            self.cycle_id.name,
            self.company_id,
            values,
        )

    def _action_launch_stock_rule(self, count_open=(), count_closed=()):
        """Bring the open delivery move of each allocation of ``self`` to committed −
        delivered: set its demand, cancel it when nothing is left, or run one procurement
        when it has none; then reserve what is not reserved.

        :param count_open: g2p.entitlement.inkind ids to count as open (being approved)
        :param count_closed: ids to count as closed (being released)
        :return: {allocation id: its open delivery move (stock.move)} where one is left
        """
        figures = self._read_figures(count_open, count_closed)
        Move = self.env["stock.move"]
        to_assign = to_cancel = Move
        procurements = defaultdict(list)
        open_moves = {}
        for allocation in self:
            fig = figures[allocation.id]
            rounding = allocation._rounding()
            target = float_round(fig.committed - fig.delivered, precision_rounding=rounding)
            move = Move.browse(fig.open_move_id)
            if float_compare(target, 0.0, precision_rounding=rounding) <= 0:
                to_cancel |= move
            elif not move:
                values = allocation._prepare_procurement_values(group_id=allocation._get_procurement_group())
                procurements[allocation.company_id].append(allocation._create_procurement(target, values))
            else:
                open_moves[allocation.id] = move
                demand = allocation.product_id.uom_id._compute_quantity(target, move.product_uom, round=False)
                if float_compare(move.product_uom_qty, demand, precision_rounding=move.product_uom.rounding):
                    move.product_uom_qty = demand
                to_assign |= move
        if to_cancel:
            to_cancel._action_cancel()
        if procurements:
            for company, company_procurements in procurements.items():
                self.env["procurement.group"].with_company(company).run(company_procurements)
            procured = self.browse(
                [p.values["g2p_allocation_id"] for ps in procurements.values() for p in ps]
            )
            new_moves = Move.search(
                [
                    ("g2p_allocation_id", "in", procured.ids),
                    ("location_dest_id", "=", self._customer_location().id),
                    ("state", "not in", ("done", "cancel")),
                ]
            )
            open_moves.update({move.g2p_allocation_id.id: move for move in new_moves})
            to_assign |= new_moves
        to_assign = to_assign.filtered(lambda m: m.state in ("confirmed", "partially_available", "waiting"))
        if to_assign:
            to_assign._action_assign()
        # The figures are read by SQL (no @api.depends): drop what this transaction cached,
        # so that a read after several reservations in one transaction (jobs run in a row)
        # sees the moves as they are now.
        self.invalidate_recordset(QUANTITY_FIELDS)
        return open_moves

    # ------------------------------------------------------------------
    # Posting deliveries
    # ------------------------------------------------------------------
    def _post_deliveries(self):
        """Post what was redeemed on the allocations ``self`` since the last posting.

        Per allocation, redeemed − delivered (product UoM) is set done on its open move
        (``quantity`` + ``picked``, then ``_action_done``: a partly done move splits into
        a done move and a reserved remainder, which keeps the allocation, once per
        posting, whatever the number of redemptions). A negative figure (a redemption
        reversed after it was posted) comes back as a done return move from the customers
        location into the warehouse's stock, and is reserved again.

        :return: dict ``{"delivered": delivery moves done, "returned": return moves done}``
        """
        figures = self._read_figures()
        to_deliver, to_return = {}, {}
        for allocation in self:
            fig = figures[allocation.id]
            rounding = allocation._rounding()
            delta = float_round(fig.redeemed - fig.delivered, precision_rounding=rounding)
            if float_compare(delta, 0.0, precision_rounding=rounding) > 0:
                to_deliver[allocation] = delta
            elif not float_is_zero(delta, precision_rounding=rounding):
                to_return[allocation] = (-delta, fig.last_delivery_id)
        if not to_deliver and not to_return:
            return {"delivered": 0, "returned": 0}
        # every allocation with something to deliver has its open move, holding enough
        open_moves = self._action_launch_stock_rule() if to_deliver else {}
        to_post = self.env["stock.move"]
        for allocation, delta in to_deliver.items():
            move = open_moves.get(allocation.id)
            if not move:
                _logger.warning("In-kind posting: %s has %s to deliver and no open move", allocation, delta)
                continue
            move.quantity = min(
                allocation.product_id.uom_id._compute_quantity(delta, move.product_uom), move.product_uom_qty
            )
            to_post |= move
        if to_post:
            to_post.picked = True
            pickings = to_post.picking_id
            to_post._action_done()
            pickings.filtered(lambda p: p.state == "done" and not p.date_done).write(
                {"date_done": fields.Datetime.now()}
            )
        returns = self._return_deliveries(to_return)
        # the remainders are reserved, what came back is reserved again
        self._action_launch_stock_rule()
        return {"delivered": len(to_post), "returned": len(returns)}

    @api.model
    def _return_deliveries(self, to_return):
        """Done return moves (customers → warehouse stock), one per allocation of
        ``to_return`` ({allocation: (quantity in the product's UoM, id of its last done
        delivery move or None)}). :return: stock.move"""
        Move = self.env["stock.move"]
        if not to_return:
            return Move
        customers = self._customer_location()
        vals_list = []
        for allocation, (quantity, last_delivery_id) in to_return.items():
            warehouse = allocation.warehouse_id
            cycle = allocation.cycle_id
            picking_type = warehouse.out_type_id.return_picking_type_id or warehouse.in_type_id
            vals_list.append(
                {
                    "name": _(
                        "Return: %(cycle)s, %(product)s",
                        cycle=cycle.name,
                        product=allocation.product_id.display_name,
                    ),
                    "product_id": allocation.product_id.id,
                    "product_uom": allocation.product_id.uom_id.id,
                    "product_uom_qty": quantity,
                    "location_id": customers.id,
                    "location_dest_id": warehouse.lot_stock_id.id,
                    "picking_type_id": picking_type.id,
                    "company_id": allocation.company_id.id,
                    "group_id": allocation._get_procurement_group().id,
                    "origin": cycle.name,
                    "origin_returned_move_id": last_delivery_id or False,
                    "procure_method": "make_to_stock",
                    "g2p_allocation_id": allocation.id,
                }
            )
        moves = Move.create(vals_list)
        moves._action_confirm(merge=False)
        for move in moves:
            move.quantity = move.product_uom_qty
        moves.picked = True
        moves._action_done()
        return moves

    # ------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------
    def _read_figures(self, count_open=(), count_closed=()):
        """The figures (see ``Figures``) of the allocations ``self``, in one grouped query.

        :param count_open: g2p.entitlement.inkind ids to count as open whatever their state
        :param count_closed: ids to count as closed whatever their state
        :return: {allocation id: Figures}, quantities rounded to the product's UoM
        """
        if not self:
            return {}
        self.env["g2p.entitlement.inkind"].flush_model(
            ["allocation_id", "state", "quantity", "quantity_redeemed", "uom_id"]
        )
        self.env["stock.move"].flush_model(
            ["g2p_allocation_id", "state", "product_qty", "location_id", "location_dest_id"]
        )
        self.flush_recordset(["product_id"])
        # Raw SQL: one aggregate over up to 100,000 entitlements per call, where the ORM
        # would read them all; it reads committed rows only after the flushes above, and
        # writes nothing (no cache to keep). Superuser figures, as the stock work is.
        self.env.cr.execute(
            SQL(
                """WITH opened AS (SELECT DISTINCT unnest(%(open)s::int[]) AS id),
                        closed AS (SELECT DISTINCT unnest(%(closed)s::int[]) AS id),
                        held AS (
                            SELECT e.allocation_id AS id,
                                   SUM(e.quantity / eu.factor * pu.factor) AS total,
                                   SUM(CASE WHEN c.id IS NOT NULL THEN e.quantity_redeemed
                                            WHEN o.id IS NOT NULL OR e.state IN %(open_states)s THEN e.quantity
                                            ELSE e.quantity_redeemed END / eu.factor * pu.factor) AS committed,
                                   SUM(e.quantity_redeemed / eu.factor * pu.factor) AS redeemed
                              FROM g2p_entitlement_inkind e
                              JOIN uom_uom eu ON eu.id = e.uom_id
                              JOIN g2p_inkind_allocation a ON a.id = e.allocation_id
                              JOIN product_product pp ON pp.id = a.product_id
                              JOIN product_template pt ON pt.id = pp.product_tmpl_id
                              JOIN uom_uom pu ON pu.id = pt.uom_id
                              LEFT JOIN opened o ON o.id = e.id
                              LEFT JOIN closed c ON c.id = e.id
                             WHERE e.allocation_id = ANY(%(ids)s)
                             GROUP BY e.allocation_id),
                        moved AS (
                            SELECT g2p_allocation_id AS id,
                                   SUM(CASE WHEN state = 'done' AND location_dest_id = %(c)s THEN product_qty
                                            WHEN state = 'done' AND location_id = %(c)s THEN -product_qty
                                            ELSE 0 END) AS delivered,
                                   SUM(CASE WHEN state NOT IN ('done', 'cancel') AND location_dest_id = %(c)s
                                            THEN product_qty ELSE 0 END) AS reserved,
                                   MAX(id) FILTER (WHERE state NOT IN ('done', 'cancel')
                                                     AND location_dest_id = %(c)s) AS open_move_id,
                                   MAX(id) FILTER (WHERE state = 'done' AND location_dest_id = %(c)s)
                                       AS last_delivery_id
                              FROM stock_move
                             WHERE g2p_allocation_id = ANY(%(ids)s)
                             GROUP BY g2p_allocation_id)
                 SELECT w.id, COALESCE(held.total, 0), COALESCE(held.committed, 0), COALESCE(held.redeemed, 0),
                        COALESCE(moved.delivered, 0), COALESCE(moved.reserved, 0),
                        moved.open_move_id, moved.last_delivery_id
                   FROM unnest(%(ids)s::int[]) AS w(id)
                   LEFT JOIN held ON held.id = w.id
                   LEFT JOIN moved ON moved.id = w.id""",
                open=list(count_open),
                closed=list(count_closed),
                open_states=OPEN_STATES,
                ids=self.ids,
                c=self._customer_location().id,
            )
        )
        rows = self.env.cr.fetchall()
        rounding = {allocation.id: allocation._rounding() for allocation in self}  # may query: after fetchall
        return {
            row[0]: Figures(
                *(float_round(q, precision_rounding=rounding[row[0]]) for q in row[1:6]), row[6], row[7]
            )
            for row in rows
        }

    @api.model
    def _stock_managed(self, entitlement_ids):
        """The stock-managed entitlements among ``entitlement_ids`` (inventory managed by
        their manager, storable product), one dict each: quantities in the product's UoM,
        the warehouse that would serve them now (the service point's, else the manager's)
        and their allocation (with its warehouse) when they already hold stock."""
        self._stock_managed_query(
            SQL(
                """e.id, e.cycle_id, e.product_id, e.quantity / eu.factor * pu.factor,
                   e.quantity_redeemed / eu.factor * pu.factor, e.service_point_id,
                   COALESCE(sp.warehouse_id, mg.warehouse_id), e.allocation_id, a.warehouse_id"""
            ),
            SQL("e.id = ANY(%s)", list(entitlement_ids)),
            SQL("ORDER BY e.id"),
        )
        names = ("id", "cycle_id", "product_id", "quantity", "redeemed", "service_point_id")
        names += ("warehouse_id", "allocation_id", "allocation_warehouse_id")
        return [dict(zip(names, row, strict=True)) for row in self.env.cr.fetchall()]

    @api.model
    def _stock_managed_query(self, columns, condition, tail):
        """Run ``SELECT columns`` over the stock-managed in-kind entitlements matching
        ``condition`` (SQL on alias ``e``; joined: ``it`` item, ``mg`` manager, ``eu`` /
        ``pu`` the entitlement's and the product's UoM, ``sp`` service point, ``a``
        allocation), then ``tail`` (ORDER BY / GROUP BY). Flushed first; reads only."""
        Entitlement = self.env["g2p.entitlement.inkind"]
        Entitlement.flush_model()
        self.env["spp.service.point"].flush_model(["warehouse_id"])
        # Raw SQL: one read of up to a whole cycle's entitlements with their manager,
        # service point and product, which the ORM would fetch record by record; reads only.
        self.env.cr.execute(
            SQL(
                """SELECT %s
                     FROM g2p_entitlement_inkind e
                     JOIN g2p_program_entitlement_manager_inkind_item it ON it.id = e.inkind_item_id
                     JOIN g2p_program_entitlement_manager_inkind mg ON mg.id = it.manager_id
                     JOIN uom_uom eu ON eu.id = e.uom_id
                     JOIN product_product pp ON pp.id = e.product_id
                     JOIN product_template pt ON pt.id = pp.product_tmpl_id
                     JOIN uom_uom pu ON pu.id = pt.uom_id
                     LEFT JOIN spp_service_point sp ON sp.id = e.service_point_id
                     LEFT JOIN g2p_inkind_allocation a ON a.id = e.allocation_id
                    WHERE %s AND mg.manage_inventory AND pt.type = 'product'
                    %s""",
                columns,
                condition,
                tail,
            )
        )

    @api.model
    def _no_warehouse_refusal(self, entitlement, count):
        """The ``[no_warehouse]`` UserError for ``entitlement`` (g2p.entitlement.inkind),
        the first of ``count`` entitlements without a warehouse to be served from."""
        return UserError(
            coded(
                "no_warehouse",
                _(
                    "Entitlement %(name)s (and %(count)s more) has no warehouse to be served from: set a "
                    "warehouse on the in-kind entitlement manager of %(program)s or on the service point. "
                    "Nothing was approved.",
                    name=entitlement.display_name,
                    count=count - 1,
                    program=entitlement.program_id.name,
                ),
            )
        )

    @api.model
    def _check_cycle_stock(self, cycle):
        """:meth:`_check_entitlements_stock` for every pending in-kind entitlement of
        ``cycle`` (g2p.cycle), summed per (warehouse, product) in PostgreSQL: a whole
        cycle at national scale (millions of entitlements) is checked without a row of it
        in memory. Writes nothing.

        :return: None
        :raise UserError: ``[no_warehouse]``, ``[out_of_stock]`` as :meth:`_reserve_entitlements`."""
        serving = SQL("COALESCE(a.warehouse_id, sp.warehouse_id, mg.warehouse_id)")
        self._stock_managed_query(
            SQL(
                """%(serving)s, e.product_id,
                   SUM(CASE WHEN e.allocation_id IS NOT NULL
                            THEN (e.quantity - e.quantity_redeemed) / eu.factor * pu.factor
                            ELSE e.quantity / eu.factor * pu.factor END),
                   COUNT(*), MIN(e.id)""",
                serving=serving,
            ),
            SQL("e.cycle_id = %s AND e.state = 'pending_validation'", cycle.id),
            SQL("GROUP BY 1, 2"),
        )
        needs = {}
        for warehouse_id, product_id, quantity, count, first_id in self.env.cr.fetchall():
            if not warehouse_id:
                raise self._no_warehouse_refusal(self.env["g2p.entitlement.inkind"].browse(first_id), count)
            needs[(warehouse_id, product_id)] = quantity
        shortages = self._shortages(needs)
        if shortages:
            raise UserError(self._shortage_message(shortages))

    # ------------------------------------------------------------------
    # Approval helpers
    # ------------------------------------------------------------------
    @api.model
    def _allocations_of(self, rows):
        """The allocation of the key of each entitlement of ``rows`` (from
        :meth:`_stock_managed`, without an allocation), created when new.

        :return: list of (entitlement id, allocation id, warehouse id that serves it)"""
        if not rows:
            return []
        keys = {
            (r["cycle_id"], r["warehouse_id"], r["service_point_id"] or False, r["product_id"]) for r in rows
        }
        existing = self.search([("cycle_id", "in", list({key[0] for key in keys}))])
        by_key = {
            (a.cycle_id.id, a.warehouse_id.id, a.service_point_id.id, a.product_id.id): a.id for a in existing
        }
        warehouses = self.env["stock.warehouse"].browse({key[1] for key in keys})
        company_of = {warehouse.id: warehouse.company_id.id for warehouse in warehouses}
        new_keys = sorted(keys - set(by_key), key=lambda k: (k[0], k[1], k[2] or 0, k[3]))
        created = self.create(
            [
                {
                    "cycle_id": cycle_id,
                    "warehouse_id": warehouse_id,
                    "service_point_id": sp_id,
                    "product_id": product_id,
                    "company_id": company_of[warehouse_id],
                }
                for cycle_id, warehouse_id, sp_id, product_id in new_keys
            ]
        )
        by_key.update(zip(new_keys, created.ids, strict=True))
        return [
            (
                r["id"],
                by_key[(r["cycle_id"], r["warehouse_id"], r["service_point_id"] or False, r["product_id"])],
                r["warehouse_id"],
            )
            for r in rows
        ]

    @api.model
    def _write_allocations(self, values):
        """Write ``values`` (as :meth:`_allocate_entitlements` answers) on the
        entitlements, for a reservation outside an approval."""
        pairs = [(eid, aid, values["warehouse_id"][eid]) for eid, aid in values["allocation_id"].items()]
        if not pairs:
            return
        # Raw SQL: one UPDATE per 5,000 entitlements instead of the ORM's per-value writes
        # and their write checks (100,000 in an approval); the caches of the fields it sets
        # (and of the relations built on them) are invalidated just after.
        for start in range(0, len(pairs), SQL_BATCH):
            chunk = pairs[start : start + SQL_BATCH]
            self.env.cr.execute(
                SQL(
                    """UPDATE g2p_entitlement_inkind e SET allocation_id = v.allocation, warehouse_id = v.warehouse
                         FROM unnest(%s::int[], %s::int[], %s::int[]) AS v(id, allocation, warehouse)
                        WHERE e.id = v.id""",
                    [p[0] for p in chunk],
                    [p[1] for p in chunk],
                    [p[2] for p in chunk],
                )
            )
        self.env["g2p.entitlement.inkind"].invalidate_model(["allocation_id", "warehouse_id", "move_ids"])
        self.invalidate_model(["entitlement_ids"])

    @api.model
    def _shortages(self, needs):
        """[(warehouse, product, needed, available)] for the pairs of ``needs``
        ({(warehouse id, product id): quantity in the product's UoM}) whose need is above
        the free quantity of the warehouse's stock."""
        by_warehouse = defaultdict(set)
        for warehouse_id, product_id in needs:
            by_warehouse[warehouse_id].add(product_id)
        shortages = []
        for warehouse in self.env["stock.warehouse"].browse(sorted(by_warehouse)):
            products = (
                self.env["product.product"]
                .browse(sorted(by_warehouse[warehouse.id]))
                .with_context(location=warehouse.lot_stock_id.id)
            )
            free = {p.id: p.free_qty for p in products}
            for product in products:
                need = float_round(
                    needs[(warehouse.id, product.id)], precision_rounding=self._rounding(product)
                )
                if float_compare(need, free[product.id], precision_rounding=product.uom_id.rounding) > 0:
                    shortages.append((warehouse, product, need, free[product.id]))
        return shortages

    @api.model
    def _shortage_message(self, shortages):
        """The ``[out_of_stock]`` refusal listing ``shortages`` [(warehouse, product, needed, available)]."""
        lines = "\n".join(
            _(
                "- %(warehouse)s, %(product)s: needed %(need)s %(uom)s, available %(free)s %(uom)s",
                warehouse=warehouse.name,
                product=product.display_name,
                need=need,
                free=free,
                uom=product.uom_id.name,
            )
            for warehouse, product, need, free in shortages
        )
        return coded(
            "out_of_stock",
            _(
                "Stock cannot cover these entitlements; nothing was approved.\n%(lines)s\n"
                "Receive the missing goods (or lower the quantities), then approve again.",
                lines=lines,
            ),
        )

    @api.model
    def _check_reserved(self, open_moves):
        """Raise ``[out_of_stock]`` when one of ``open_moves`` ({allocation id: stock.move})
        is not fully reserved (stock taken since the check, or lying outside the
        warehouse's stock location)."""
        short = [(self.browse(aid), move) for aid, move in open_moves.items() if move.state != "assigned"]
        if short:
            raise UserError(
                self._shortage_message(
                    [
                        (
                            allocation.warehouse_id,
                            move.product_id,
                            move.product_qty,
                            move.product_uom._compute_quantity(move.quantity, move.product_id.uom_id),
                        )
                        for allocation, move in short
                    ]
                )
            )

    # ------------------------------------------------------------------
    # Shared helpers
    # ------------------------------------------------------------------
    @api.model
    def _customer_location(self):
        """The customers location (stock.location), where deliveries go."""
        return self.env.ref("stock.stock_location_customers")

    def _rounding(self, product=None):
        """The rounding of quantities of ``product`` (default: the allocation's) on moves:
        its UoM's, never finer than the decimal precision of stock quantities."""
        product = product or self.product_id
        digits = self.env["decimal.precision"].precision_get("Product Unit of Measure")
        return max(product.uom_id.rounding, 10**-digits)

    @api.model
    def _delivery_rule(self, warehouse):
        """The pull rule (make to stock) from ``warehouse``'s stock to the customers
        location: the one of its delivery route when it delivers in one step, else one
        of the route *In-kind distribution* that this addon creates for it.
        :return: stock.rule"""
        customers = self._customer_location()
        Rule = self.env["stock.rule"]
        domain = [
            ("location_src_id", "=", warehouse.lot_stock_id.id),
            ("location_dest_id", "=", customers.id),
            ("action", "in", ("pull", "pull_push")),
            ("procure_method", "=", "make_to_stock"),
            ("warehouse_id", "=", warehouse.id),
        ]
        if warehouse.delivery_route_id:
            rule = Rule.search(domain + [("route_id", "=", warehouse.delivery_route_id.id)], limit=1)
            if rule:
                return rule
        route = self.env.ref("spp_entitlement_in_kind.stock_route_inkind_distribution")
        rule = Rule.search(domain + [("route_id", "=", route.id)], limit=1)
        if not rule:
            rule = Rule.create(
                {
                    "name": _("%s: in-kind distribution", warehouse.name),
                    "route_id": route.id,
                    "action": "pull",
                    "procure_method": "make_to_stock",
                    "location_src_id": warehouse.lot_stock_id.id,
                    "location_dest_id": customers.id,
                    "picking_type_id": warehouse.out_type_id.id,
                    "warehouse_id": warehouse.id,
                    "company_id": warehouse.company_id.id,
                    "group_propagation_option": "propagate",
                }
            )
        return rule
