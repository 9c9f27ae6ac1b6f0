import logging
from collections import defaultdict

from markupsafe import Markup, escape

from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext.models.g2p_cycle import DASHBOARD_STATE_GROUPS
from odoo.addons.g2p_programs_ext.refusal import coded
from odoo.addons.spp_entitlement_transactions.models.g2p_cycle import APPROVED_STATES
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL, float_round

_logger = logging.getLogger(__name__)


class G2PCycle(models.Model):
    _inherit = "g2p.cycle"

    # ------------------------------------------------------------------
    # In-kind entitlements
    # ------------------------------------------------------------------
    inkind_entitlement_ids = fields.One2many(
        "g2p.entitlement.inkind", "cycle_id", string="In-kind entitlements"
    )
    inkind_entitlement_count = fields.Integer(
        compute="_compute_inkind_entitlement_count", string="In-kind entitlement count"
    )
    # Dashboard: in-kind entitlements per group of states (DASHBOARD_STATE_GROUPS)
    inkind_draft_count = fields.Integer(
        compute="_compute_inkind_entitlement_count", string="In-kind entitlements in draft"
    )
    inkind_pending_count = fields.Integer(
        compute="_compute_inkind_entitlement_count", string="In-kind entitlements to validate"
    )
    inkind_approved_count = fields.Integer(
        compute="_compute_inkind_entitlement_count", string="In-kind entitlements approved"
    )
    inkind_redeemed_count = fields.Integer(
        compute="_compute_inkind_entitlement_count", string="In-kind entitlements redeemed"
    )
    inkind_closed_count = fields.Integer(
        compute="_compute_inkind_entitlement_count",
        string="In-kind entitlements rejected, cancelled or expired",
    )
    # Redemption progress (the dashboard of spp_entitlement_transactions), in-kind side
    redemption_inkind_html = fields.Html(
        compute="_compute_redemption_progress",
        string="In-kind redemption",
        help="Per product, in the entitlements' unit: quantity approved, redeemed, and the share redeemed.",
    )

    # ------------------------------------------------------------------
    # Stock
    # ------------------------------------------------------------------
    inkind_procurement_group_id = fields.Many2one(
        "procurement.group",
        string="Procurement group",
        readonly=True,
        copy=False,
        help="Groups the cycle's transfers (deliveries to beneficiaries and returns).",
    )
    inkind_allocation_ids = fields.One2many(
        "g2p.inkind.allocation", "cycle_id", string="In-kind allocations", readonly=True
    )
    inkind_allocation_count = fields.Integer(compute="_compute_inkind_allocation_count", string="Allocations")
    inkind_picking_count = fields.Integer(compute="_compute_inkind_picking_count", string="Transfers")
    inkind_coverage_html = fields.Html(
        compute="_compute_inkind_coverage_html",
        string="Stock coverage",
        help="Per warehouse and product, in the product's unit: what entitlements awaiting approval "
        "need, what is reserved, what was delivered, and the free stock now.",
    )

    def _compute_inkind_entitlement_count(self):
        counts = self._entitlement_state_counts("g2p.entitlement.inkind")
        for cycle in self:
            by_group = counts.get(cycle.id, {})
            cycle.inkind_entitlement_count = sum(by_group.values())
            for key in DASHBOARD_STATE_GROUPS:
                cycle["inkind_%s_count" % key] = by_group.get(key, 0)

    def _compute_inkind_allocation_count(self):
        # allocations are stock records: counted as superuser, like the transfers
        counts = dict(
            self.env["g2p.inkind.allocation"]
            .sudo()
            ._read_group([("cycle_id", "in", self.ids)], ["cycle_id"], ["__count"])
        )
        for cycle in self:
            cycle.inkind_allocation_count = counts.get(cycle.sudo(), 0)

    def _compute_inkind_picking_count(self):
        # the roles of the suite have no stock rights: count as superuser
        groups = self.sudo().inkind_procurement_group_id
        counts = dict(
            self.env["stock.picking"]
            .sudo()
            ._read_group([("group_id", "in", groups.ids)], ["group_id"], ["__count"])
        )
        for cycle in self:
            cycle.inkind_picking_count = counts.get(cycle.sudo().inkind_procurement_group_id, 0)

    def _compute_inkind_coverage_html(self):
        for cycle in self:
            rows = cycle._inkind_coverage() if cycle.id else []
            cycle.inkind_coverage_html = self._inkind_coverage_table(rows) if rows else False

    # ------------------------------------------------------------------
    # Hooks of g2p_programs_ext
    # ------------------------------------------------------------------
    @api.model
    def _entitlement_models(self):
        return super()._entitlement_models() + ["g2p.entitlement.inkind"]

    @api.model
    def _entitlement_manager_models(self):
        return super()._entitlement_manager_models() + ["g2p.program.entitlement.manager.inkind"]

    # ------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------
    def action_open_inkind_entitlements(self):
        """The cycle's in-kind entitlements; with the context key ``dashboard_state`` (a
        key of DASHBOARD_STATE_GROUPS), only those in that group of states.
        :return: an ``ir.actions.act_window`` dict."""
        return self._entitlement_action("spp_entitlement_in_kind.g2p_entitlement_inkind_action")

    def action_open_inkind_transfers(self):
        """The cycle's transfers (pickings of its procurement group), for stock users.
        :return: an ``ir.actions.act_window`` dict on ``stock.picking``."""
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("stock.action_picking_tree_all")
        action["domain"] = [("group_id", "=", self.sudo().inkind_procurement_group_id.id or 0)]
        action["context"] = {"create": False}
        return action

    def action_open_inkind_allocations(self):
        """The cycle's allocations (cycle × warehouse × service point × product, with their
        quantities), read-only, for stock users and program managers.
        :return: an ``ir.actions.act_window`` dict on ``g2p.inkind.allocation``."""
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "spp_entitlement_in_kind.g2p_inkind_allocation_action"
        )
        action["domain"] = [("cycle_id", "=", self.id)]
        return action

    def action_post_deliveries(self):
        """Post to stock what was redeemed on the cycles' in-kind entitlements since the
        last posting: per cycle, warehouse, service point and product, the handed-out
        quantity (in the product's UoM) becomes done on the reserved delivery move, so
        that on-hand drops by what was handed out; redemptions reversed after they were
        posted come back into stock and are reserved again. Safe to call at any time
        and again (a second call with nothing new redeemed changes nothing).

        :return: True
        :raise AccessError: the user is not a cycle approver.
        """
        if not self.env.su and not self.env.user.has_group("g2p_programs_ext.group_cycle_approver"):
            raise AccessError(coded("not_allowed", _("Only cycle approvers post deliveries.")))
        self.check_access_rule("read")
        for cycle in self:
            cycle._inkind_post_deliveries()
        return True

    def _inkind_post_deliveries(self):
        self.ensure_one()
        result = self.env["g2p.inkind.stock"].sudo()._post([self.id])
        if result["delivered"] or result["returned"]:
            # a log note: a cycle approver without an email address can post deliveries
            self._message_log(
                body=_(
                    "Deliveries posted: %(delivered)s delivery line(s) done, %(returned)s return line(s).",
                    delivered=result["delivered"],
                    returned=result["returned"],
                )
            )
        return result

    @api.model
    def _cron_post_deliveries(self):
        """Scheduled action (hourly): post the deliveries of every approved or distributed
        cycle that reserved stock (closing posts the others one last time). A cycle that
        fails is logged and left for the next run."""
        groups = (
            self.env["g2p.inkind.allocation"]
            .sudo()
            ._read_group([("cycle_id.state", "in", ("approved", "distributed"))], ["cycle_id"])
        )
        cycle_ids = sorted(cycle.id for (cycle,) in groups)
        for cycle in self.sudo().browse(cycle_ids):
            try:
                with self.env.cr.savepoint():
                    cycle._inkind_post_deliveries()
            except UserError as exc:
                _logger.warning("Posting the deliveries of cycle %s failed: %s", cycle.id, exc)
        return True

    # ------------------------------------------------------------------
    # Stock helpers
    # ------------------------------------------------------------------
    def _inkind_procurement_group(self):
        """The cycle's procurement group (created on first use). :return: procurement.group"""
        self.ensure_one()
        cycle = self.sudo()
        if not cycle.inkind_procurement_group_id:
            cycle.inkind_procurement_group_id = (
                self.env["procurement.group"].sudo().create({"name": cycle.name, "move_type": "direct"})
            )
        return cycle.inkind_procurement_group_id

    def _inkind_coverage(self):
        """Rows of the coverage table: per (warehouse, product), quantities in the
        product's UoM: what the stock-managed entitlements still awaiting approval need
        (draft, pending), what the cycle's allocations hold reserved and delivered, the
        free stock now and the shortage. Services are never counted.
        :return: list of dicts (warehouse, product, needed, reserved, delivered, free, short)."""
        self.ensure_one()
        Allocation = self.env["g2p.inkind.allocation"].sudo()
        figures = defaultdict(lambda: {"needed": 0.0, "reserved": 0.0, "delivered": 0.0})
        for allocation in Allocation.search([("cycle_id", "=", self.id)]):
            # the quantities of all the cycle's allocations come from one grouped query
            row = figures[(allocation.warehouse_id.id, allocation.product_id.id)]
            row["reserved"] += allocation.quantity_reserved
            row["delivered"] += allocation.quantity_delivered
        for (warehouse_id, product_id), needed in self._inkind_unapproved_needs().items():
            figures[(warehouse_id, product_id)]["needed"] += needed
        Warehouse = self.env["stock.warehouse"].sudo()
        Product = self.env["product.product"].sudo()
        rows = []
        for (warehouse_id, product_id), fig in sorted(figures.items()):
            warehouse = Warehouse.browse(warehouse_id)
            product = Product.browse(product_id)
            needed = float_round(fig["needed"], precision_rounding=Allocation._rounding(product))
            free = product.with_context(location=warehouse.lot_stock_id.id).free_qty
            rows.append(
                {
                    "warehouse": warehouse,
                    "product": product,
                    "needed": needed,
                    "reserved": fig["reserved"],
                    "delivered": fig["delivered"],
                    "free": free,
                    "short": max(0.0, needed - free),
                }
            )
        return rows

    def _inkind_unapproved_needs(self):
        """{(warehouse id, product id): quantity in the product's UoM} that the cycle's
        stock-managed entitlements in draft or pending validation need, each from the
        warehouse that would serve it now (its service point's, else its manager's)."""
        self.ensure_one()
        self.env["g2p.entitlement.inkind"].flush_model()
        self.env["spp.service.point"].flush_model(["warehouse_id"])
        # Raw SQL: one aggregate over the cycle's entitlements (100,000) through their
        # manager and service point, which _read_group cannot group by; reads only.
        self.env.cr.execute(
            SQL(
                """SELECT COALESCE(sp.warehouse_id, mg.warehouse_id), e.product_id,
                          SUM(e.quantity / eu.factor * pu.factor)
                     FROM g2p_entitlement_inkind e
                     JOIN g2p_program_entitlement_manager_inkind_item it ON it.id = e.inkind_item_id
                     JOIN g2p_program_entitlement_manager_inkind mg ON mg.id = it.manager_id
                     JOIN uom_uom eu ON eu.id = e.uom_id
                     JOIN product_product pp ON pp.id = e.product_id
                     JOIN product_template pt ON pt.id = pp.product_tmpl_id
                     JOIN uom_uom pu ON pu.id = pt.uom_id
                     LEFT JOIN spp_service_point sp ON sp.id = e.service_point_id
                    WHERE e.cycle_id = %s AND mg.manage_inventory AND pt.type = 'product'
                      AND e.state IN ('draft', 'pending_validation')
                      AND COALESCE(sp.warehouse_id, mg.warehouse_id) IS NOT NULL
                    GROUP BY 1, 2""",
                self.id,
            )
        )
        return {(warehouse_id, product_id): qty for warehouse_id, product_id, qty in self.env.cr.fetchall()}

    @api.model
    def _inkind_coverage_table(self, rows):
        headers = [
            _("Warehouse"),
            _("Product"),
            _("Unit"),
            _("Needed (awaiting approval)"),
            _("Reserved"),
            _("Delivered"),
            _("Free now"),
            _("Short"),
        ]
        head = Markup("").join(Markup("<th>%s</th>") % h for h in headers)
        body = Markup("")
        for row in rows:
            cells = [row["warehouse"].name, row["product"].display_name, row["product"].uom_id.name]
            cells += ["%g" % round(row[k], 6) for k in ("needed", "reserved", "delivered", "free", "short")]
            css = ' class="text-danger"' if row["short"] > 0 else ""
            body += Markup("<tr%s>%s</tr>") % (
                Markup(css),
                Markup("").join(Markup("<td>%s</td>") % escape(c) for c in cells),
            )
        return Markup('<table class="table table-sm"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>') % (
            head,
            body,
        )

    # ------------------------------------------------------------------
    # Closing (hook of g2p_programs_ext, called by spp_auto_update_entitlements)
    # ------------------------------------------------------------------
    def _before_end(self):
        """Before the cycles end (closing, after their entitlements were settled): post
        what was handed out since the last posting, then give back to stock what the
        settled entitlements will never take. Both are idempotent. The one place that
        calls the stock engine for a closing."""
        result = super()._before_end()
        for cycle in self:
            cycle._inkind_post_deliveries()
        self.env["g2p.inkind.stock"].sudo()._sync(self.ids)
        return result

    def _closing_summary_lines(self):
        """Per product: what was handed out and what was given back to stock."""
        lines = super()._closing_summary_lines()
        rows = (
            self.env["g2p.entitlement.inkind"]
            .sudo()
            ._read_group(
                [("cycle_id", "=", self.id), ("date_approved", "!=", False)],
                ["product_id", "uom_id"],
                ["quantity:sum", "quantity_redeemed:sum"],
            )
        )
        for product, uom, quantity, redeemed in rows:
            lines.append(
                _(
                    "%(product)s: %(out)s %(uom)s handed out, %(back)s %(uom)s given back to stock",
                    product=product.display_name,
                    out=round(redeemed, 3),
                    back=round(quantity - redeemed, 3),
                    uom=uom.name,
                )
            )
        return lines

    # ------------------------------------------------------------------
    # Redemption progress (dashboard of spp_entitlement_transactions), in-kind side
    # ------------------------------------------------------------------
    def _compute_redemption_progress(self):
        """Cash (super) then one grouped query for the in-kind entitlements of every cycle
        of ``self``, as the user may see them."""
        result = super()._compute_redemption_progress()
        inkind = {}
        for cycle, product, uom, approved, redeemed in self.env["g2p.entitlement.inkind"]._read_group(
            [("cycle_id", "in", self.ids), ("state", "in", APPROVED_STATES)],
            ["cycle_id", "product_id", "uom_id"],
            ["quantity:sum", "quantity_redeemed:sum"],
        ):
            inkind.setdefault(cycle.id, []).append((product, uom, approved, redeemed))
        for cycle in self:
            rows = inkind.get(cycle.id)
            cycle.redemption_inkind_html = self._redemption_table(rows) if rows else False
        return result

    @api.model
    def _redemption_table(self, rows):
        """An HTML table of (product, uom, approved, redeemed) rows."""
        headers = [_("Product"), _("Unit"), _("Approved"), _("Redeemed"), _("Left"), _("Redeemed (%)")]
        head = Markup("").join(Markup("<th>%s</th>") % h for h in headers)
        body = Markup("")
        for product, uom, approved, redeemed in sorted(rows, key=lambda r: r[0].display_name or ""):
            rate = 100.0 * redeemed / approved if approved else 0.0
            cells = [
                product.display_name,
                uom.name,
                "%g" % round(approved, 6),
                "%g" % round(redeemed, 6),
                "%g" % round(approved - redeemed, 6),
                "%.1f %%" % rate,
            ]
            body += Markup("<tr>%s</tr>") % Markup("").join(Markup("<td>%s</td>") % escape(c) for c in cells)
        return Markup('<table class="table table-sm"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>') % (
            head,
            body,
        )
