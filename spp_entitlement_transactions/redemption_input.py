"""What the redemption API accepts from a device, checked before any database work.

Plain Python (no ORM, no database): each function takes what a client sent over
XML-RPC / JSON-RPC and returns it in the form the API works with, or raises
:class:`InputError` with a stable code, an English message template and its values.
``spp.entitlement.transaction`` turns an ``InputError`` into a ``ValidationError``
``"[code] <translated message>"`` (XML-RPC fault code 2); the templates are marked with
``_lt`` for Odoo's term extraction and translated when the error is raised to the user.
Tested without a database by ``tests/test_redemption_input.py``.
"""

import math
import numbers
import xmlrpc.client
from datetime import date, datetime, timezone

from odoo.addons.g2p_programs_ext import ern

REFERENCE_MAX_LENGTH = 64
REASON_MAX_LENGTH = 500
BATCH_MAX_LINES = 5000
# XML-RPC's dateTime.iso8601 as Python's xmlrpc.client sends it (no separators, no zone).
XMLRPC_DATETIME_FORMAT = "%Y%m%dT%H:%M:%S"


def _lt(text):
    """Mark ``text`` for Odoo's translation extraction (which reads ``_lt("...")``
    calls); it is translated when the error reaches the user, not here."""
    return text


class InputError(ValueError):
    """A value refused before any lookup: ``code`` (stable, e.g. ``bad_quantity``),
    ``template`` (English, ``%(name)s`` placeholders) and ``params`` (its values).
    ``str(error)`` is the English message with its ``[code]``."""

    def __init__(self, error_code, template, /, **params):
        self.code = error_code
        self.template = template
        self.params = params
        super().__init__("[%s] %s" % (error_code, template % params if params else template))


def code(value):
    """The ERN in display form (``XXXX-XXXX-C``); dashes, spaces and case are ignored.

    :raise InputError: ``malformed_code`` (not 9 characters of the ERN's charset),
        ``bad_check_character`` (a character mistyped or two swapped)."""
    normalized = ern.normalize(value) if isinstance(value, str) else ""
    if len(normalized) != ern.BODY_LENGTH + 1 or not all(c in ern.ISO7064_CHARSET for c in normalized):
        raise InputError(
            "malformed_code",
            _lt("%(code)r is not an entitlement code: a code has 9 letters and digits, printed XXXX-XXXX-X."),
            code=value,
        )
    if not ern.is_valid(normalized):
        raise InputError(
            "bad_check_character",
            _lt(
                "%(code)s has a wrong check character: a character was mistyped or two were swapped; "
                "read the code again from the voucher."
            ),
            code=ern.display(normalized),
        )
    return ern.display(normalized)


def quantity(value):
    """``value`` as a float: a real number (not a boolean, not a text), finite, > 0.

    :raise InputError: ``bad_quantity``."""
    number = None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            number = float(value)
        except (OverflowError, ValueError):
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise InputError(
            "bad_quantity", _lt("The quantity must be a number greater than 0, not %(qty)r."), qty=value
        )
    return number


def reference(value):
    """The client's key of a redemption: a text of 1 to 64 printable characters, not blank.

    :raise InputError: ``bad_reference``."""
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > REFERENCE_MAX_LENGTH
        or not value.isprintable()
    ):
        raise InputError(
            "bad_reference",
            _lt(
                "The reference must be a text of 1 to %(max)s printable characters, unique for each "
                "redemption at the service point (got %(ref)r)."
            ),
            max=REFERENCE_MAX_LENGTH,
            ref=value[:80] if isinstance(value, str) else value,
        )
    return value


def reason(value):
    """Why a redemption is reversed, stripped: 1 to 500 characters, no NUL.

    :raise InputError: ``bad_reason``."""
    if not isinstance(value, str) or not value.strip() or len(value) > REASON_MAX_LENGTH or "\x00" in value:
        raise InputError(
            "bad_reason",
            _lt("Say why the redemption is reversed, in 1 to %(max)s characters."),
            max=REASON_MAX_LENGTH,
        )
    return value.strip()


def service_point_id(value):
    """A service point id: an integer (not a boolean).

    :raise InputError: ``bad_service_point``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(
            "bad_service_point",
            _lt("The service point is given by its id (an integer), not %(id)r."),
            id=value,
        )
    return value


def device_time(value):
    """When a device recorded a redemption, as a naive UTC ``datetime`` to the second
    (as Odoo stores datetimes), or False.

    Accepted: False, None or "" (no time); ISO 8601 text in its usual forms, through
    :meth:`datetime.fromisoformat` (``2026-12-07T10:15:00``, a space for the ``T``,
    fractional seconds, ``Z`` or ``+08:00`` / ``-05:00``, converted to UTC; no zone:
    UTC); XML-RPC's ``dateTime.iso8601`` (an ``xmlrpc.client.DateTime``, which is what
    Odoo's XML-RPC server hands to the method; no zone: UTC); a ``datetime``
    (server-side callers). A date without a time is refused: a device knows the time.

    :raise InputError: ``bad_device_time``."""
    if value in (False, None, ""):
        return False
    parsed = None
    if isinstance(value, xmlrpc.client.DateTime):
        text = value.value
        try:
            parsed = datetime.strptime(text, XMLRPC_DATETIME_FORMAT)
        except ValueError:
            parsed = _parse_iso_datetime(text)
    elif isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = _parse_iso_datetime(value.strip())
    if parsed is not None and parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00:00+08:00
            parsed = None
    if parsed is None:
        raise InputError(
            "bad_device_time",
            _lt(
                "The device time must be an ISO 8601 date and time, e.g. '2026-12-07T10:15:00Z' or "
                "'2026-12-07T18:15:00+08:00' (no zone: UTC), not %(time)r."
            ),
            time=value if not isinstance(value, xmlrpc.client.DateTime) else value.value,
        )
    return parsed.replace(microsecond=0)  # Odoo keeps datetimes to the second


def _parse_iso_datetime(text):
    """``text`` as a datetime (aware when it names a zone), or None when it is not an ISO
    8601 date and time (a date alone included)."""
    if _is_iso_date(text):
        return None  # a date without a time
    try:
        return datetime.fromisoformat(text)
    except (ValueError, TypeError, OverflowError):
        return None


def batch_lines(value):
    """The lines of an offline batch: a list (or tuple) of at most 5,000 items; each item
    is checked by :func:`batch_line` when it is handled (a bad line is answered with its
    error and does not stop the others).

    :raise InputError: ``bad_lines``."""
    if not isinstance(value, list | tuple) or len(value) > BATCH_MAX_LINES:
        raise InputError(
            "bad_lines",
            _lt(
                "Send the lines as a list of at most %(max)s dicts {code, quantity, reference, device_time}."
            ),
            max=BATCH_MAX_LINES,
        )
    return list(value)


def batch_line(value):
    """One line of an offline batch: a dict ``{code, quantity, reference, device_time}``;
    returns ``(code, quantity, reference, device_time)`` with ``device_time`` checked
    (:func:`device_time`); the others are checked by the redemption itself.

    :raise InputError: ``bad_line``, ``bad_device_time``."""
    if not isinstance(value, dict):
        raise InputError(
            "bad_line",
            _lt("Each line is a dict {code, quantity, reference, device_time}, not %(type)s."),
            type=type(value).__name__,
        )
    return (
        value.get("code"),
        value.get("quantity"),
        value.get("reference"),
        device_time(value.get("device_time")),
    )


def _is_iso_date(text):
    """True when ``text`` is an ISO 8601 date alone (``2026-12-07``, ``20261207``, ``2026-W49-1``)."""
    try:
        date.fromisoformat(text)
    except (ValueError, TypeError):
        return False
    return True
