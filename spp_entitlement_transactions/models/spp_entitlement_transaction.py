"""The ledger of redemptions and reversals: one row per event, never changed.

Where the rest lives: the public API that writes the ledger (``lookup``, ``redeem``,
``reverse``, ``redeem_batch``, ``entitlements_for_service_point``) in
``spp_entitlement_transaction_api.py``, with who may call it (one section there); the checks of what a device sends in
``../redemption_input.py`` (plain Python); what an entitlement owns of its redemption
(its figures, the locked read, the redeeming update) in ``g2p_entitlement_base.py``.

- **One row per event, never changed.** A redemption or a reversal is an
  ``spp.entitlement.transaction``; ``write`` and ``unlink`` are refused. A mistake is
  undone by a reversal, itself a new row.
- **Idempotency by (service point, reference).** A unique constraint holds the pair;
  the request's payload (code and quantity) is hashed into ``payload_hash``. The same
  request again returns the answer of the first (rebuilt from the stored row:
  ``balance_after``, ``state_after``), a different payload is refused
  ``[reference_reused]``.
"""

import hashlib

from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext.models.g2p_entitlement_base import ENTITLEMENT_STATES
from odoo.exceptions import UserError
from odoo.tools import SQL

REFERENCE_CONSTRAINT = "spp_entitlement_transaction_reference_uniq"
TRANSACTION_TYPES = [("redemption", "Redemption"), ("reversal", "Reversal")]
# entitlement states in which a redemption can be made (the API, the handout screen, distribution lists)
REDEEMABLE_STATES = ("approved", "transferred")


def refusal(exception_class, code, message):
    """The exception a caller gets: its message starts with the stable ``[code]``."""
    return exception_class("[%s] %s" % (code, message))


class SppEntitlementTransaction(models.Model):
    _name = "spp.entitlement.transaction"
    _description = "Entitlement transaction"
    _order = "date desc, id desc"
    _check_company_auto = True

    # ------------------------------------------------------------------
    # Entitlement (exactly one: spp_entitlement_in_kind adds inkind_entitlement_id)
    # ------------------------------------------------------------------
    entitlement_id = fields.Many2one(
        "g2p.entitlement", string="Cash entitlement", index=True, ondelete="restrict", readonly=True
    )
    code = fields.Char(string="ERN", index=True, readonly=True, help="The entitlement's reference number.")
    partner_id = fields.Many2one(
        "res.partner", string="Beneficiary", index=True, ondelete="restrict", readonly=True
    )
    program_id = fields.Many2one("g2p.program", index=True, ondelete="restrict", readonly=True)
    cycle_id = fields.Many2one("g2p.cycle", index=True, ondelete="restrict", readonly=True)
    company_id = fields.Many2one("res.company", required=True, index=True, readonly=True)
    product_id = fields.Many2one("product.product", index=True, ondelete="restrict", readonly=True)
    uom_id = fields.Many2one("uom.uom", string="Unit", ondelete="restrict", readonly=True)
    currency_id = fields.Many2one("res.currency", readonly=True)

    # ------------------------------------------------------------------
    # What happened
    # ------------------------------------------------------------------
    # No index on transaction_type (two values), reversed_transaction_id and
    # service_point_id (the one_reversal and reference_uniq constraints index them):
    # every redemption inserts one row, and every index one entry more.
    transaction_type = fields.Selection(TRANSACTION_TYPES, string="Type", required=True, readonly=True)
    amount = fields.Monetary(
        currency_field="currency_id", readonly=True, help="Cash: the amount, in the program's currency."
    )
    quantity = fields.Float(
        digits="Product Unit of Measure",
        readonly=True,
        help="In-kind: the quantity, in the entitlement's unit.",
    )
    net_amount = fields.Monetary(
        currency_field="currency_id", readonly=True, help="The amount, negative for a reversal."
    )
    net_quantity = fields.Float(
        digits="Product Unit of Measure", readonly=True, help="The quantity, negative for a reversal."
    )
    balance_after = fields.Float(
        readonly=True, help="The entitlement's balance right after this transaction, in its unit."
    )
    state_after = fields.Selection(
        ENTITLEMENT_STATES, readonly=True, help="The entitlement's state right after this transaction."
    )
    reversed_transaction_id = fields.Many2one(
        "spp.entitlement.transaction",
        string="Reverses",
        ondelete="restrict",
        readonly=True,
        help="The redemption this reversal undoes.",
    )
    reversal_ids = fields.One2many("spp.entitlement.transaction", "reversed_transaction_id")
    is_reversed = fields.Boolean(
        compute="_compute_is_reversed",
        store=True,
        string="Reversed",
        help="A reversal undid this redemption.",
    )
    reason = fields.Char(readonly=True, help="Why a reversal was made.")

    # ------------------------------------------------------------------
    # Where, who, when
    # ------------------------------------------------------------------
    service_point_id = fields.Many2one("spp.service.point", required=True, ondelete="restrict", readonly=True)
    area_id = fields.Many2one(
        "spp.area",
        index=True,
        ondelete="restrict",
        readonly=True,
        help="The entitlement's area, else the service point's: for reports by area.",
    )
    user_id = fields.Many2one(
        "res.users", string="Agent", required=True, index=True, ondelete="restrict", readonly=True
    )
    reference = fields.Char(
        readonly=True,
        help="The client's key of a redemption, unique per service point: the same request "
        "sent again with it is answered, not counted twice. Empty on reversals.",
    )
    payload_hash = fields.Char(readonly=True, help="SHA-256 of the redemption's code and quantity.")
    device_time = fields.Datetime(readonly=True, help="When the device recorded it (offline batches), UTC.")
    date = fields.Datetime(required=True, index=True, readonly=True, default=fields.Datetime.now)

    _sql_constraints = [
        # spp_entitlement_in_kind replaces it (same name): cash or in-kind, exactly one
        ("one_entitlement", "CHECK (entitlement_id IS NOT NULL)", "A transaction is for an entitlement."),
        (
            "reference_uniq",
            "unique(service_point_id, reference)",
            "[reference_reused] This reference was already used at this service point.",
        ),
        ("one_reversal", "unique(reversed_transaction_id)", "A redemption is reversed at most once."),
        (
            "figure_positive",
            "CHECK (COALESCE(amount, 0) > 0 OR COALESCE(quantity, 0) > 0)",
            "A transaction is for a positive amount or quantity.",
        ),
        (
            "type_consistent",
            "CHECK ((transaction_type = 'redemption' AND reference IS NOT NULL AND reversed_transaction_id IS NULL)"
            " OR (transaction_type = 'reversal' AND reversed_transaction_id IS NOT NULL))",
            "A redemption has a reference; a reversal points at the redemption it undoes.",
        ),
    ]

    @api.depends("reversal_ids")
    def _compute_is_reversed(self):
        for transaction in self:
            transaction.is_reversed = bool(transaction.reversal_ids)

    @api.depends("transaction_type", "reference", "code", "reversed_transaction_id")
    def _compute_display_name(self):
        for transaction in self:
            if transaction.transaction_type == "reversal":
                transaction.display_name = _(
                    "Reversal of %(ref)s (%(code)s)",
                    ref=transaction.reversed_transaction_id.reference,
                    code=transaction.code,
                )
            else:
                transaction.display_name = "%s (%s)" % (transaction.reference or "", transaction.code or "")

    # ------------------------------------------------------------------
    # Never edited, never deleted: a mistake is undone by a reversal
    # ------------------------------------------------------------------
    def write(self, vals):
        if self:
            raise refusal(
                UserError,
                "immutable",
                _("Redemptions and reversals cannot be changed: undo a redemption with a reversal."),
            )
        return super().write(vals)

    def unlink(self):
        if self:
            raise refusal(
                UserError,
                "immutable",
                _("Redemptions and reversals cannot be deleted: undo a redemption with a reversal."),
            )
        return super().unlink()

    # ------------------------------------------------------------------
    # Writing the ledger: values, the redemption's insert
    # ------------------------------------------------------------------
    @api.model
    def _prepare_transaction_vals(self, entitlement, point, transaction_type, figure, balance, state):
        """Values of the transaction row for ``figure`` (in the entitlement's unit) on
        ``entitlement`` (any model, sudo) at ``point``, as for ``create``."""
        spec = entitlement._redemption
        sign = -1 if transaction_type == "reversal" else 1
        return {
            # First: Monetary figures are cached with this currency's rounding.
            "currency_id": entitlement._redemption_currency().id,
            spec.link: entitlement.id,
            "transaction_type": transaction_type,
            spec.figure: figure,
            "net_" + spec.figure: sign * figure,
            "balance_after": balance,
            "state_after": state,
            "is_reversed": False,  # given: no compute on the hot path; a reversal recomputes it
            "code": entitlement.code,
            "partner_id": entitlement.partner_id.id,
            "program_id": entitlement.program_id.id,
            "cycle_id": entitlement.cycle_id.id,
            "company_id": entitlement.company_id.id or point.company_id.id,
            "product_id": entitlement._redemption_product().id,
            "uom_id": entitlement._redemption_uom().id,
            "service_point_id": point.id,
            "area_id": entitlement.area_id.id or point.area_id.id,
            "user_id": self.env.uid,
        }

    @api.model
    def _insert_redemption(self, vals, update):
        """Insert one redemption row from ``vals`` (field name: value, as for ``create``),
        values converted to columns as the ORM converts them, with the ORM's log columns,
        and run ``update`` (SQL: the entitlement's UPDATE, ending with its WHERE clause)
        in the same statement, only if the row was inserted.

        SQL, not ``create``: the API's hot path in one round trip, ``ON CONFLICT DO
        NOTHING`` on the reference (no savepoint to survive a race). Nothing of the new
        row is in the cache (the caller answers from ``vals``); the caller checked access.

        :return: the new id, or None when a row with the same (service point, reference)
            exists or was just committed by a concurrent request (nothing inserted, nothing
            updated)."""
        # One round trip: a data-modifying WITH; the UPDATE sees the inserted id (if any)
        # through the CTE's RETURNING.
        self.env.cr.execute(
            SQL(
                "WITH t AS (%s RETURNING id), u AS (%s AND EXISTS (SELECT 1 FROM t)) SELECT id FROM t",
                self._insert_query([vals]),
                update,
            )
        )
        row = self.env.cr.fetchone()
        return row[0] if row else None

    @api.model
    def _insert_redemptions(self, vals_list, updates):
        """Insert the redemption rows of ``vals_list`` (each as for :meth:`_insert_redemption`,
        every ``reference`` different) and run ``updates`` (SQL UPDATEs ending with their
        WHERE clause: the entitlements' figures) in one statement, the updates only if
        every row was inserted.

        SQL, not ``create``: an offline batch's writes in one round trip (one multi-row
        INSERT instead of one statement per line). Nothing of the new rows is in the
        cache; the caller checked access, and rolls back to a savepoint when a row was
        not inserted (see the return value).

        :return: {reference: new id}; fewer entries than ``vals_list`` when a reference
            was taken meanwhile by a concurrent request: then no update ran, and the rows
            that were inserted must be rolled back by the caller."""
        count = len(vals_list)
        self.env.cr.execute(
            SQL(
                "WITH t AS (%s RETURNING id, reference), %s SELECT reference, id FROM t",
                self._insert_query(vals_list),
                SQL(", ").join(
                    SQL(
                        "%s AS (%s AND (SELECT count(*) FROM t) = %s)",
                        SQL.identifier(f"u{number}"),
                        update,
                        count,
                    )
                    for number, update in enumerate(updates)
                ),
            )
        )
        return dict(self.env.cr.fetchall())

    @api.model
    def _insert_query(self, vals_list):
        """``INSERT ... VALUES ... ON CONFLICT (service point, reference) DO NOTHING`` of
        the rows of ``vals_list`` (field name: value, as for ``create``; a field missing
        from a row takes its column's default, as in a single insert), values converted
        to columns as the ORM converts them, with the ORM's log columns; not run."""
        now = fields.Datetime.now()
        rows = []
        for vals in vals_list:
            vals = {**vals, "date": vals.get("date") or now}
            row = {}
            for name, value in vals.items():
                field = self._fields[name]
                if field.type == "monetary":
                    # already rounded to the currency's rounding by the caller; the ORM's
                    # conversion would build a new record to find the currency again
                    row[name] = float(value)
                else:
                    row[name] = field.convert_to_column(value, self, vals)
            rows.append(row)
        names = list(dict.fromkeys(name for row in rows for name in row))
        # One SQL object for all the rows (not one per value: thousands for a batch); a
        # value missing from a row takes its column's default, as in a single insert.
        tuples, params = [], []
        for row in rows:
            cells = []
            for name in names:
                if name in row:
                    cells.append("%s")
                    params.append(row[name])
                else:
                    cells.append("DEFAULT")
            cells += ["%s", "%s", "now() at time zone 'UTC'", "now() at time zone 'UTC'"]
            params += [self.env.uid, self.env.uid]
            tuples.append("(%s)" % ", ".join(cells))
        return SQL(
            "INSERT INTO %s (%s) VALUES %s ON CONFLICT ON CONSTRAINT %s DO NOTHING",
            SQL.identifier(self._table),
            SQL(", ").join(
                SQL.identifier(name)
                for name in [*names, "create_uid", "write_uid", "create_date", "write_date"]
            ),
            SQL(", ".join(tuples), *params),
            SQL.identifier(REFERENCE_CONSTRAINT),
        )

    # ------------------------------------------------------------------
    # Answers and replays
    # ------------------------------------------------------------------
    def _answer(self):
        """The answer to the request that made this transaction (also to its replays)."""
        self.ensure_one()
        return self._answer_values(self.id, self.code, self.balance_after, self.state_after)

    @api.model
    def _answer_values(self, transaction_id, code, balance, state):
        return {
            "transaction_id": transaction_id,
            "code": code or False,
            "balance": balance,
            "state": state or False,
        }

    def _replay(self, payload):
        """This redemption's reference came again: same payload, same answer."""
        self.ensure_one()
        if self.payload_hash != payload:
            entitlement = self._entitlement()
            raise refusal(
                UserError,
                "reference_reused",
                _(
                    "Reference %(ref)s was already used at %(point)s on %(date)s for another redemption "
                    "(%(code)s, %(figure)s %(unit)s): a new redemption needs a new reference.",
                    ref=self.reference,
                    point=self.service_point_id.display_name,
                    date=self.date,
                    code=self.code,
                    figure=self[entitlement._redemption.figure],
                    unit=entitlement._redemption_unit_name(),
                ),
            )
        return self._answer()

    @api.model
    def _error_answer(self, reference, error):
        return {
            "reference": reference if isinstance(reference, str) else False,
            "error": error.args[0] if error.args else str(error),
        }

    @api.model
    def _payload_hash(self, code, quantity):
        return hashlib.sha256(("%s|%r" % (code, float(quantity))).encode()).hexdigest()

    # ------------------------------------------------------------------
    # Finding
    # ------------------------------------------------------------------
    def _entitlement(self):
        """The entitlement (any model, sudo) this transaction is for."""
        self.ensure_one()
        for model in self.env["g2p.entitlement.base"]._redemption_models():
            entitlement = self[self.env[model]._redemption.link]
            if entitlement:
                return entitlement.sudo()
        return self.env["g2p.entitlement"].sudo()

    @api.model
    def _find_by_reference(self, point, reference):
        """The redemption made with ``reference`` at ``point`` (sudo), or an empty recordset.
        SQL, not ``search``: one query on the unique index (service_point_id, reference),
        without the record rules' joins (the caller checked the point); nothing cached."""
        self.flush_model(["service_point_id", "reference", "transaction_type"])
        self.env.cr.execute(
            SQL(
                "SELECT id FROM %s WHERE service_point_id = %s AND reference = %s AND transaction_type = 'redemption'",
                SQL.identifier(self._table),
                point.id,
                reference,
            )
        )
        row = self.env.cr.fetchone()
        return self.sudo().browse(row[0] if row else ())

    @api.model
    def _find_by_references(self, point, references):
        """{reference: redemption (sudo)} of the redemptions made at ``point`` with any of
        ``references``, in one query (an offline batch's), as :meth:`_find_by_reference`
        finds one: SQL for the same reasons; nothing cached."""
        references = sorted(set(references))
        if not references:
            return {}
        self.flush_model(["service_point_id", "reference", "transaction_type"])
        self.env.cr.execute(
            SQL(
                "SELECT reference, id FROM %s WHERE service_point_id = %s AND reference = ANY(%s) "
                "AND transaction_type = 'redemption'",
                SQL.identifier(self._table),
                point.id,
                references,
            )
        )
        rows = self.env.cr.fetchall()
        # one recordset: reading one of them reads them all (prefetch)
        return dict(zip([row[0] for row in rows], self.sudo().browse([row[1] for row in rows]), strict=True))
