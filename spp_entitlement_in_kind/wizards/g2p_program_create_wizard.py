from odoo import api, fields, models


class G2PProgramCreateWizard(models.TransientModel):
    """The program wizard with in-kind goods: items, inventory switch and warehouse."""

    _inherit = "g2p.program.create.wizard"

    inkind_item_ids = fields.One2many(
        "g2p.program.create.wizard.inkind.item", "wizard_id", string="In-kind items"
    )
    manage_inventory = fields.Boolean(
        default=True,
        help="Check the stock and reserve it when entitlements are approved; post the handed-out "
        "quantities as deliveries.",
    )
    warehouse_id = fields.Many2one(
        "stock.warehouse",
        default=lambda self: self.env["g2p.program.entitlement.manager.inkind"]._default_warehouse(),
        domain="[('company_id', '=', company_id)]",
        help="Default source of the goods; a service point with its own warehouse is served from that one.",
    )

    def _has_items(self):
        return super()._has_items() or bool(self.inkind_item_ids)

    def _create_managers(self, program):
        """Also the in-kind manager, when there are in-kind items."""
        res = super()._create_managers(program)
        if self.inkind_item_ids:
            self.env["g2p.program.entitlement.manager.inkind"].create(
                {
                    "program_id": program.id,
                    "validation_group_id": self.validation_group_id.id,
                    "manage_inventory": self.manage_inventory,
                    "warehouse_id": self.warehouse_id.id,
                    "item_ids": [(0, 0, line._prepare_item_vals()) for line in self.inkind_item_ids],
                }
            )
        return res


class G2PProgramCreateWizardInkindItem(models.TransientModel):
    _name = "g2p.program.create.wizard.inkind.item"
    _inherit = ["g2p.program.create.wizard.item.mixin"]
    _description = "Program wizard: in-kind item"
    _order = "sequence, id"

    wizard_id = fields.Many2one("g2p.program.create.wizard", required=True, ondelete="cascade")
    product_id = fields.Many2one(
        "product.product", required=True, domain="[('detailed_type', 'in', ('product', 'service'))]"
    )
    quantity = fields.Float(
        required=True, default=1.0, digits="Product Unit of Measure", help="Per beneficiary, in the unit."
    )
    product_uom_category_id = fields.Many2one(related="product_id.uom_id.category_id")
    uom_id = fields.Many2one(
        "uom.uom",
        string="UoM",
        required=True,
        compute="_compute_uom_id",
        store=True,
        readonly=False,
        precompute=True,
        domain="[('category_id', '=', product_uom_category_id)]",
    )

    @api.depends("product_id")
    def _compute_uom_id(self):
        for line in self:
            if not line.uom_id or line.uom_id.category_id != line.product_id.uom_id.category_id:
                line.uom_id = line.product_id.uom_id

    def _prepare_item_vals(self):
        return dict(
            super()._prepare_item_vals(),
            product_id=self.product_id.id,
            quantity=self.quantity,
            uom_id=self.uom_id.id,
        )
