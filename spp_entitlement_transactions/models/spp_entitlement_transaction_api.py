"""The redemption API: what agents' devices and partner systems call over XML-RPC /
JSON-RPC (``lookup``, ``redeem``, ``reverse``, ``redeem_batch``,
``entitlements_for_service_point``), on the ledger model.

- **Checks first, then sudo.** Every method checks who calls (section "Who may call"
  below) and what was sent (``redemption_input``, before any lookup), then works as
  superuser.
- **Balances under a row lock.** The entitlement's row is locked (``SELECT ... FOR
  UPDATE``, :meth:`g2p.entitlement.base._find_by_code`; an offline batch locks all its
  entitlements in one query, ``_find_by_codes``) before its balance is read, and
  its redeemed figure is updated in the same statement as the insert of the transaction
  row. Two requests on one entitlement therefore serialize: the second waits for the
  first. An RPC call runs in READ COMMITTED (see :meth:`_read_committed`): the waiting
  request then reads the row as the first one left it and goes on. Elsewhere (Odoo's
  default REPEATABLE READ) it fails to serialize and Odoo replays it from the start;
  either way everything the redemption decides on is read after the lock.
"""

import logging

from psycopg2.extensions import (
    ISOLATION_LEVEL_READ_COMMITTED,
    ISOLATION_LEVEL_REPEATABLE_READ,
    TRANSACTION_STATUS_IDLE,
)

from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext import ern
from odoo.addons.g2p_programs_ext.models.g2p_entitlement_base import (
    ENTITLEMENT_STATES,
    ENTITLEMENT_TRANSITIONS,
)
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL, float_compare, float_is_zero, float_round

from .. import redemption_input
from .spp_entitlement_transaction import REDEEMABLE_STATES, refusal

_logger = logging.getLogger(__name__)

AGENT_GROUP = "spp_service_points.group_service_point_agent"
BACK_OFFICE_GROUPS = (
    "g2p_programs_ext.group_program_officer",
    "g2p_programs_ext.group_program_validator",
    "g2p_programs_ext.group_cycle_approver",
)
REVERSIBLE_STATES = ("approved", "transferred", "redeemed")


class SppEntitlementTransaction(models.Model):
    _inherit = "spp.entitlement.transaction"

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
        code = self._input(redemption_input.code, code)
        entitlement = self.env["g2p.entitlement.base"]._find_by_code(code)
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
        service_point_id = self._input(redemption_input.service_point_id, service_point_id)
        try:
            reference, quantity, code = self._redeem_input(reference, quantity, code)
        except ValidationError:
            self._check_service_point(service_point_id)  # the caller's refusal comes first
            raise
        point, entitlement = self._check_service_point_and_lock(service_point_id, code)
        return self._redeem_checked(point, code, quantity, reference, False, entitlement)

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
        point = self._check_service_point(self._input(redemption_input.service_point_id, service_point_id))
        reference = self._input(redemption_input.reference, reference)
        reason = self._input(redemption_input.reason, reason)
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
        entitlement._lock_for_redemption()
        done = self.sudo().search([("reversed_transaction_id", "=", redemption.id)], limit=1)
        if done:
            return done._answer()
        return self._record_reversal(redemption, entitlement, point, reason)

    @api.model
    def redeem_batch(self, service_point_id, lines):
        """Redemptions a device recorded offline, sent when it is back online. Each line
        is handled as :meth:`redeem` would: a bad line is answered with its error, writes
        nothing and does not stop the others. Idempotent by reference, so a device may
        send the same batch again (e.g. after a timeout).

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
        point = self._check_service_point(self._input(redemption_input.service_point_id, service_point_id))
        lines = self._input(redemption_input.batch_lines, lines)
        # First the input of every line, then the batch's entitlements found and locked in
        # one query (in id order), then each line decided under the locks, then every new
        # redemption written in one statement (see _redeem_lines).
        parsed = []
        for line in lines:
            try:
                parsed.append(self._redeem_line_input(line))
            except UserError as error:  # so are ValidationError and AccessError
                parsed.append(error)
        results = self._redeem_lines(point, parsed)
        answers = []
        refused = 0
        for line, result in zip(lines, results, strict=True):
            if isinstance(result, UserError):
                reference = line.get("reference") if isinstance(line, dict) else False
                answers.append(self._error_answer(reference, result))
                refused += 1
            else:
                answers.append(result)
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
        point = self._check_service_point(
            self._input(redemption_input.service_point_id, service_point_id), back_office=True
        )
        answers = []
        for entitlements in self._redeemable_entitlements(point):
            answers += self._lookup_answers(entitlements)
        return answers

    @api.model
    def _redeemable_entitlements(self, point, domain=()):
        """The entitlements of ``point`` (spp.service.point) that can be redeemed today
        (approved or transferred, valid today) and match ``domain`` (a search domain on
        the entitlement models), as superuser: the caller checked who asks.

        :return: list of recordsets, one per redemption model, each ordered by code."""
        today = fields.Date.today()
        return [
            self.env[model]
            .sudo()
            .search(
                [
                    *domain,
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
            for model in self.env["g2p.entitlement.base"]._redemption_models()
        ]

    # ------------------------------------------------------------------
    # Who may call: the caller's authorisation, in one place
    # ------------------------------------------------------------------
    # - **Agents** (``spp_service_points.group_service_point_agent``) act only for the active
    #   service points whose ``user_ids`` they are in: ``redeem``, ``reverse``,
    #   ``redeem_batch`` and ``entitlements_for_service_point`` for those points, ``lookup``
    #   of the entitlements collected there.
    # - **Back office** (officers, validators, cycle approvers) may ``lookup`` the
    #   entitlements their record rules let them read, and ask
    #   ``entitlements_for_service_point`` for a point they may read; they never redeem.
    # - Anyone else is refused ``[not_allowed]`` / ``[not_an_agent]``.
    #
    # Every public method of the API calls these checks first, then works as superuser:
    # the suite's roles have no write right on entitlements and transactions (see
    # ``security/ir.model.access.csv``).

    @api.model
    def _is_back_office(self):
        return any(self.env.user.has_group(group) for group in BACK_OFFICE_GROUPS)

    @api.model
    def _is_agent_of(self, point_id):
        """True when the user is an agent of the active service point ``point_id``.

        SQL, not the ORM: on every request's path, one query (:meth:`_agent_point_query`)
        that also reads the point's company and area (which a redemption copies when its
        entitlement has none); they go into the cache as the ORM would have read them."""
        self.env.cr.execute(self._agent_point_query(point_id))
        return self._cache_agent_point(point_id, self.env.cr.fetchone())

    @api.model
    def _agent_point_query(self, point_id):
        """The query of :meth:`_is_agent_of`, not run: one row ``(company_id, area_id)``
        when the user is an agent of the active point ``point_id``, none otherwise. What
        it reads is flushed first."""
        Point = self.env["spp.service.point"]
        Point.flush_model(["user_ids", "active", "company_id", "area_id"])
        field = Point._fields["user_ids"]
        return SQL(
            "SELECT p.company_id, p.area_id FROM %s rel JOIN %s p ON p.id = rel.%s "
            "WHERE rel.%s = %s AND rel.%s = %s AND p.active",
            SQL.identifier(field.relation),
            SQL.identifier(Point._table),
            SQL.identifier(field.column1),
            SQL.identifier(field.column1),
            point_id,
            SQL.identifier(field.column2),
            self.env.uid,
        )

    @api.model
    def _cache_agent_point(self, point_id, row):
        """Put the point's company and area read by :meth:`_agent_point_query` (``row``,
        a sequence, or None when the user is not its agent) into the cache; True when
        the user is its agent."""
        if row:
            Point = self.env["spp.service.point"]
            point = Point.browse(point_id)
            for name, value in zip(("company_id", "area_id"), row, strict=True):
                self.env.cache.update(point, Point._fields[name], [value])
        return bool(row)

    @api.model
    def _check_service_point(self, service_point_id, back_office=False):
        """The service point ``service_point_id`` (an id, already checked to be an integer)
        once the caller may act for it: an agent of it (in the agent group and among its
        ``user_ids``), or with ``back_office`` a back-office user who may read it.

        :raise UserError: ``[bad_service_point]`` (superuser: no such point).
        :raise AccessError: ``[not_an_agent]``, ``[not_your_service_point]``."""
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
    def _check_service_point_and_lock(self, service_point_id, code):
        """:meth:`_check_service_point` for a redemption, and the entitlement whose ERN is
        ``code`` found, locked and read as :meth:`g2p.entitlement.base._find_by_code` does,
        in one statement when the caller is an agent (the agent check is one more arm of
        the locked read: one round trip less on every ``redeem``). The refusals and their
        order are :meth:`_check_service_point`'s, then the caller's checks.

        :return: (spp.service.point, entitlement (sudo) or None)
        :raise AccessError: ``[not_an_agent]``, ``[not_your_service_point]``."""
        Base = self.env["g2p.entitlement.base"]
        if self.env.su or not self.env.user.has_group(AGENT_GROUP):
            point = self._check_service_point(service_point_id)
            return point, Base._find_by_code(code, lock=True)
        entitlement, rows = Base._find_by_code_with(code, self._agent_point_query(service_point_id))
        row = (rows[0]["company_id"], rows[0]["area_id"]) if rows else None
        if not self._cache_agent_point(service_point_id, row):
            self._check_service_point(service_point_id)  # raises [not_your_service_point]
        return self.env["spp.service.point"].browse(service_point_id), entitlement

    @api.model
    def _check_reader(self):
        """:raise AccessError: ``[not_allowed]`` unless the user is an agent or back office."""
        if not self.env.su and not self.env.user.has_group(AGENT_GROUP) and not self._is_back_office():
            raise refusal(
                AccessError,
                "not_allowed",
                _("Only service point agents and back-office users may look entitlements up."),
            )

    @api.model
    def _check_visible(self, entitlement, code):
        """Raise unless the user may see ``entitlement`` (sudo, or None): back office
        through its own record rules, an agent when it is collected at one of their points.

        :raise UserError: ``[unknown_code]``, ``[wrong_service_point]``."""
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

    @api.model
    def _unknown_code(self, code):
        return refusal(
            UserError,
            "unknown_code",
            _("No entitlement has the code %s: check the voucher and type it again.", code),
        )

    # ------------------------------------------------------------------
    # Redemption
    # ------------------------------------------------------------------
    @api.model
    def _redeem_input(self, reference, quantity, code):
        """``(reference, quantity, code)`` checked as :meth:`redeem` checks them, in that
        order. :raise ValidationError: the first bad one's refusal."""
        reference = self._input(redemption_input.reference, reference)
        quantity = self._input(redemption_input.quantity, quantity)
        code = self._input(redemption_input.code, code)
        return reference, quantity, code

    @api.model
    def _redeem_checked(self, point, code, quantity, reference, device_time, entitlement):
        """:meth:`redeem` once the input is checked and ``entitlement`` (sudo, or None
        when no entitlement has ``code``) is locked and read by
        :meth:`g2p.entitlement.base._find_by_code` or ``_find_by_codes``."""
        payload = self._payload_hash(code, quantity)
        # Lock first: a concurrent request with the same reference and code has committed
        # by the time the lock is granted. The reference is looked up only when the
        # redemption cannot go ahead (one query less for the many new requests): a retry
        # of a request that went through either fails a check (nothing left, less than
        # asked) or meets the reference's unique constraint; it is then answered as the
        # first time.
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
    def _redeem_lines(self, point, parsed):
        """The lines of :meth:`redeem_batch` at ``point``, each decided as :meth:`redeem`
        would in the batch's order: ``parsed`` holds, per line, its checked input
        ``(code, quantity, reference, device_time)`` or the ``UserError`` it was refused
        with. Returns, per line, :meth:`redeem`'s answer or the ``UserError`` refusing it.

        The batch's entitlements are locked in one query (id order: two batches that share
        entitlements wait for each other), its references already in the ledger read in
        one query after the locks, then each line is checked against the figures the
        earlier lines left (kept in the cache, not written yet) and every new redemption
        inserted, with the entitlements' new figures, in one statement. A line whose
        reference is already used (in the ledger, or by an earlier line of the batch) is
        answered from that redemption, as a repeated :meth:`redeem`. A refused line writes
        nothing. When a concurrent request takes one of the batch's references between the
        read and the insert, the statement is rolled back to a savepoint and the batch is
        decided again line by line (:meth:`_redeem_lines_one_by_one`), which answers that
        line as :meth:`redeem` would."""
        codes = [item[0] for item in parsed if not isinstance(item, UserError)]
        locked = self.env["g2p.entitlement.base"]._find_by_codes(codes, lock=True)
        taken = self._find_by_references(
            point, [item[2] for item in parsed if not isinstance(item, UserError)]
        )
        results = [error if isinstance(error, UserError) else None for error in parsed]
        new = {}  # reference: (line index, transaction values, balance after, state after)
        figures = {}  # entitlement: (redeemed, balance, new state or None)
        repeated = []  # (line index, reference, payload): an earlier line of the batch took the reference
        for index, item in enumerate(parsed):
            if results[index] is not None:
                continue
            code, quantity, reference, device_time = item
            payload = self._payload_hash(code, quantity)
            try:
                if reference in taken:
                    results[index] = taken[reference]._replay(payload)
                    continue
                if reference in new:
                    repeated.append((index, reference, payload))
                    continue
                entitlement = locked.get(code)
                if not entitlement:
                    raise self._unknown_code(code)
                checked = self._check_redeemable(entitlement, point, quantity)
            except UserError as error:  # so are ValidationError and AccessError
                results[index] = error
                continue
            vals, redeemed, balance, state, new_state = self._plan_redemption(
                entitlement, point, checked, reference, payload, device_time
            )
            entitlement._cache_redeemed(redeemed, balance, new_state)  # for the later lines
            previous = figures.get(entitlement)
            figures[entitlement] = (redeemed, balance, new_state or (previous[2] if previous else None))
            new[reference] = (index, vals, balance, state)
        if not new:
            return results
        ids = self._write_redemptions([item[1] for item in new.values()], figures)
        if ids is None:
            _logger.info(
                "Offline batch at service point %s: a reference was taken meanwhile, batch decided line by line",
                point.id,
            )
            return self._redeem_lines_one_by_one(point, parsed, codes)
        for reference, (index, vals, balance, state) in new.items():
            results[index] = self._answer_values(ids[reference], vals["code"], balance, state)
        for index, reference, payload in repeated:
            try:
                results[index] = self.sudo().browse(ids[reference])._replay(payload)
            except UserError as error:
                results[index] = error
        return results

    @api.model
    def _write_redemptions(self, vals_list, figures):
        """Insert the batch's new redemptions (``vals_list``) and store the entitlements'
        new ``figures`` ({entitlement: (redeemed, balance, new state or None)}) in one
        statement, inside a savepoint. :return: {reference: new id}, or None when a
        reference was taken meanwhile (everything rolled back to the savepoint, the
        entitlements' cached figures forgotten)."""
        by_model = {}
        for entitlement, values in figures.items():
            by_model.setdefault(entitlement._name, {})[entitlement.id] = values
        updates = [
            self.env[model].sudo()._record_redeemed_many_query(values) for model, values in by_model.items()
        ]
        savepoint = self.env.cr.savepoint(flush=False)
        ids = self._insert_redemptions(vals_list, updates)
        complete = len(ids) == len(vals_list)
        savepoint.close(rollback=not complete)
        for model, values in by_model.items():
            self.env[model].browse(list(values))._invalidate_redeemed("state")
        return ids if complete else None

    @api.model
    def _redeem_lines_one_by_one(self, point, parsed, codes):
        """:meth:`_redeem_lines`, one statement per new redemption, each line answered as
        :meth:`redeem` answers (a reference taken by a concurrent request included): the
        fallback when the batch's single insert met such a reference."""
        locked = self.env["g2p.entitlement.base"]._find_by_codes(codes, lock=True)  # read again; still locked
        results = []
        for item in parsed:
            if isinstance(item, UserError):
                results.append(item)
                continue
            try:
                results.append(self._redeem_checked(point, *item, locked.get(item[0])))
            except UserError as error:  # so are ValidationError and AccessError
                results.append(error)
        return results

    @api.model
    def _redeem_line_input(self, line):
        """The input of one line of :meth:`redeem_batch`, checked as :meth:`redeem` checks
        it (line, device time, reference, quantity, code, in that order):
        ``(code, quantity, reference, device_time)``.

        :raise ValidationError: the line's first bad input, as :meth:`redeem` raises it."""
        code, quantity, reference, device_time = self._input(redemption_input.batch_line, line)
        reference, quantity, code = self._redeem_input(reference, quantity, code)
        return code, quantity, reference, device_time

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
            unit = entitlement._redemption_unit_name()
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
        balance = entitlement._redemption_balance()
        if float_compare(rounded, balance, precision_rounding=rounding) > 0:
            unit = entitlement._redemption_unit_name()
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
        vals, redeemed, balance, state, new_state = self._plan_redemption(
            entitlement, point, quantity, reference, payload, device_time
        )
        transaction_id = self._insert_redemption(
            vals, entitlement._record_redeemed_query(redeemed, balance, new_state)
        )
        if not transaction_id:
            return None  # the reference is taken: the caller answers as the first time
        entitlement._invalidate_redeemed(new_state)
        return self._answer_values(transaction_id, vals["code"], balance, state)

    @api.model
    def _plan_redemption(self, entitlement, point, quantity, reference, payload, device_time):
        """What redeeming ``quantity`` (checked, rounded) of the locked ``entitlement`` at
        ``point`` writes, from the figures in the cache: ``(vals, redeemed, balance, state,
        new_state)``, the transaction's values (as for ``create``), the entitlement's new
        redeemed figure and balance (its unit), its state after, and that state when it
        changes (else None)."""
        spec = entitlement._redemption
        rounding = entitlement._redemption_rounding()
        total = entitlement[spec.total]
        redeemed = float_round(entitlement[spec.redeemed] + quantity, precision_rounding=rounding)
        full = float_compare(redeemed, total, precision_rounding=rounding) >= 0
        if full:
            redeemed = total
        # The state was checked under the row lock (_check_state: approved or transferred,
        # the sources of "redeem"): no query to check it again.
        state = ENTITLEMENT_TRANSITIONS["redeem"][1] if full else entitlement.state
        balance = 0.0 if full else float_round(total - redeemed, precision_rounding=rounding)
        vals = self._prepare_transaction_vals(entitlement, point, "redemption", quantity, balance, state)
        vals.update(reference=reference, payload_hash=payload, device_time=device_time)
        return vals, redeemed, balance, state, (state if full else None)

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
        spec = entitlement._redemption
        rounding = entitlement._redemption_rounding()
        figure = redemption[spec.figure]
        redeemed = max(float_round(entitlement[spec.redeemed] - figure, precision_rounding=rounding), 0.0)
        state = (
            entitlement._check_transition("reverse") if entitlement.state == "redeemed" else entitlement.state
        )
        balance = float_round(entitlement[spec.total] - redeemed, precision_rounding=rounding)
        vals = self._prepare_transaction_vals(entitlement, point, "reversal", figure, balance, state)
        vals.update(reversed_transaction_id=redemption.id, reason=reason)
        transaction = self.sudo().create(vals)
        entitlement._record_redeemed(redeemed, balance, state if state != entitlement.state else None)
        return transaction._answer()

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
                    "balance": entitlement._redemption_balance(),
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
        household of their current membership. SQL, not the ORM: one query for every
        answer of a lookup or an offline list (read, after a flush, as superuser: the
        caller checked access); nothing is cached."""
        result = {partner.id: partner.name for partner in partners if partner.is_group}
        individual_ids = [partner.id for partner in partners if not partner.is_group]
        if individual_ids:
            self.env["g2p.group.membership"].flush_model(["group_id", "individual_id", "end_date"])
            self.env["res.partner"].flush_model(["name"])
            self.env.cr.execute(
                SQL(
                    "SELECT m.individual_id, g.name FROM g2p_group_membership m "
                    "JOIN res_partner g ON g.id = m.group_id "
                    "WHERE m.individual_id = ANY(%s) AND m.end_date IS NULL",
                    individual_ids,
                )
            )
            result.update(self.env.cr.fetchall())
        return result

    # ------------------------------------------------------------------
    # Input and transaction set-up
    # ------------------------------------------------------------------
    @api.model
    def _input(self, check, value):
        """``check(value)`` (a function of ``redemption_input``), its ``InputError`` turned
        into the ``ValidationError`` a client gets: ``[code]`` then the translated message."""
        try:
            return check(value)
        except redemption_input.InputError as error:
            if (
                error.code == "bad_check_character"
                and isinstance(value, str)
                and self._is_legacy_code(ern.normalize(value))
            ):
                # a voucher printed before the 31-character check (issue 20) keeps working
                return ern.display(ern.normalize(value))
            message = _(error.template, **error.params) if error.params else _(error.template)
            raise refusal(ValidationError, error.code, message) from None

    @api.model
    def _read_committed(self):
        """Run this request's transaction in READ COMMITTED when it is the first statement
        of its cursor (an RPC call: the API method is where the transaction starts).

        Redemptions of one entitlement serialize on its row lock. Under Odoo's default
        REPEATABLE READ the request that waited for the lock then fails to serialize and
        Odoo replays it after a random pause of up to 1, 2, 4, 8 s, at most 5 times: 20
        devices serving one household would see failures. Under READ COMMITTED the
        waiting request simply goes on with the row as the first one left it, which is
        all this code needs: everything it decides on is read after the lock. Called
        after other statements (tests, server code, the web client, a replay), it leaves
        the isolation as it is and the replay path applies.

        How: the level Odoo's cursor gives its connection (``odoo.sql_db.Cursor`` sets
        REPEATABLE READ on every new cursor, through psycopg2's ``set_isolation_level``),
        set to READ COMMITTED the same way before the transaction begins; psycopg2 then
        begins it with ``BEGIN ISOLATION LEVEL READ COMMITTED``: no statement of its own
        (a ``SET TRANSACTION`` was one round trip more on every call). Only when nothing
        ran on this cursor yet (``cr.sql_log_count == 0``) and its connection is not in a
        transaction; once this transaction ends (commit or rollback) the connection is
        set back to REPEATABLE READ, so whatever runs next on the cursor (post-commit
        hooks, a replay) runs as Odoo expects. No record is read or written: nothing in
        the cache to keep right."""
        cr = self.env.cr
        # psycopg2's connection itself: the hooks below may run while Odoo closes the
        # cursor (a refused request is rolled back after its psycopg2 cursor is gone)
        connection = cr.connection
        if cr.sql_log_count or connection.info.transaction_status != TRANSACTION_STATUS_IDLE:
            return
        connection.set_isolation_level(ISOLATION_LEVEL_READ_COMMITTED)

        def restore():
            if not connection.closed:
                connection.set_isolation_level(ISOLATION_LEVEL_REPEATABLE_READ)

        cr.postcommit.add(restore)
        cr.postrollback.add(restore)
