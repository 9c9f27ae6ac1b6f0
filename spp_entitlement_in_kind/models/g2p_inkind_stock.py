"""The stock work of in-kind entitlements: check, reserve, post deliveries, release.

- A *key* is (cycle, warehouse stock location, service point, product). A key has at
  most one open (reserved) delivery move, from the warehouse's stock to the customers
  location, created by ``procurement.group.run`` with one procurement per key (never
  one per beneficiary); its done moves (and done returns) are its posting history.
- Each stock-managed entitlement links (``move_ids``: one row in the relation) to the
  current move of its key; when Odoo splits a partly done move at a posting, the links
  follow the remainder.
- Per key, in the product's UoM:
  *committed* = Σ ``quantity`` of its open entitlements (approved, transferred) + Σ
  ``quantity_redeemed`` of the others (what was handed out is all they will take);
  *delivered* = done deliveries − done returns (read from the stock moves);
  *redeemed* = Σ ``quantity_redeemed``.
  The open move holds committed − delivered; a posting makes redeemed − delivered done
  (or returns it when negative). Nothing is incremented: every call recomputes these
  from the entitlements and the moves, so rounding never drifts and a key that went
  wrong (a move cancelled by hand) is healed by the next call. Postings write no
  entitlement row: redemptions never wait for, nor conflict with, a posting.

All methods run as superuser: callers check the user's rights first (the suite's
roles have no stock rights).
"""

import logging
from collections import defaultdict

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import float_compare, float_is_zero, float_round

_logger = logging.getLogger(__name__)

OPEN_STATES = ("approved", "transferred")
MOVE_REL = "g2p_entitlement_inkind_stock_move_rel"
SQL_BATCH = 5000


class G2PInkindStock(models.AbstractModel):
    _name = "g2p.inkind.stock"
    _description = "In-kind entitlements: stock reservation, delivery and release"

    # ------------------------------------------------------------------
    # Approval: check and reserve
    # ------------------------------------------------------------------
    @api.model
    def _reserve(self, entitlements):
        """Check that stock covers ``entitlements`` (g2p.entitlement.inkind, pending,
        about to be approved) and reserve it; change nothing when it does not.

        Needs are aggregated per (warehouse, product), converted to the product's UoM and
        compared with the free quantity (``free_qty``) of the warehouse's stock location
        (with its children: what a delivery from there can reserve). Then one
        procurement per key without an open move (a key with one gets a larger demand),
        the entitlements linked to their key's move, and the moves reserved at once.

        :raise UserError: ``[no_warehouse]`` an entitlement has no warehouse to serve it;
            ``[out_of_stock]`` listing every (warehouse, product, needed, available).
        """
        if not entitlements:
            return
        # first of all: two approvals of one cycle must not both reserve
        self._lock_cycles(entitlements._cycles().ids)
        rows = self._rows(entitlements.ids)
        if not rows:
            return
        cycle_ids = sorted({r["cycle_id"] for r in rows})
        missing = [r for r in rows if not r["move_id"] and not r["warehouse_id"]]
        if missing:
            entitlement = entitlements.browse(missing[0]["id"])
            raise UserError(
                _(
                    "[no_warehouse] Entitlement %(name)s (and %(count)s more) has no warehouse to be "
                    "served from: set a warehouse on the in-kind entitlement manager of %(program)s or "
                    "on the service point. Nothing was approved.",
                    name=entitlement.display_name,
                    count=len(missing) - 1,
                    program=entitlement.program_id.name,
                )
            )
        warehouses = self.env["stock.warehouse"].browse(
            {r["warehouse_id"] for r in rows if r["warehouse_id"]}
        )
        location_of = {wh.id: wh.lot_stock_id.id for wh in warehouses}
        warehouse_of_location = self._warehouse_of_locations({r["move_key"][1] for r in rows if r["move_id"]})
        needs = defaultdict(lambda: defaultdict(float))
        new_links = defaultdict(list)
        for r in rows:
            if r["move_id"]:
                # approved again after a reset: it already holds what it redeemed
                key = r["move_key"]
                warehouse_id = warehouse_of_location[key[1]].id
                increase = r["quantity"] - r["redeemed"]
            else:
                key = (r["cycle_id"], location_of[r["warehouse_id"]], r["service_point_id"], r["product_id"])
                warehouse_id = r["warehouse_id"]
                increase = r["quantity"]
                new_links[key].append((r["id"], r["uom_id"], r["quantity"]))
            needs[(warehouse_id, r["product_id"])][r["uom_id"]] += increase
        shortages = self._shortages(needs)
        if shortages:
            raise UserError(self._shortage_message(shortages))
        self._set_warehouses([(r["id"], r["warehouse_id"]) for r in rows if not r["move_id"]])
        self._apply(cycle_ids, open_ids=entitlements.ids, new_links=new_links)
        self._check_reserved(set(new_links) | {r["move_key"] for r in rows if r["move_id"]})

    @api.model
    def _rows(self, entitlement_ids):
        """The stock-managed entitlements among ``entitlement_ids``, one dict each: their
        figures, the warehouse that would serve them now (the service point's, else the
        manager's) and, when they already hold stock, their move and its key."""
        if not entitlement_ids:
            return []
        self.env.flush_all()
        self.env.cr.execute(
            f"""SELECT e.id, e.cycle_id, e.product_id, e.uom_id, e.quantity, e.quantity_redeemed,
                       COALESCE(e.service_point_id, 0), COALESCE(sp.warehouse_id, mg.warehouse_id), r.move_id,
                       m.g2p_cycle_id, m.location_id, COALESCE(m.g2p_service_point_id, 0), m.product_id
                  FROM g2p_entitlement_inkind e
                  JOIN g2p_program_entitlement_manager_inkind_item it ON it.id = e.inkind_item_id
                  JOIN g2p_program_entitlement_manager_inkind mg ON mg.id = it.manager_id
                  LEFT JOIN spp_service_point sp ON sp.id = e.service_point_id
                  LEFT JOIN {MOVE_REL} r ON r.entitlement_id = e.id
                  LEFT JOIN stock_move m ON m.id = r.move_id
                 WHERE e.id = ANY(%s) AND mg.manage_inventory
                 ORDER BY e.id""",
            [list(entitlement_ids)],
        )
        names = ("id", "cycle_id", "product_id", "uom_id", "quantity", "redeemed", "service_point_id")
        names += ("warehouse_id", "move_id")
        return [
            dict(zip(names, row[:9], strict=True), move_key=tuple(row[9:]) if row[8] else None)
            for row in self.env.cr.fetchall()
        ]

    @api.model
    def _set_warehouses(self, pairs):
        """Store the serving warehouse of entitlements that take stock for the first time
        (one UPDATE per slice, only where it changed)."""
        for start in range(0, len(pairs), SQL_BATCH):
            chunk = pairs[start : start + SQL_BATCH]
            self.env.cr.execute(
                """UPDATE g2p_entitlement_inkind e SET warehouse_id = v.wh
                     FROM unnest(%s::int[], %s::int[]) AS v(id, wh)
                    WHERE e.id = v.id AND e.warehouse_id IS DISTINCT FROM v.wh""",
                [[p[0] for p in chunk], [p[1] for p in chunk]],
            )
        self.env["g2p.entitlement.inkind"].invalidate_model(["warehouse_id"])

    @api.model
    def _shortages(self, needs):
        """[(warehouse, product, needed, available)] for the pairs of ``needs``
        ({(warehouse id, product id): {uom id: quantity}}) whose need, in the product's
        UoM, is above the free quantity of the warehouse's stock."""
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
                need = self._product_qty(needs[(warehouse.id, product.id)], product)
                if float_compare(need, free[product.id], precision_rounding=product.uom_id.rounding) > 0:
                    shortages.append((warehouse, product, need, free[product.id]))
        return shortages

    @api.model
    def _shortage_message(self, shortages):
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
        return _(
            "[out_of_stock] Stock cannot cover these entitlements; nothing was approved.\n%(lines)s\n"
            "Receive the missing goods (or lower the quantities), then approve again.",
            lines=lines,
        )

    @api.model
    def _check_reserved(self, keys):
        """Raise ``[out_of_stock]`` when an open move of ``keys`` is not fully reserved
        (stock taken since the check, or lying outside the warehouse's stock location)."""
        moves = self._moves({key[0] for key in keys})
        short = (
            self.env["stock.move"]
            .browse([moves[k]["open"] for k in keys if k in moves and moves[k]["open"]])
            .filtered(lambda m: m.state != "assigned")
        )
        if short:
            warehouses = self._warehouse_of_locations(set(short.location_id.ids))
            raise UserError(
                self._shortage_message(
                    [
                        (
                            warehouses[m.location_id.id],
                            m.product_id,
                            m.product_qty,
                            m.product_uom._compute_quantity(m.quantity, m.product_id.uom_id),
                        )
                        for m in short
                    ]
                )
            )

    # ------------------------------------------------------------------
    # Release
    # ------------------------------------------------------------------
    @api.model
    def _release(self, entitlements):
        """Lower the reserved moves of ``entitlements`` (g2p.entitlement.inkind about to
        be rejected, cancelled, expired or closed) by what they will never take:
        quantity − quantity redeemed. A move that has nothing left is cancelled."""
        if not entitlements:
            return
        self.env.flush_all()
        self.env.cr.execute(
            f"SELECT DISTINCT e.cycle_id FROM g2p_entitlement_inkind e JOIN {MOVE_REL} r ON r.entitlement_id = e.id "
            "WHERE e.id = ANY(%s)",
            [entitlements.ids],
        )
        cycle_ids = sorted(row[0] for row in self.env.cr.fetchall())
        if cycle_ids:
            self._lock_cycles(cycle_ids)
            self._apply(cycle_ids, closed_ids=entitlements.ids)

    @api.model
    def _sync(self, cycle_ids):
        """Bring the reservations of ``cycle_ids`` (g2p.cycle ids) to what the states and
        redeemed quantities of their entitlements say, e.g. after states were set in bulk
        (closing: ``redeemed``, ``partially_redeemed``, ``expired``). Idempotent, cheap
        when nothing changed (one aggregate query per call, stock work per changed key).
        :return: True"""
        cycle_ids = sorted(cycle_ids)
        if cycle_ids:
            self._lock_cycles(cycle_ids)
            self._apply(cycle_ids)
        return True

    # ------------------------------------------------------------------
    # Posting deliveries
    # ------------------------------------------------------------------
    @api.model
    def _post(self, cycle_ids):
        """Post what was redeemed in ``cycle_ids`` (g2p.cycle ids) since the last posting.

        Per key, redeemed − delivered (in the product's UoM) is set done on the key's open
        move (``quantity`` + ``picked``, then ``_action_done``: a partly done move splits
        into a done move and a reserved remainder, once per posting, whatever the number
        of redemptions). A negative figure (a redemption reversed after it was posted)
        comes back as a done return move from the customers location into the
        warehouse's stock, and is reserved again for the entitlement.

        :return: dict ``{"delivered": delivery moves done, "returned": return moves done}``
        """
        result = {"delivered": 0, "returned": 0}
        cycle_ids = sorted(cycle_ids)
        if not cycle_ids:
            return result
        self._lock_cycles(cycle_ids)
        deltas = self._deltas(cycle_ids)
        if not deltas:
            return result
        # every key with something to deliver has its open move, holding the right quantity
        self._apply(cycle_ids)
        moves = self._moves(cycle_ids)
        Move = self.env["stock.move"]
        to_post = Move
        returns = []
        for key, delta in sorted(deltas.items()):
            if delta < 0:
                returns.append((key, -delta, moves.get(key, {}).get("all", [])))
                continue
            move = Move.browse(moves.get(key, {}).get("open"))
            if not move:
                _logger.warning("In-kind posting: key %s has %s to deliver and no open move", key, delta)
                continue
            move.quantity = min(
                move.product_id.uom_id._compute_quantity(delta, move.product_uom), move.product_uom_qty
            )
            move.picked = True
            to_post |= move
        if to_post:
            pickings = to_post.picking_id
            to_post._action_done()
            pickings.filtered(lambda p: p.state == "done" and not p.date_done).write(
                {"date_done": fields.Datetime.now()}
            )
        result["delivered"] = len(to_post)
        result["returned"] = len(self._return(returns))
        # the links follow the remainders; what came back is reserved again
        self._apply(cycle_ids)
        return result

    @api.model
    def _deltas(self, cycle_ids):
        """{key: redeemed − delivered} (product UoM) for the keys of ``cycle_ids`` where it is not 0."""
        sums, _linked = self._sums(cycle_ids)
        delivered = self._delivered(cycle_ids)
        Product = self.env["product.product"]
        deltas = {}
        for key in set(sums) | set(delivered):
            product = Product.browse(key[3])
            delta = self._product_qty(sums.get(key, {}).get("redeemed", {}), product) - delivered.get(
                key, 0.0
            )
            if not float_is_zero(delta, precision_rounding=self._rounding(product)):
                deltas[key] = delta
        return deltas

    @api.model
    def _return(self, returns):
        """Done return moves (customers → warehouse stock), one per (key, quantity in the
        product's UoM, delivery move ids of the key) of ``returns``. :return: stock.move"""
        Move = self.env["stock.move"]
        if not returns:
            return Move
        customers = self._customer_location()
        warehouses = self._warehouse_of_locations({key[1] for key, _qty, _ids in returns})
        vals_list = []
        for key, quantity, move_ids in returns:
            cycle_id, location_id, sp_id, product_id = key
            warehouse = warehouses[location_id]
            product = self.env["product.product"].browse(product_id)
            cycle = self.env["g2p.cycle"].browse(cycle_id)
            done = Move.browse(move_ids).filtered(lambda m: m.state == "done")
            picking_type = warehouse.out_type_id.return_picking_type_id or warehouse.in_type_id
            vals_list.append(
                {
                    "name": _(
                        "Return: %(cycle)s, %(product)s", cycle=cycle.name, product=product.display_name
                    ),
                    "product_id": product.id,
                    "product_uom": product.uom_id.id,
                    "product_uom_qty": quantity,
                    "location_id": customers.id,
                    "location_dest_id": location_id,
                    "picking_type_id": picking_type.id,
                    "company_id": warehouse.company_id.id,
                    "group_id": cycle._inkind_procurement_group().id,
                    "origin": cycle.name,
                    "origin_returned_move_id": done[-1:].id,
                    "procure_method": "make_to_stock",
                    "g2p_cycle_id": cycle_id,
                    "g2p_service_point_id": sp_id or False,
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
    # The engine shared by approval, release and posting
    # ------------------------------------------------------------------
    @api.model
    def _lock_cycles(self, cycle_ids):
        """Serialize the stock work of cycles: approvals, releases and postings of one
        cycle wait for each other. The row is also touched so that the one that waited,
        whose snapshot is older, fails to serialize and is retried by Odoo with a fresh
        one: it then sees what the first did, and stock is never reserved or posted twice."""
        self.env.cr.execute(
            "SELECT id FROM g2p_cycle WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [sorted(cycle_ids)]
        )
        self.env.cr.execute(
            "UPDATE g2p_cycle SET write_uid = write_uid WHERE id = ANY(%s)", [sorted(cycle_ids)]
        )

    @api.model
    def _customer_location(self):
        return self.env.ref("stock.stock_location_customers")

    @api.model
    def _warehouse_of_locations(self, location_ids):
        """{stock location id: stock.warehouse} for warehouses' stock locations."""
        warehouses = self.env["stock.warehouse"].search([("lot_stock_id", "in", list(location_ids))])
        return {wh.lot_stock_id.id: wh for wh in warehouses}

    @api.model
    def _rounding(self, product):
        """The rounding of quantities of ``product`` on moves: its UoM's, never finer than
        the decimal precision of stock quantities."""
        digits = self.env["decimal.precision"].precision_get("Product Unit of Measure")
        return max(product.uom_id.rounding, 10**-digits)

    @api.model
    def _product_qty(self, per_uom, product):
        """Σ of ``per_uom`` ({uom id: quantity}) in the UoM of ``product``, rounded."""
        total = 0.0
        for uom_id, quantity in per_uom.items():
            uom = self.env["uom.uom"].browse(uom_id)
            total += (
                quantity
                if uom == product.uom_id
                else uom._compute_quantity(quantity, product.uom_id, round=False)
            )
        return float_round(total, precision_rounding=self._rounding(product))

    @api.model
    def _moves(self, cycle_ids):
        """{key: {"open": the key's open delivery move id or None, "all": its delivery
        move ids, oldest first}} for ``cycle_ids``."""
        self.env.flush_all()
        self.env.cr.execute(
            """SELECT id, g2p_cycle_id, location_id, COALESCE(g2p_service_point_id, 0), product_id, state
                 FROM stock_move
                WHERE g2p_cycle_id = ANY(%s) AND location_dest_id = %s
                ORDER BY id""",
            [list(cycle_ids), self._customer_location().id],
        )
        moves = {}
        for move_id, cycle_id, location_id, sp_id, product_id, state in self.env.cr.fetchall():
            entry = moves.setdefault((cycle_id, location_id, sp_id, product_id), {"open": None, "all": []})
            entry["all"].append(move_id)
            if state not in ("done", "cancel"):
                entry["open"] = move_id
        return moves

    @api.model
    def _delivered(self, cycle_ids):
        """{key: done deliveries − done returns} in the product's UoM, for ``cycle_ids``."""
        self.env.flush_all()
        self.env.cr.execute(
            """SELECT g2p_cycle_id,
                      CASE WHEN location_dest_id = %(c)s THEN location_id ELSE location_dest_id END,
                      COALESCE(g2p_service_point_id, 0), product_id,
                      SUM(CASE WHEN location_dest_id = %(c)s THEN product_qty ELSE -product_qty END)
                 FROM stock_move
                WHERE g2p_cycle_id = ANY(%(cycles)s) AND state = 'done'
                  AND (location_dest_id = %(c)s OR location_id = %(c)s)
                GROUP BY 1, 2, 3, 4""",
            {"c": self._customer_location().id, "cycles": list(cycle_ids)},
        )
        return {tuple(row[:4]): row[4] for row in self.env.cr.fetchall()}

    @api.model
    def _sums(self, cycle_ids, open_ids=(), closed_ids=()):
        """Per key of ``cycle_ids``, from its linked entitlements: committed and redeemed
        quantities per entitlement UoM, and the move ids the links point to.

        Counts ``open_ids`` as open (about to be approved) and ``closed_ids`` as closed
        (about to be rejected, cancelled, expired or closed) whatever their state.

        :return: ({key: {"committed": {uom id: qty}, "redeemed": {uom id: qty}}}, {key: set of move ids})
        """
        self.env.flush_all()
        self.env.cr.execute(
            f"""SELECT m.g2p_cycle_id, m.location_id, COALESCE(m.g2p_service_point_id, 0), m.product_id, e.uom_id,
                       SUM(CASE WHEN c.id IS NOT NULL THEN e.quantity_redeemed
                                WHEN o.id IS NOT NULL OR e.state IN %s THEN e.quantity
                                ELSE e.quantity_redeemed END),
                       SUM(e.quantity_redeemed),
                       array_agg(DISTINCT m.id)
                  FROM {MOVE_REL} r
                  JOIN stock_move m ON m.id = r.move_id
                  JOIN g2p_entitlement_inkind e ON e.id = r.entitlement_id
                  LEFT JOIN (SELECT DISTINCT unnest(%s::int[]) AS id) o ON o.id = e.id
                  LEFT JOIN (SELECT DISTINCT unnest(%s::int[]) AS id) c ON c.id = e.id
                 WHERE m.g2p_cycle_id = ANY(%s)
                 GROUP BY 1, 2, 3, 4, 5""",
            [OPEN_STATES, list(open_ids), list(closed_ids), list(cycle_ids)],
        )
        sums = defaultdict(lambda: {"committed": defaultdict(float), "redeemed": defaultdict(float)})
        linked = defaultdict(set)
        for (
            cycle_id,
            location_id,
            sp_id,
            product_id,
            uom_id,
            committed,
            redeemed,
            move_ids,
        ) in self.env.cr.fetchall():
            key = (cycle_id, location_id, sp_id, product_id)
            sums[key]["committed"][uom_id] += committed
            sums[key]["redeemed"][uom_id] += redeemed
            linked[key].update(move_ids)
        return sums, linked

    @api.model
    def _link(self, pairs):
        """Link entitlements to moves: ``pairs`` of (entitlement id, move id), one INSERT per slice."""
        for start in range(0, len(pairs), SQL_BATCH):
            chunk = pairs[start : start + SQL_BATCH]
            self.env.cr.execute(
                f"""INSERT INTO {MOVE_REL} (entitlement_id, move_id)
                    SELECT * FROM unnest(%s::int[], %s::int[]) ON CONFLICT DO NOTHING""",
                [[p[0] for p in chunk], [p[1] for p in chunk]],
            )
        if pairs:
            self.env["g2p.entitlement.inkind"].invalidate_model(["move_ids"])

    @api.model
    def _repoint(self, old_to_new):
        """Move the links of the moves ``old_to_new`` ({old move id: new move id}) to the new ones."""
        if not old_to_new:
            return
        self.env.cr.execute(
            f"""UPDATE {MOVE_REL} r SET move_id = v.new
                  FROM unnest(%s::int[], %s::int[]) AS v(old, new) WHERE r.move_id = v.old""",
            [list(old_to_new), list(old_to_new.values())],
        )
        self.env["g2p.entitlement.inkind"].invalidate_model(["move_ids"])

    @api.model
    def _apply(self, cycle_ids, open_ids=(), closed_ids=(), new_links=None):
        """Bring every key of ``cycle_ids`` to its target: its open move holds committed −
        delivered (see the module docstring).

        :param open_ids: entitlement ids to count as open (being approved)
        :param closed_ids: entitlement ids to count as closed (being released)
        :param new_links: {key: [(entitlement id, uom id, quantity)]} entitlements not
            linked yet that join the key (approval); linked to the key's move here
        :return: stock.move, the open moves that were reserved again or created
        """
        new_links = new_links or {}
        moves = self._moves(cycle_ids)
        # newcomers join the current move of their key when it has one
        self._link(
            [
                (eid, moves[key]["open"] or moves[key]["all"][-1])
                for key, members in new_links.items()
                if key in moves
                for eid, _uom, _qty in members
            ]
        )
        sums, linked = self._sums(cycle_ids, open_ids, closed_ids)
        for key, members in new_links.items():
            if key not in moves:
                for _eid, uom_id, quantity in members:
                    sums[key]["committed"][uom_id] += quantity
        # every link of a key points to its open move
        self._repoint(
            {
                old: moves[key]["open"]
                for key, move_ids in linked.items()
                if key in moves and moves[key]["open"]
                for old in move_ids
                if old != moves[key]["open"]
            }
        )
        delivered = self._delivered(cycle_ids)
        Product = self.env["product.product"]
        targets = {
            key: self._product_qty(figures["committed"], Product.browse(key[3])) - delivered.get(key, 0.0)
            for key, figures in sums.items()
        }
        to_assign, procurements = self._adjust(moves, targets)
        if self._procure(procurements):
            to_assign |= self._adopt(cycle_ids, [key for key, _qty in procurements], moves, linked, new_links)
        to_assign = to_assign.filtered(lambda m: m.state in ("confirmed", "partially_available", "waiting"))
        if to_assign:
            to_assign._action_assign()
        return to_assign

    @api.model
    def _adjust(self, moves, targets):
        """Set each open move's demand to its key's target (``targets``: {key: quantity
        in the product's UoM}); cancel it when nothing is left.

        :return: (stock.move to reserve, [(key, quantity to procure)] for keys without an open move)
        """
        Move = self.env["stock.move"]
        to_assign = to_cancel = Move
        procurements = []
        for key in sorted(set(targets) | {k for k, entry in moves.items() if entry["open"]}):
            product = self.env["product.product"].browse(key[3])
            rounding = self._rounding(product)
            target = targets.get(key, 0.0)
            open_id = moves.get(key, {}).get("open")
            if not open_id:
                if float_compare(target, 0.0, precision_rounding=rounding) > 0:
                    procurements.append((key, target))
                continue
            move = Move.browse(open_id)
            if float_compare(target, 0.0, precision_rounding=rounding) <= 0:
                to_cancel |= move
                continue
            demand = product.uom_id._compute_quantity(target, move.product_uom, round=False)
            if float_compare(move.product_uom_qty, demand, precision_rounding=move.product_uom.rounding):
                move.product_uom_qty = demand
                to_assign |= move
            elif move.state != "assigned":
                to_assign |= move
        if to_cancel:
            to_cancel._action_cancel()
        return to_assign, procurements

    @api.model
    def _adopt(self, cycle_ids, keys, moves, linked, new_links):
        """After the procurements of ``keys``: their entitlements link to the new moves.
        :return: stock.move, the new moves"""
        after = self._moves(cycle_ids)
        old_to_new = {}
        pairs = []
        new_ids = []
        for key in keys:
            new_id = after.get(key, {}).get("open")
            if not new_id:
                continue
            new_ids.append(new_id)
            old_to_new.update(dict.fromkeys(linked.get(key, ()), new_id))
            if key not in moves:
                pairs += [(eid, new_id) for eid, _uom, _qty in new_links.get(key, ())]
        self._repoint(old_to_new)
        self._link(pairs)
        return self.env["stock.move"].browse(new_ids)

    @api.model
    def _procure(self, procurements):
        """Run one procurement per (key, quantity in the product's UoM) of
        ``procurements``: an outgoing move from the warehouse's stock to the customers
        location in the cycle's procurement group, carrying the cycle and the service
        point (so that Odoo never merges two keys). :return: True when something ran."""
        if not procurements:
            return False
        Procurement = self.env["procurement.group"].Procurement
        customers = self._customer_location()
        warehouses = self._warehouse_of_locations({key[1] for key, _qty in procurements})
        now = fields.Datetime.now()
        by_company = defaultdict(list)
        for key, quantity in procurements:
            cycle_id, location_id, sp_id, product_id = key
            warehouse = warehouses[location_id]
            cycle = self.env["g2p.cycle"].browse(cycle_id)
            product = self.env["product.product"].browse(product_id)
            rule = self._delivery_rule(warehouse)
            name = _(
                "%(cycle)s: %(product)s for %(point)s",
                cycle=cycle.name,
                product=product.display_name,
                point=self.env["spp.service.point"].browse(sp_id).display_name
                if sp_id
                else _("no service point"),
            )
            values = {
                "group_id": cycle._inkind_procurement_group(),
                "warehouse_id": warehouse,
                "route_ids": rule.route_id,
                "date_planned": now,
                "company_id": warehouse.company_id,
                "g2p_cycle_id": cycle_id,
                "g2p_service_point_id": sp_id or False,
            }
            by_company[warehouse.company_id].append(
                Procurement(
                    product,
                    quantity,
                    product.uom_id,
                    customers,
                    name,
                    cycle.name,
                    warehouse.company_id,
                    values,
                )
            )
        for company, company_procurements in by_company.items():
            self.env["procurement.group"].with_company(company).run(company_procurements)
        return True

    @api.model
    def _delivery_rule(self, warehouse):
        """The pull rule (make to stock) from ``warehouse``'s stock to the customers
        location: the one of its delivery route when it delivers in one step, else one
        of the route *In-kind distribution* that this addon creates for it."""
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
