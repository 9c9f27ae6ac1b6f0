"""Redemptions and reversals of entitlements at service points, and the redemption API
that agents' devices and partner systems call over XML-RPC / JSON-RPC.

Design (see docs "Integration API" for the public side):

- **One row per event, never changed.** A redemption or a reversal is an
  ``spp.entitlement.transaction``; ``write`` and ``unlink`` are refused. A mistake is
  undone by a reversal, itself a new row.
- **Balances under a row lock.** The entitlement row is locked (``SELECT ... FOR
  UPDATE``) before its balance is read, and ``amount_redeemed`` / ``quantity_redeemed``
  are updated in the same database transaction as the insert of the transaction row.
  Two requests on one entitlement therefore serialize: the second waits for the first.
  An RPC call runs in READ COMMITTED (see ``_read_committed``): the waiting request then
  reads the row as the first one left it and goes on. Elsewhere (Odoo's default
  REPEATABLE READ) it fails to serialize and Odoo replays it from the start; either way
  everything the redemption decides on is read after the lock.
- **Idempotency by (service point, reference).** A unique constraint holds the pair;
  the request's payload (code and quantity) is hashed into ``payload_hash``. The same
  request again returns the answer of the first (rebuilt from the stored row:
  ``balance_after``, ``state_after``), a different payload is refused
  ``[reference_reused]``.
- **Checks before sudo.** Every method first checks who calls (agent of that service
  point, or back office for the read-only ones), then works as superuser.
"""

import hashlib
import logging
import math
import numbers
from datetime import datetime

from psycopg2.extensions import ISOLATION_LEVEL_READ_COMMITTED, TRANSACTION_STATUS_IDLE

from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext import ern
from odoo.addons.g2p_programs_ext.models.g2p_entitlement_base import (
    ENTITLEMENT_STATES,
    ENTITLEMENT_TRANSITIONS,
)
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL, float_compare, float_is_zero, float_round

_logger = logging.getLogger(__name__)

AGENT_GROUP = "spp_service_points.group_service_point_agent"
BACK_OFFICE_GROUPS = (
    "g2p_programs_ext.group_program_officer",
    "g2p_programs_ext.group_program_validator",
    "g2p_programs_ext.group_cycle_approver",
)
REFERENCE_MAX_LENGTH = 64
REASON_MAX_LENGTH = 500
BATCH_MAX_LINES = 5000
REDEEMABLE_STATES = ("approved", "transferred")
REVERSIBLE_STATES = ("approved", "transferred", "redeemed")
REFERENCE_CONSTRAINT = "spp_entitlement_transaction_reference_uniq"
TRANSACTION_TYPES = [("redemption", "Redemption"), ("reversal", "Reversal")]


def refusal(exception_class, code, message):
    """The exception a caller gets: its message starts with the stable ``[code]``."""
    return exception_class("[%s] %s" % (code, message))


class SppEntitlementTransaction(models.Model):
    _name = "spp.entitlement.transaction"
    _description = "Entitlement transaction"
    _order = "date desc, id desc"
    _check_company_auto = True

    # ------------------------------------------------------------------
    # Entitlement (exactly one of the two)
    # ------------------------------------------------------------------
    entitlement_id = fields.Many2one(
        "g2p.entitlement", string="Cash entitlement", index=True, ondelete="restrict", readonly=True
    )
    inkind_entitlement_id = fields.Many2one(
        "g2p.entitlement.inkind", string="In-kind entitlement", index=True, ondelete="restrict", readonly=True
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
        (
            "one_entitlement",
            "CHECK ((entitlement_id IS NULL) <> (inkind_entitlement_id IS NULL))",
            "A transaction is for exactly one entitlement, cash or in-kind.",
        ),
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
    # Public API (agents' devices and integrations)
    # ------------------------------------------------------------------
    @api.model
    def lookup(self, code):
        """What a beneficiary may collect with an entitlement, before handing it out.

        :param str code: the ERN, e.g. ``"7KQ2-MX4P-9"`` (dashes, spaces and case ignored).
        :return: dict ``{code, beneficiary, household, product, uom, balance, valid_until,
            state}``: ``beneficiary`` and ``household`` are names (``household`` is the
            household itself when the beneficiary is one, else the individual's current
            household, False when none); ``product`` and ``uom`` are names, False for cash;
            ``balance`` is a float in the entitlement's unit (in-kind: its UoM; cash: the
            program's currency); ``valid_until`` an ISO date string or False; ``state``
            the entitlement's state key.
        :raise ValidationError: ``[malformed_code]``, ``[bad_check_character]``.
        :raise UserError: ``[unknown_code]``; ``[wrong_service_point]`` when an agent asks
            for an entitlement of a service point that is not theirs.
        :raise AccessError: ``[not_allowed]`` when the user is neither an agent nor back office.
        """
        self._check_reader()
        code = self._check_code(code)
        entitlement = self._find_entitlement(code)
        self._check_visible(entitlement, code)
        return self._lookup_answers(entitlement)[0]

    @api.model
    def redeem(self, code, quantity, service_point_id, reference):
        """Hand out (part of) an entitlement at a service point.

        :param str code: the ERN (dashes, spaces and case ignored).
        :param quantity: int or float > 0, finite: cash in the program's currency,
            in-kind in the entitlement's UoM; rounded to the currency's or UoM's rounding.
        :param int service_point_id: an ``spp.service.point`` the calling agent serves.
        :param str reference: the client's key for this redemption (1 to 64 printable
            characters), unique per service point. The same call again with the same code
            and quantity returns the first answer and redeems nothing more; with another
            code or quantity it is refused.
        :return: dict ``{transaction_id, code, balance, state}``: the new
            ``spp.entitlement.transaction`` id, the ERN (display form), the balance left
            (float, same unit as ``quantity``) and the entitlement's state (``redeemed``
            once the balance is 0).
        :raise AccessError: ``[not_an_agent]``, ``[not_your_service_point]``.
        :raise ValidationError: ``[bad_service_point]``, ``[bad_reference]``,
            ``[bad_quantity]``, ``[malformed_code]``, ``[bad_check_character]``.
        :raise UserError: ``[reference_reused]``, ``[unknown_code]``,
            ``[wrong_service_point]``, ``[not_approved]``, ``[fully_redeemed]``,
            ``[not_yet_valid]``, ``[expired]``, ``[over_balance]``.
        """
        self._read_committed()
        point = self._check_service_point(service_point_id)
        return self._redeem(point, code, quantity, reference)

    @api.model
    def reverse(self, reference, service_point_id, reason):
        """Undo a redemption: its amount or quantity goes back to the balance, and a
        ``redeemed`` entitlement becomes ``approved`` again. Calling it again for the same
        redemption returns the first answer and changes nothing.

        :param str reference: the reference the redemption was made with.
        :param int service_point_id: the service point of that redemption (the caller's).
        :param str reason: why (1 to 500 characters), kept on the reversal.
        :return: dict ``{transaction_id, code, balance, state}``: the reversal's id, the
            ERN, the balance after it (float, in the entitlement's unit) and the state.
        :raise AccessError: ``[not_an_agent]``, ``[not_your_service_point]``.
        :raise ValidationError: ``[bad_service_point]``, ``[bad_reference]``, ``[bad_reason]``.
        :raise UserError: ``[unknown_reference]``, ``[not_reversible]`` (the entitlement
            was closed, cancelled or expired since).
        """
        self._read_committed()
        point = self._check_service_point(service_point_id)
        reference = self._check_reference(reference)
        reason = self._check_reason(reason)
        redemption = self._find_by_reference(point, reference)
        if not redemption:
            raise refusal(
                UserError,
                "unknown_reference",
                _(
                    "No redemption with reference %(ref)s at service point %(point)s: check the reference.",
                    ref=reference,
                    point=point.sudo().display_name,
                ),
            )
        entitlement = redemption._entitlement()
        self._lock(entitlement)
        done = self.sudo().search([("reversed_transaction_id", "=", redemption.id)], limit=1)
        if done:
            return done._answer()
        return self._record_reversal(redemption, entitlement, point, reason)

    @api.model
    def redeem_batch(self, service_point_id, lines):
        """Redemptions a device recorded offline, sent when it is back online. Each line
        is handled as :meth:`redeem` would, in its own savepoint: a bad line is answered
        with its error and does not stop the others. Idempotent by reference, so a
        device may send the same batch again (e.g. after a timeout).

        :param int service_point_id: the service point the device serves.
        :param list lines: dicts ``{code, quantity, reference, device_time}``;
            ``device_time`` (optional) is when the device recorded it, UTC,
            ``"YYYY-MM-DD HH:MM:SS"`` (ISO ``T`` and ``Z`` accepted). At most 5,000 lines.
        :return: list with one dict per line, in the same order: what :meth:`redeem`
            answers, or ``{reference, error}`` (``error`` the message, starting with its
            bracketed code; ``reference`` False when the line had none).
        :raise AccessError: ``[not_an_agent]``, ``[not_your_service_point]`` (whole batch).
        :raise ValidationError: ``[bad_service_point]``, ``[bad_lines]`` (whole batch).
        """
        self._read_committed()
        point = self._check_service_point(service_point_id)
        if not isinstance(lines, (list, tuple)) or len(lines) > BATCH_MAX_LINES:
            raise refusal(
                ValidationError,
                "bad_lines",
                _(
                    "Send the lines as a list of at most %s dicts {code, quantity, reference, device_time}.",
                    BATCH_MAX_LINES,
                ),
            )
        answers = []
        refused = 0
        for line in lines:
            reference = line.get("reference") if isinstance(line, dict) else False
            try:
                with self.env.cr.savepoint():
                    answers.append(self._redeem_line(point, line))
            except UserError as error:  # so are ValidationError and AccessError
                answers.append(self._error_answer(reference, error))
                refused += 1
        _logger.info(
            "Offline batch at service point %s by uid %s: %s lines, %s refused",
            point.id,
            self.env.uid,
            len(lines),
            refused,
        )
        return answers

    @api.model
    def entitlements_for_service_point(self, service_point_id):
        """What a device needs to serve a day offline: the entitlements collected at
        that service point that can be redeemed today (approved or transferred, valid
        today), ordered by code.

        :param int service_point_id: the service point (the agent's own; back-office
            users may ask for any).
        :return: list of dicts as :meth:`lookup` answers.
        :raise AccessError: ``[not_an_agent]``, ``[not_your_service_point]``.
        :raise ValidationError: ``[bad_service_point]``.
        """
        point = self._check_service_point(service_point_id, back_office=True)
        today = fields.Date.today()
        answers = []
        for model in self._entitlement_models():
            entitlements = (
                self.env[model]
                .sudo()
                .search(
                    [
                        ("service_point_id", "=", point.id),
                        ("state", "in", REDEEMABLE_STATES),
                        "|",
                        ("valid_from", "=", False),
                        ("valid_from", "<=", today),
                        "|",
                        ("valid_until", "=", False),
                        ("valid_until", ">=", today),
                    ],
                    order="code",
                )
            )
            answers += self._lookup_answers(entitlements)
        return answers

    # ------------------------------------------------------------------
    # Redemption
    # ------------------------------------------------------------------
    @api.model
    def _redeem(self, point, code, quantity, reference, device_time=False):
        """:meth:`redeem` once the service point is checked (``point``: spp.service.point)."""
        reference = self._check_reference(reference)
        quantity = self._check_quantity(quantity)
        code = self._check_code(code)
        payload = self._payload_hash(code, quantity)
        # Lock first: a concurrent request with the same reference and code has committed
        # by the time the lock is granted. The reference is looked up only when the
        # redemption cannot go ahead (one query less for the many new requests): a retry
        # of a request that went through either fails a check (nothing left, less than
        # asked) or meets the reference's unique constraint; it is then answered as the
        # first time.
        entitlement = self._find_entitlement(code, lock=True)
        try:
            if not entitlement:
                raise self._unknown_code(code)
            checked = self._check_redeemable(entitlement, point, quantity)
            answer = self._record_redemption(entitlement, point, checked, reference, payload, device_time)
        except UserError:  # so are ValidationError and AccessError
            done = self._find_by_reference(point, reference)
            if not done:
                raise
            return done._replay(payload)
        if answer is not None:
            return answer
        # The reference's unique constraint is the last word when two requests with the
        # same reference but different entitlements race (the same entitlement is
        # serialized by the row lock): the winner has committed by now.
        done = self._find_by_reference(point, reference)
        if done:
            return done._replay(payload)
        raise refusal(
            UserError,
            "reference_reused",
            _(
                "Reference %(ref)s is being used at the same time for another redemption: "
                "a new redemption needs a new reference.",
                ref=reference,
            ),
        )

    @api.model
    def _redeem_line(self, point, line):
        if not isinstance(line, dict):
            raise refusal(
                ValidationError,
                "bad_line",
                _(
                    "Each line is a dict {code, quantity, reference, device_time}, not %s.",
                    type(line).__name__,
                ),
            )
        device_time = self._check_device_time(line.get("device_time"))
        return self._redeem(point, line.get("code"), line.get("quantity"), line.get("reference"), device_time)

    @api.model
    def _check_redeemable(self, entitlement, point, quantity):
        """Raise unless ``entitlement`` (locked, sudo) may give ``quantity`` at ``point``
        today; return the quantity rounded to the entitlement's rounding."""
        code = entitlement.code
        if entitlement.service_point_id != point:
            raise refusal(
                UserError,
                "wrong_service_point",
                _(
                    "Entitlement %(code)s is not collected at %(point)s: the beneficiary collects it at "
                    "the service point it is assigned to.",
                    code=code,
                    point=point.sudo().display_name,
                ),
            )
        self._check_state(entitlement)
        self._check_validity(entitlement)
        rounding = entitlement._redemption_rounding()
        rounded = float_round(quantity, precision_rounding=rounding)
        if float_is_zero(rounded, precision_rounding=rounding):
            unit = entitlement._redemption_unit()
            raise refusal(
                ValidationError,
                "bad_quantity",
                _(
                    "%(qty)s %(unit)s is less than the smallest quantity of entitlement %(code)s (%(min)s %(unit)s).",
                    qty=quantity,
                    unit=unit,
                    code=code,
                    min=rounding,
                ),
            )
        balance = self._balance(entitlement)
        if float_compare(rounded, balance, precision_rounding=rounding) > 0:
            unit = entitlement._redemption_unit()
            raise refusal(
                UserError,
                "over_balance",
                _(
                    "Entitlement %(code)s: %(balance)s %(unit)s left, %(qty)s %(unit)s asked.",
                    code=code,
                    balance=balance,
                    qty=rounded,
                    unit=unit,
                ),
            )
        return rounded

    @api.model
    def _check_state(self, entitlement):
        if entitlement.state in REDEEMABLE_STATES:
            return
        code = entitlement.code
        if entitlement.state == "expired":
            raise refusal(
                UserError, "expired", _("Entitlement %s has expired: nothing can be redeemed any more.", code)
            )
        if entitlement.state == "redeemed":
            raise refusal(
                UserError, "fully_redeemed", _("Entitlement %s is fully redeemed: nothing is left.", code)
            )
        labels = dict(ENTITLEMENT_STATES)
        raise refusal(
            UserError,
            "not_approved",
            _(
                "Entitlement %(code)s is %(state)s: only approved entitlements can be redeemed.",
                code=code,
                state=labels.get(entitlement.state, entitlement.state),
            ),
        )

    @api.model
    def _check_validity(self, entitlement):
        today = fields.Date.today()
        if entitlement.valid_from and entitlement.valid_from > today:
            raise refusal(
                UserError,
                "not_yet_valid",
                _(
                    "Entitlement %(code)s can be redeemed from %(date)s, not before.",
                    code=entitlement.code,
                    date=entitlement.valid_from,
                ),
            )
        if entitlement.valid_until and entitlement.valid_until < today:
            raise refusal(
                UserError,
                "expired",
                _(
                    "Entitlement %(code)s expired on %(date)s: nothing can be redeemed any more.",
                    code=entitlement.code,
                    date=entitlement.valid_until,
                ),
            )

    @api.model
    def _record_redemption(self, entitlement, point, quantity, reference, payload, device_time):
        """Insert the redemption and update the (locked) entitlement; return the answer,
        or None when a redemption with ``reference`` exists at ``point`` (nothing written).

        The hot path of the API, in two statements: the transaction row is inserted with
        ``ON CONFLICT DO NOTHING`` on the reference's unique constraint (no savepoint
        needed to survive a race) and the entitlement's figures in one UPDATE."""
        rounding = entitlement._redemption_rounding()
        field = entitlement._redeemed_quantity_field()
        total = entitlement._redemption_total()
        redeemed = float_round(entitlement[field] + quantity, precision_rounding=rounding)
        full = float_compare(redeemed, total, precision_rounding=rounding) >= 0
        if full:
            redeemed = total
        # The state was checked under the row lock (_check_state: approved or transferred,
        # the sources of "redeem"): no query to check it again.
        state = ENTITLEMENT_TRANSITIONS["redeem"][1] if full else entitlement.state
        balance = 0.0 if full else float_round(total - redeemed, precision_rounding=rounding)
        vals = self._prepare_transaction_vals(entitlement, point, "redemption", quantity, balance, state)
        vals.update(reference=reference, payload_hash=payload, device_time=device_time)
        new_state = state if full else None
        transaction_id = self._insert_redemption(
            vals, entitlement._record_redeemed_query(redeemed, balance, new_state)
        )
        if not transaction_id:
            return None  # the reference is taken: the caller answers as the first time
        entitlement._invalidate_redeemed(new_state)
        return self._answer_values(transaction_id, vals["code"], balance, state)

    @api.model
    def _insert_redemption(self, vals, update):
        """Insert one redemption row from ``vals`` (field name: value, as for ``create``),
        values converted to columns as the ORM converts them, with the ORM's log columns,
        and run ``update`` (SQL: the entitlement's UPDATE, ending with its WHERE clause)
        in the same statement, only if the row was inserted.

        :return: the new id, or None when a row with the same (service point, reference)
            exists or was just committed by a concurrent request (nothing inserted, nothing
            updated)."""
        vals = {**vals, "date": vals.get("date") or fields.Datetime.now()}
        columns, values = [], []
        for name, value in vals.items():
            field = self._fields[name]
            if field.type == "monetary":
                # already rounded to the currency's rounding by the caller; the ORM's
                # conversion would build a new record to find the currency again
                value = float(value)
            else:
                value = field.convert_to_column(value, self, vals)
            columns.append(SQL.identifier(name))
            values.append(SQL("%s", value))
        for name in ("create_uid", "write_uid"):
            columns.append(SQL.identifier(name))
            values.append(SQL("%s", self.env.uid))
        for name in ("create_date", "write_date"):
            columns.append(SQL.identifier(name))
            values.append(SQL("now() at time zone 'UTC'"))
        # One round trip: a data-modifying WITH; the UPDATE sees the inserted id (if any)
        # through the CTE's RETURNING.
        self.env.cr.execute(
            SQL(
                "WITH t AS (INSERT INTO %s (%s) VALUES (%s) ON CONFLICT ON CONSTRAINT %s DO NOTHING RETURNING id), "
                "u AS (%s AND EXISTS (SELECT 1 FROM t)) SELECT id FROM t",
                SQL.identifier(self._table),
                SQL(", ").join(columns),
                SQL(", ").join(values),
                SQL.identifier(REFERENCE_CONSTRAINT),
                update,
            )
        )
        row = self.env.cr.fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------
    # Reversal
    # ------------------------------------------------------------------
    @api.model
    def _record_reversal(self, redemption, entitlement, point, reason):
        if entitlement.cycle_id.state in ("ended", "cancelled"):
            raise refusal(
                UserError,
                "not_reversible",
                _(
                    "Entitlement %(code)s belongs to cycle %(cycle)s, which is closed: its redemptions can "
                    "no longer be reversed.",
                    code=entitlement.code,
                    cycle=entitlement.cycle_id.name,
                ),
            )
        if entitlement.state not in REVERSIBLE_STATES:
            labels = dict(ENTITLEMENT_STATES)
            raise refusal(
                UserError,
                "not_reversible",
                _(
                    "Entitlement %(code)s is %(state)s: its redemptions can no longer be reversed.",
                    code=entitlement.code,
                    state=labels.get(entitlement.state, entitlement.state),
                ),
            )
        rounding = entitlement._redemption_rounding()
        field = entitlement._redeemed_quantity_field()
        figure = redemption[entitlement._redemption_figure_field()]
        redeemed = max(float_round(entitlement[field] - figure, precision_rounding=rounding), 0.0)
        state = (
            entitlement._check_transition("reverse") if entitlement.state == "redeemed" else entitlement.state
        )
        balance = float_round(entitlement._redemption_total() - redeemed, precision_rounding=rounding)
        vals = self._prepare_transaction_vals(entitlement, point, "reversal", figure, balance, state)
        vals.update(reversed_transaction_id=redemption.id, reason=reason)
        transaction = self.sudo().create(vals)
        entitlement._record_redeemed(redeemed, balance, state if state != entitlement.state else None)
        return transaction._answer()

    # ------------------------------------------------------------------
    # Transactions: values, answers, replays
    # ------------------------------------------------------------------
    @api.model
    def _prepare_transaction_vals(self, entitlement, point, transaction_type, figure, balance, state):
        figure_field = entitlement._redemption_figure_field()
        sign = -1 if transaction_type == "reversal" else 1
        return {
            # First: Monetary figures are cached with this currency's rounding.
            "currency_id": entitlement._redemption_currency().id,
            entitlement._redemption_link_field(): entitlement.id,
            "transaction_type": transaction_type,
            figure_field: figure,
            "net_" + figure_field: sign * figure,
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
            figure = self.amount if self.entitlement_id else self.quantity
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
                    figure=figure,
                    unit=self.currency_id.name if self.entitlement_id else self.uom_id.name,
                ),
            )
        return self._answer()

    def _entitlement(self):
        self.ensure_one()
        return (self.entitlement_id or self.inkind_entitlement_id).sudo()

    @api.model
    def _error_answer(self, reference, error):
        return {
            "reference": reference if isinstance(reference, str) else False,
            "error": error.args[0] if error.args else str(error),
        }

    @api.model
    def _payload_hash(self, code, quantity):
        return hashlib.sha256(("%s|%r" % (code, float(quantity))).encode()).hexdigest()

    @api.model
    def _find_by_reference(self, point, reference):
        """The redemption made with ``reference`` at ``point`` (sudo), or an empty recordset.
        SQL: the unique index (service_point_id, reference) answers it."""
        self.flush_model(["service_point_id", "reference", "transaction_type"])
        self.env.cr.execute(
            "SELECT id FROM spp_entitlement_transaction WHERE service_point_id = %s AND reference = %s "
            "AND transaction_type = 'redemption'",
            [point.id, reference],
        )
        row = self.env.cr.fetchone()
        return self.sudo().browse(row[0] if row else ())

    # ------------------------------------------------------------------
    # Entitlements: finding, locking, figures, answers
    # ------------------------------------------------------------------
    @api.model
    def _entitlement_models(self):
        return [
            m
            for m in self.env["g2p.cycle"]._entitlement_models()
            if hasattr(self.env[m], "_redemption_total")
        ]

    @api.model
    def _read_committed(self):
        """Run this request's transaction in READ COMMITTED when nothing ran in it yet
        (an RPC call: the method is the transaction's first statement).

        Redemptions of one entitlement serialize on its row lock. Under Odoo's default
        REPEATABLE READ the request that waited for the lock then fails to serialize and
        Odoo replays it after a random pause of up to 1, 2, 4, 8 s, at most 5 times: 20
        devices serving one household would see failures. Under READ COMMITTED the
        waiting request simply goes on with the row as the first one left it, which is
        all this code needs: everything it decides on is read after the lock. Called
        inside a transaction that already ran queries (tests, server code, the web
        client), it leaves the isolation as it is and the replay path applies."""
        cnx = getattr(self.env.cr, "_cnx", None)
        if cnx is not None and cnx.info.transaction_status == TRANSACTION_STATUS_IDLE:
            # psycopg2 then opens the transaction with BEGIN ISOLATION LEVEL READ
            # COMMITTED (no statement of its own); the next cursor that borrows this
            # connection sets REPEATABLE READ again (odoo.sql_db.Cursor.__init__).
            cnx.set_isolation_level(ISOLATION_LEVEL_READ_COMMITTED)

    @api.model
    def _find_entitlement(self, code, lock=False):
        """The entitlement (any model, sudo) whose ERN is ``code`` (display form), or None:
        one query over every entitlement table. With ``lock``, the same query locks its
        row ``FOR UPDATE`` and reads, fresh, what the redemption needs: the entitlement's
        ``_redemption_fields`` and its ``_redemption_related_fields`` (joined), put into
        the cache as ``fetch`` would: the redemption then runs no other read query."""
        models_ = self._entitlement_models()
        arms = []
        for index, model in enumerate(models_):
            Model = self.env[model]
            # What the query reads is written to the database first (as fetch does).
            Model.flush_model(["code", *(Model._redemption_fields() if lock else ())])
            select, joins = self._entitlement_columns(Model) if lock else (SQL("e.id"), SQL())
            arms.append(
                SQL(
                    "%s AS (SELECT %s FROM %s e %s WHERE e.code = %s%s)",
                    SQL.identifier(f"m{index}"),
                    select,
                    SQL.identifier(Model._table),
                    joins,
                    code,
                    SQL(" FOR UPDATE OF e") if lock else SQL(),
                )
            )
        # FOR UPDATE is not allowed beside UNION, but is inside WITH queries; the models'
        # columns differ, so each row comes as one JSON object.
        query = SQL(
            "WITH %s %s",
            SQL(", ").join(arms),
            SQL(" UNION ALL ").join(
                SQL(
                    "SELECT %s, to_jsonb(%s) FROM %s",
                    index,
                    SQL.identifier(f"m{index}"),
                    SQL.identifier(f"m{index}"),
                )
                for index in range(len(models_))
            ),
        )
        # A concurrent redemption committed meanwhile makes FOR UPDATE fail to serialize
        # (REPEATABLE READ); Odoo's RPC layer then replays the request: not worth an ERROR line.
        self.env.cr.execute(query, log_exceptions=False)
        row = self.env.cr.fetchone()
        if not row:
            return None
        index, values = row
        entitlement = self.env[models_[index]].sudo().browse(values["id"])
        entitlement.invalidate_recordset()
        if lock:
            self._cache_entitlement(entitlement, values)
        return entitlement

    @api.model
    def _entitlement_columns(self, Model):
        """(select list, joins) reading ``Model``'s redemption fields (table alias ``e``)
        and its related ones (alias ``r<n>``, column alias ``<many2one>__<field>``)."""
        columns = [SQL("e.id")]
        columns += [SQL("e.%s", SQL.identifier(name)) for name in Model._redemption_fields()]
        joins = []
        for number, path in enumerate(Model._redemption_related_fields()):
            link, name = path.split(".")
            comodel = self.env[Model._fields[link].comodel_name]
            comodel.flush_model([name])
            alias = SQL.identifier(f"r{number}")
            joins.append(
                SQL(
                    "LEFT JOIN %s %s ON %s.id = e.%s",
                    SQL.identifier(comodel._table),
                    alias,
                    alias,
                    SQL.identifier(link),
                )
            )
            columns.append(SQL("%s.%s AS %s", alias, SQL.identifier(name), SQL.identifier(f"{link}__{name}")))
        return SQL(", ").join(columns), SQL(" ").join(joins)

    @api.model
    def _cache_entitlement(self, entitlement, values):
        """Put what :meth:`_entitlement_columns` read (``values``: the row as a JSON
        object) into the cache of ``entitlement`` and of its related records, converted
        as the ORM converts what it reads (dates come as ISO strings in JSON)."""
        cache = self.env.cache
        for name in entitlement._redemption_fields():
            field = entitlement._fields[name]
            cache.update(
                entitlement, field, [field.convert_to_cache(values[name], entitlement, validate=False)]
            )
        for path in entitlement._redemption_related_fields():
            link, name = path.split(".")
            related = entitlement[link]
            if related:
                field = related._fields[name]
                value = values[f"{link}__{name}"]
                cache.update(related, field, [field.convert_to_cache(value, related, validate=False)])

    @api.model
    def _lock(self, entitlement):
        """Lock ``entitlement``'s row (FOR UPDATE) and forget what was read of it before."""
        entitlement.flush_recordset()
        self.env.cr.execute(
            SQL(
                "SELECT id FROM %s WHERE id = %s FOR UPDATE",
                SQL.identifier(entitlement._table),
                entitlement.id,
            ),
            log_exceptions=False,
        )
        entitlement.invalidate_recordset()

    @api.model
    def _balance(self, entitlement):
        rounding = entitlement._redemption_rounding()
        field = entitlement._redeemed_quantity_field()
        return float_round(entitlement._redemption_total() - entitlement[field], precision_rounding=rounding)

    @api.model
    def _lookup_answers(self, entitlements):
        """:meth:`lookup` answers for ``entitlements`` (one model, sudo), in their order."""
        households = self._households(entitlements.partner_id)
        answers = []
        for entitlement in entitlements:
            product = entitlement._redemption_product()
            uom = entitlement._redemption_uom()
            answers.append(
                {
                    "code": entitlement.code or False,
                    "beneficiary": entitlement.partner_id.name or False,
                    "household": households.get(entitlement.partner_id.id) or False,
                    "product": product.display_name if product else False,
                    "uom": uom.name if uom else False,
                    "balance": self._balance(entitlement),
                    "valid_until": fields.Date.to_string(entitlement.valid_until)
                    if entitlement.valid_until
                    else False,
                    "state": entitlement.state,
                }
            )
        return answers

    @api.model
    def _households(self, partners):
        """{partner id: household name}: a household is its own; an individual's is the
        household of their current membership (one query)."""
        result = {partner.id: partner.name for partner in partners if partner.is_group}
        individual_ids = [partner.id for partner in partners if not partner.is_group]
        if individual_ids:
            self.env["g2p.group.membership"].flush_model(["group_id", "individual_id", "end_date"])
            self.env["res.partner"].flush_model(["name"])
            self.env.cr.execute(
                """SELECT m.individual_id, g.name FROM g2p_group_membership m
                   JOIN res_partner g ON g.id = m.group_id
                   WHERE m.individual_id = ANY(%s) AND m.end_date IS NULL""",
                [individual_ids],
            )
            result.update(self.env.cr.fetchall())
        return result

    # ------------------------------------------------------------------
    # Who calls
    # ------------------------------------------------------------------
    @api.model
    def _is_back_office(self):
        return any(self.env.user.has_group(group) for group in BACK_OFFICE_GROUPS)

    @api.model
    def _is_agent_of(self, point_id):
        """True when the user is an agent of the active service point ``point_id`` (SQL:
        this is on every request's path). The same query reads the point's company and
        area, which a redemption copies when its entitlement has none: into the cache."""
        Point = self.env["spp.service.point"]
        Point.flush_model(["user_ids", "active", "company_id", "area_id"])
        field = Point._fields["user_ids"]
        self.env.cr.execute(
            SQL(
                "SELECT p.company_id, p.area_id FROM %s rel JOIN spp_service_point p ON p.id = rel.%s "
                "WHERE rel.%s = %s AND rel.%s = %s AND p.active",
                SQL.identifier(field.relation),
                SQL.identifier(field.column1),
                SQL.identifier(field.column1),
                point_id,
                SQL.identifier(field.column2),
                self.env.uid,
            )
        )
        row = self.env.cr.fetchone()
        if row:
            point = Point.browse(point_id)
            for name, value in zip(("company_id", "area_id"), row, strict=True):
                self.env.cache.update(point, Point._fields[name], [value])
        return bool(row)

    @api.model
    def _check_service_point(self, service_point_id, back_office=False):
        """The service point ``service_point_id`` once the caller may act for it: an
        agent of it (in the agent group and among its ``user_ids``), or with
        ``back_office`` a back-office user who may read it."""
        if isinstance(service_point_id, bool) or not isinstance(service_point_id, int):
            raise refusal(
                ValidationError,
                "bad_service_point",
                _("The service point is given by its id (an integer), not %r.", service_point_id),
            )
        point = self.env["spp.service.point"].browse(service_point_id)
        if self.env.su:
            if not point.exists():
                raise refusal(
                    UserError, "bad_service_point", _("No service point with id %s.", service_point_id)
                )
            return point
        if back_office and self._is_back_office() and point.exists():
            point.check_access_rights("read")
            point.check_access_rule("read")
            return point
        if not self.env.user.has_group(AGENT_GROUP):
            raise refusal(
                AccessError,
                "not_an_agent",
                _(
                    "%s is not a service point agent: only agents redeem entitlements; an administrator "
                    "gives the Service Point Agent role.",
                    self.env.user.name,
                ),
            )
        if not self._is_agent_of(service_point_id):
            raise refusal(
                AccessError,
                "not_your_service_point",
                _(
                    "Service point %(id)s is not one of your active service points: act only for the points "
                    "you serve (ask an administrator to add you to this one).",
                    id=service_point_id,
                ),
            )
        return point

    @api.model
    def _check_reader(self):
        if not self.env.su and not self.env.user.has_group(AGENT_GROUP) and not self._is_back_office():
            raise refusal(
                AccessError,
                "not_allowed",
                _("Only service point agents and back-office users may look entitlements up."),
            )

    @api.model
    def _check_visible(self, entitlement, code):
        """Raise unless the user may see ``entitlement`` (sudo, or None)."""
        if not entitlement:
            raise self._unknown_code(code)
        if self.env.su:
            return
        if self._is_back_office():
            mine = entitlement.sudo(False)
            if mine.check_access_rights("read", raise_exception=False) and mine._filter_access_rules("read"):
                return
        if self.env.user.has_group(AGENT_GROUP):
            if entitlement.service_point_id and self._is_agent_of(entitlement.service_point_id.id):
                return
            raise refusal(
                UserError,
                "wrong_service_point",
                _("Entitlement %s is not collected at any of your service points.", code),
            )
        raise self._unknown_code(code)

    # ------------------------------------------------------------------
    # Input checks (before any lookup)
    # ------------------------------------------------------------------
    @api.model
    def _unknown_code(self, code):
        return refusal(
            UserError,
            "unknown_code",
            _("No entitlement has the code %s: check the voucher and type it again.", code),
        )

    @api.model
    def _check_code(self, code):
        """The ERN in display form (``XXXX-XXXX-C``); refuses a malformed one and one
        whose check character is wrong, before any lookup."""
        normalized = ern.normalize(code) if isinstance(code, str) else ""
        if len(normalized) != ern.BODY_LENGTH + 1 or not all(c in ern.ISO7064_CHARSET for c in normalized):
            raise refusal(
                ValidationError,
                "malformed_code",
                _(
                    "%r is not an entitlement code: a code has 9 letters and digits, printed XXXX-XXXX-X.",
                    code,
                ),
            )
        # handout (issue 20): a legacy MOD 37-2 code passes when it is an existing entitlement's
        if not ern.is_valid(normalized) and not self._is_legacy_code(normalized):
            raise refusal(
                ValidationError,
                "bad_check_character",
                _(
                    "%s has a wrong check character: a character was mistyped or two were swapped; "
                    "read the code again from the voucher.",
                    ern.display(normalized),
                ),
            )
        return ern.display(normalized)

    @api.model
    def _check_quantity(self, quantity):
        """``quantity`` as a float, refusing booleans, strings, NaN, infinities and ≤ 0."""
        value = None
        if isinstance(quantity, numbers.Real) and not isinstance(quantity, bool):
            try:
                value = float(quantity)
            except (OverflowError, ValueError):
                value = None
        if value is None or not math.isfinite(value) or value <= 0:
            raise refusal(
                ValidationError,
                "bad_quantity",
                _("The quantity must be a number greater than 0, not %r.", quantity),
            )
        return value

    @api.model
    def _check_reference(self, reference):
        if (
            not isinstance(reference, str)
            or not reference.strip()
            or len(reference) > REFERENCE_MAX_LENGTH
            or not reference.isprintable()
        ):
            raise refusal(
                ValidationError,
                "bad_reference",
                _(
                    "The reference must be a text of 1 to %(max)s printable characters, unique for each "
                    "redemption at the service point (got %(ref)r).",
                    max=REFERENCE_MAX_LENGTH,
                    ref=reference if not isinstance(reference, str) else reference[:80],
                ),
            )
        return reference

    @api.model
    def _check_reason(self, reason):
        if (
            not isinstance(reason, str)
            or not reason.strip()
            or len(reason) > REASON_MAX_LENGTH
            or "\x00" in reason
        ):
            raise refusal(
                ValidationError,
                "bad_reason",
                _("Say why the redemption is reversed, in 1 to %s characters.", REASON_MAX_LENGTH),
            )
        return reason.strip()

    @api.model
    def _check_device_time(self, device_time):
        """``device_time`` (False, or a UTC ``YYYY-MM-DD HH:MM:SS`` string, ISO ``T``/``Z``
        accepted) as a naive UTC datetime, or False."""
        if device_time in (False, None, ""):
            return False
        parsed = False
        if isinstance(device_time, str):
            text = device_time.strip().replace("T", " ").removesuffix("Z")
            try:
                parsed = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
            except ValueError:
                parsed = False
        if parsed:
            return parsed
        raise refusal(
            ValidationError,
            "bad_device_time",
            _("The device time must be a UTC date and time 'YYYY-MM-DD HH:MM:SS', not %r.", device_time),
        )
