"""In-kind entitlements. Their stock is held by their allocation (``g2p.inkind.allocation``)."""

from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext.refusal import coded
from odoo.exceptions import ValidationError


class G2PEntitlementInkind(models.Model):
    _name = "g2p.entitlement.inkind"
    _inherit = ["g2p.entitlement.base"]
    _description = "In-kind entitlement"

    # ------------------------------------------------------------------
    # What
    # ------------------------------------------------------------------
    inkind_item_id = fields.Many2one(
        "g2p.program.entitlement.manager.inkind.item",
        string="Item",
        required=True,
        ondelete="restrict",
        readonly=True,
    )
    product_id = fields.Many2one("product.product", required=True, ondelete="restrict", readonly=True)
    uom_id = fields.Many2one("uom.uom", string="UoM", required=True, ondelete="restrict", readonly=True)
    quantity = fields.Float(digits="Product Unit of Measure", readonly=True, help="In the entitlement's UoM.")
    unit_price = fields.Float(
        digits="Product Price",
        readonly=True,
        help="The product's cost at generation, per unit of the product's UoM, in the company's currency.",
    )
    currency_id = fields.Many2one(related="cycle_id.program_id.currency_id")
    # editable stored computes (readonly in the views): generation gives their values
    # outright, so that creating 100,000 entitlements computes nothing per record
    total_amount = fields.Float(
        digits="Product Price",
        compute="_compute_total_amount",
        store=True,
        readonly=False,
        precompute=True,
        help="Quantity (converted to the product's UoM) times the unit price, in the company's currency.",
    )

    # ------------------------------------------------------------------
    # Where
    # ------------------------------------------------------------------
    # service_point_id comes from spp_service_points (on every entitlement model);
    # in-kind: the manager sets it at generation, and it groups the reservations.
    service_point_id = fields.Many2one(readonly=True)
    warehouse_id = fields.Many2one(
        "stock.warehouse",
        ondelete="restrict",
        readonly=True,
        help="The warehouse that serves it: its service point's, else the manager's (set again on approval).",
    )

    # ------------------------------------------------------------------
    # Handed out
    # ------------------------------------------------------------------
    quantity_redeemed = fields.Float(
        digits="Product Unit of Measure",
        default=0.0,
        readonly=True,
        copy=False,
        help="In the entitlement's UoM.",
    )
    quantity_balance = fields.Float(
        digits="Product Unit of Measure",
        compute="_compute_quantity_balance",
        store=True,
        readonly=False,
        precompute=True,
        help="Quantity less what was redeemed, in the entitlement's UoM.",
    )

    # ------------------------------------------------------------------
    # Stock
    # ------------------------------------------------------------------
    allocation_id = fields.Many2one(
        "g2p.inkind.allocation",
        index="btree_not_null",
        ondelete="restrict",
        readonly=True,
        copy=False,
        help="The cycle × warehouse × service point × product whose stock serves it, set when it is "
        "approved with inventory management (never for a service).",
    )
    move_ids = fields.One2many(
        related="allocation_id.move_ids",
        string="Stock moves",
        help="The moves of its allocation (shared by the entitlements of the same cycle, warehouse, "
        "service point and product): the reserved delivery, the done deliveries and the returns.",
    )

    _sql_constraints = [
        (
            "cycle_partner_item_uniq",
            "unique(cycle_id, partner_id, inkind_item_id)",
            "One in-kind entitlement per beneficiary, item and cycle.",
        ),
        ("code_uniq", "unique(code)", "ERNs are unique."),
        ("quantity_positive", "CHECK (quantity > 0)", "An in-kind entitlement is for a positive quantity."),
        (
            "redeemed_within",
            "CHECK (quantity_redeemed >= 0 AND quantity_redeemed <= quantity)",
            "Redeemed quantity must stay between 0 and the entitlement.",
        ),
    ]

    @api.depends("quantity", "uom_id", "product_id", "unit_price")
    def _compute_total_amount(self):
        factors = {}
        for entitlement in self:
            pair = (entitlement.uom_id, entitlement.product_id.uom_id)
            if pair not in factors:
                factors[pair] = pair[0]._compute_quantity(1.0, pair[1], round=False) if all(pair) else 1.0
            entitlement.total_amount = entitlement.quantity * factors[pair] * entitlement.unit_price

    @api.constrains("quantity")
    def _check_quantity(self):
        for entitlement in self:
            if entitlement.quantity <= 0:
                raise ValidationError(
                    coded(
                        "bad_quantity",
                        _(
                            "Entitlement %(name)s: the quantity must be positive (%(qty)s given).",
                            name=entitlement.display_name,
                            qty=entitlement.quantity,
                        ),
                    )
                )

    @api.depends("quantity", "quantity_redeemed")
    def _compute_quantity_balance(self):
        for entitlement in self:
            entitlement.quantity_balance = entitlement.quantity - entitlement.quantity_redeemed

    def _compute_display_name(self):
        for entitlement in self:
            entitlement.display_name = entitlement.code or _(
                "%(qty)s %(uom)s %(product)s for %(name)s",
                qty=entitlement.quantity,
                uom=entitlement.uom_id.name,
                product=entitlement.product_id.name,
                name=entitlement.partner_id.name,
            )

    # ------------------------------------------------------------------
    # Lifecycle hooks (g2p.entitlement.base)
    # ------------------------------------------------------------------
    def _redeemed_quantity_field(self):
        return "quantity_redeemed"

    def _budget_value_field(self):
        """In-kind entitlements count in budgets at ``total_amount`` (quantity × the
        product's cost at generation), in the company's currency."""
        return "total_amount", "company"

    def _manager_model(self):
        return "g2p.program.entitlement.manager.inkind"

    def _approval_values(self):
        """Check the stock of the entitlements about to be approved (``[no_warehouse]``,
        ``[out_of_stock]``) and give each stock-managed one its allocation and warehouse,
        written by the approval's UPDATE."""
        values = super()._approval_values()
        values.update(self.env["g2p.inkind.stock"].sudo()._allocate(self.sudo()))
        return values

    def _after_approve(self):
        """Reserve the stock of the entitlements just approved (``[out_of_stock]`` when a
        move cannot be reserved: the whole approval is then rolled back)."""
        res = super()._after_approve()
        self.env["g2p.inkind.stock"].sudo()._reserve_allocated(self.sudo())
        return res

    def _check_before_approve(self):
        """Refuse the approval of ``self`` when stock cannot cover it (writing nothing)."""
        res = super()._check_before_approve()
        self.env["g2p.inkind.stock"].sudo()._check(self.sudo())
        return res

    @api.model
    def _check_cycle_before_approve(self, cycle):
        """Refuse the approval of ``cycle``'s pending in-kind entitlements when stock
        cannot cover them, summed in PostgreSQL (writing nothing).
        :raise UserError: ``[no_warehouse]``, ``[out_of_stock]``."""
        res = super()._check_cycle_before_approve(cycle)
        self.env["g2p.inkind.allocation"].sudo()._check_cycle_stock(cycle)
        return res

    def _release(self):
        """Give back the stock of approved entitlements about to be rejected, cancelled,
        expired or closed: what they will never take (quantity − quantity redeemed).
        What was redeemed but not yet posted stays reserved for the next posting.

        Called before their state changes; calling it again after is harmless."""
        res = super()._release()
        self.env["g2p.inkind.stock"].sudo()._release(self.sudo())
        return res
