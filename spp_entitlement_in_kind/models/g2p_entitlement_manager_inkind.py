import logging

from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext.refusal import coded
from odoo.exceptions import ValidationError
from odoo.tools import SQL, float_round

_logger = logging.getLogger(__name__)


class G2PEntitlementManagerInkind(models.Model):
    """Makes in-kind entitlements: one per cycle, beneficiary and item."""

    _name = "g2p.program.entitlement.manager.inkind"
    _inherit = ["g2p.program.entitlement.manager.base"]
    _description = "In-kind entitlement manager"

    item_ids = fields.One2many(
        "g2p.program.entitlement.manager.inkind.item", "manager_id", string="Items", copy=True
    )
    manage_inventory = fields.Boolean(
        default=True,
        help="Check the stock and reserve it when entitlements are approved; post the handed-out "
        "quantities as deliveries. Off: entitlements are approved without touching stock.",
    )
    warehouse_id = fields.Many2one(
        "stock.warehouse",
        ondelete="restrict",
        default=lambda self: self._default_warehouse(),
        domain="[('company_id', '=', company_id)]",
        help="Default source of the goods; a beneficiary's service point with its own warehouse "
        "is served from that one instead.",
    )

    @api.model
    def _default_warehouse(self):
        return self.env["stock.warehouse"].search([("company_id", "=", self.env.company.id)], limit=1)

    @api.constrains("warehouse_id", "program_id")
    def _check_warehouse_company(self):
        for manager in self.filtered("warehouse_id"):
            if manager.warehouse_id.company_id != manager.program_id.company_id:
                raise ValidationError(
                    coded(
                        "wrong_company",
                        _(
                            "Warehouse %(warehouse)s belongs to %(wh_company)s, program %(program)s "
                            "to %(company)s: choose a warehouse of the program's company.",
                            warehouse=manager.warehouse_id.display_name,
                            wh_company=manager.warehouse_id.company_id.name,
                            program=manager.program_id.name,
                            company=manager.program_id.company_id.name,
                        ),
                    )
                )

    def _entitlement_model(self):
        return "g2p.entitlement.inkind"

    def _create_entitlements(self, model, vals_list):
        """In-kind values are complete (related and computed fields given, see
        :meth:`_prepare_entitlements`): one INSERT per batch, ``ON CONFLICT DO NOTHING`` on
        (cycle, beneficiary, item), so that a second or concurrent generation adds
        nothing. :return: int, how many were inserted."""
        return model._bulk_insert(vals_list, conflict=("cycle_id", "partner_id", "inkind_item_id"))

    def _existing_keys(self, cycle, partner_ids):
        """{(partner id, item id)} already generated in ``cycle`` for ``partner_ids``."""
        self.env["g2p.entitlement.inkind"].flush_model(["cycle_id", "partner_id", "inkind_item_id"])
        self.env.cr.execute(
            "SELECT partner_id, inkind_item_id FROM g2p_entitlement_inkind "
            "WHERE cycle_id = %s AND partner_id = ANY(%s)",
            [cycle.id, list(partner_ids)],
        )
        return set(self.env.cr.fetchall())

    def _generate_in_sql(self, cycle, partner_ids, state_vals):
        """In-kind entitlements of ``partner_ids`` (res.partner ids, enrolled members of
        ``cycle``) that have none yet for an item, one ``INSERT ... SELECT`` per item:
        the item's figure (domain, CEL condition and formula, multiplier) rounded to the
        item UoM inside it, with the same values as :meth:`_prepare_entitlements`.
        Returns (created, skipped), or None when an item runs per beneficiary."""
        self.ensure_one()
        ids_sql = SQL("(SELECT id FROM ids)")
        parts = self._items_sql(ids_sql)
        if parts is None:
            return None
        Model = self.env["g2p.entitlement.inkind"].sudo()
        self._flush_for_sql(Model)
        self.env.cr.execute("SET LOCAL jit = off")  # compiling costs more than it saves here
        self.env.cr.execute("SET LOCAL work_mem = '64MB'")  # the members' grouped aggregates, in memory
        created = skipped = 0
        for item, (lateral, figure, item_skipped, joins) in zip(self.item_ids, parts, strict=True):
            unit_price = item.product_id.with_company(cycle.company_id).standard_price
            factor = item.uom_id._compute_quantity(1.0, item.product_id.uom_id, round=False)
            quantity = SQL("r.quantity")
            values = {
                **cycle._entitlement_common_vals(),
                "quantity_redeemed": 0.0,
                **state_vals,
                "partner_id": SQL("p.id"),
                "inkind_item_id": item.id,
                "product_id": item.product_id.id,
                "uom_id": item.uom_id.id,
                "quantity": quantity,
                "quantity_balance": quantity,
                "unit_price": unit_price,
                # the same IEEE products, in the same order, as _prepare_entitlements
                "total_amount": SQL("r.quantity * %s::float8 * %s::float8", factor, unit_price),
                "service_point_id": SQL("p.service_point_id"),
                "warehouse_id": SQL(
                    "coalesce((SELECT sp.warehouse_id FROM spp_service_point sp WHERE sp.id = p.service_point_id), "
                    "CAST(%s AS int4))",
                    self.warehouse_id.id or None,
                ),
            }
            source = SQL(
                "figures a JOIN res_partner p ON p.id = a.pid "
                "CROSS JOIN LATERAL (SELECT g2p_float_round(a.figure, %s) AS quantity OFFSET 0) r "
                "WHERE a.figure IS NOT NULL AND r.quantity > 0",
                item.uom_id.rounding,
            )
            # Raw SQL: an item's entitlements of a cycle in one statement (the ORM would
            # create them one by one, computing per record what is given here). Flushed
            # before (above); the model's cache invalidated after; the caller checked the
            # officer's rights.
            self.env.cr.execute(
                SQL(
                    # The beneficiaries that already have one, read once before any row is
                    # inserted (a hashed NOT IN), not probed per row: with the table's
                    # statistics saying "empty" (analyzed before the first generation) the
                    # planner probed by a sequential scan, which also reads the rows this
                    # statement inserts (invisible to it, not skipped): quadratic. Filtered by
                    # the ids array (an index condition, or a hashed test in a sequential
                    # scan), not joined with them: a join misestimated as one row became a
                    # nested loop over the ids.
                    """WITH ids AS MATERIALIZED (SELECT unnest(%(ids)s::int[]) AS id),
                       existing AS MATERIALIZED (
                           SELECT e.partner_id FROM g2p_entitlement_inkind e
                           WHERE e.cycle_id = %(cycle)s AND e.inkind_item_id = %(item)s
                             AND e.partner_id = ANY(%(ids)s::int[])),
                       figures AS MATERIALIZED (
                           SELECT p.id AS pid, %(figure)s AS figure, %(skipped)s AS skipped
                           FROM res_partner p %(joins)s %(lateral)s
                           WHERE p.id IN (SELECT id FROM ids)
                             AND p.id NOT IN (SELECT partner_id FROM existing)),
                       ins AS (%(insert)s)
                       SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM figures WHERE skipped)""",
                    ids=list(partner_ids),
                    figure=figure,
                    skipped=item_skipped,
                    joins=joins,
                    lateral=lateral,
                    cycle=cycle.id,
                    item=item.id,
                    insert=Model._insert_select_sql(
                        values, source, ("cycle_id", "partner_id", "inkind_item_id")
                    ),
                )
            )
            item_created, item_skipped_count = self.env.cr.fetchone()
            created += item_created
            skipped += item_skipped_count
            if item_skipped_count:
                _logger.warning(
                    "%s: skipped %d beneficiaries (CEL error or no positive figure, in SQL)",
                    item._item_label(),
                    item_skipped_count,
                )
        Model.invalidate_model()
        return created, skipped

    def _prepare_entitlements(self, cycle, partner_ids):
        """One in-kind entitlement per beneficiary and item whose quantity is positive.

        quantity = the item's figure (formula, else ``quantity``) times the multiplier
        (capped), rounded to the item UoM's rounding, in the item's UoM. The service
        point is the beneficiary's; the warehouse the service point's, else the
        manager's; ``unit_price`` the product's cost (per product UoM, in the company's
        currency).

        :param cycle: g2p.cycle
        :param partner_ids: list of res.partner ids (enrolled cycle members)
        :return: (list of g2p.entitlement.inkind values, skipped count)
        """
        self.ensure_one()
        existing = self._existing_keys(cycle, partner_ids)
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT p.id, p.service_point_id, sp.warehouse_id FROM res_partner p "
            "LEFT JOIN spp_service_point sp ON sp.id = p.service_point_id WHERE p.id = ANY(%s)",
            [list(partner_ids)],
        )
        points = {pid: (sp_id, wh_id) for pid, sp_id, wh_id in self.env.cr.fetchall()}
        # values given outright, computed ones included: the ORM computes nothing per record
        common = dict(cycle._entitlement_common_vals(), quantity_redeemed=0.0)
        vals = []
        skipped = 0
        for item in self.item_ids:
            todo = [pid for pid in partner_ids if (pid, item.id) not in existing]
            if not todo:
                continue
            figures, item_skipped = item._figures(todo)
            skipped += item_skipped
            unit_price = item.product_id.with_company(cycle.company_id).standard_price
            factor = item.uom_id._compute_quantity(1.0, item.product_id.uom_id, round=False)
            rounding = item.uom_id.rounding
            for pid in todo:
                if pid not in figures:
                    continue
                quantity = float_round(figures[pid], precision_rounding=rounding)
                if quantity <= 0:
                    continue
                sp_id, sp_warehouse_id = points.get(pid, (None, None))
                vals.append(
                    {
                        **common,
                        "partner_id": pid,
                        "inkind_item_id": item.id,
                        "product_id": item.product_id.id,
                        "uom_id": item.uom_id.id,
                        "quantity": quantity,
                        "quantity_balance": quantity,
                        "unit_price": unit_price,
                        "total_amount": quantity * factor * unit_price,
                        "service_point_id": sp_id or False,
                        "warehouse_id": sp_warehouse_id or self.warehouse_id.id or False,
                    }
                )
        return vals, skipped


class G2PEntitlementManagerInkindItem(models.Model):
    """An item of the basket: a storable product (a good whose stock is checked and
    reserved when the manager manages inventory) or a service (never reserved), and a
    quantity per beneficiary."""

    _name = "g2p.program.entitlement.manager.inkind.item"
    _inherit = ["g2p.program.entitlement.item.mixin"]
    _description = "In-kind entitlement item"

    manager_id = fields.Many2one(
        "g2p.program.entitlement.manager.inkind", required=True, ondelete="cascade", index=True
    )
    product_id = fields.Many2one(
        "product.product",
        required=True,
        ondelete="restrict",
        domain="[('detailed_type', 'in', ('product', 'service'))]",
        help="A storable product (its stock is checked and reserved on approval when the manager "
        "manages inventory) or a service (a consultation, a training: never reserved).",
    )
    quantity = fields.Float(
        required=True,
        default=1.0,
        digits="Product Unit of Measure",
        help="Per beneficiary, in the item's UoM.",
    )
    product_uom_category_id = fields.Many2one(related="product_id.uom_id.category_id")
    uom_id = fields.Many2one(
        "uom.uom",
        string="UoM",
        required=True,
        ondelete="restrict",
        compute="_compute_uom_id",
        store=True,
        readonly=False,
        precompute=True,
        domain="[('category_id', '=', product_uom_category_id)]",
        help="Unit of the quantity; of the same category as the product's (e.g. g for a product in kg).",
    )

    @api.depends("product_id")
    def _compute_uom_id(self):
        for item in self:
            if not item.uom_id or item.uom_id.category_id != item.product_id.uom_id.category_id:
                item.uom_id = item.product_id.uom_id

    @api.constrains("product_id")
    def _check_product(self):
        """Goods are storable products, so that their stock can be checked and reserved;
        a consumable (a good whose stock Odoo does not track) is refused ``[not_storable]``."""
        for item in self:
            if item.product_id.detailed_type not in ("product", "service"):
                raise ValidationError(
                    coded(
                        "not_storable",
                        _(
                            "%(item)s: %(product)s is a consumable, whose stock is not tracked. Choose a storable "
                            "product (its stock is reserved) or a service.",
                            item=item._item_label(),
                            product=item.product_id.display_name,
                        ),
                    )
                )

    @api.constrains("product_id", "uom_id")
    def _check_uom(self):
        for item in self:
            if item.uom_id.category_id != item.product_id.uom_id.category_id:
                raise ValidationError(
                    coded(
                        "wrong_uom",
                        _(
                            "%(item)s: %(uom)s is not a unit of the category of %(product)s "
                            "(%(category)s). Choose a unit such as %(product_uom)s.",
                            item=item._item_label(),
                            uom=item.uom_id.name,
                            product=item.product_id.display_name,
                            category=item.product_id.uom_id.category_id.name,
                            product_uom=item.product_id.uom_id.name,
                        ),
                    )
                )

    @api.constrains("quantity")
    def _check_quantity(self):
        for item in self:
            if item.quantity <= 0:
                raise ValidationError(
                    coded(
                        "bad_quantity",
                        _(
                            "%(item)s: the quantity must be positive (%(qty)s given).",
                            item=item._item_label(),
                            qty=item.quantity,
                        ),
                    )
                )

    def _compute_display_name(self):
        for item in self:
            item.display_name = "%s %s %s" % (
                item.product_id.display_name or "",
                item.quantity,
                item.uom_id.name or "",
            )

    def _base_figure(self):
        return self.quantity

    def _base_variable(self):
        return "base_quantity"
