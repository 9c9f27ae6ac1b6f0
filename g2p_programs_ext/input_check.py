"""Values given to create/write, checked before the ORM converts them.

Odoo converts what a client sends with ``int()``, ``float()`` and friends and lets
PostgreSQL refuse what does not fit: a list for an amount, NaN, 10**40 for an integer,
a NUL character in a text or an id that does not exist then end as a ``TypeError``,
``ValueError`` or database error, i.e. an XML-RPC fault code 1 with a traceback. The
configuration models of the suite (programs, entitlement managers and items) call
:func:`check_vals` first, so such values are refused with a ``ValidationError``
(fault code 2) that says which field and what was wrong, and nothing is written.
"""

import math

from odoo import _
from odoo.exceptions import ValidationError

from .refusal import coded

INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # PostgreSQL "integer" (ids too)
FLOAT_MAX = 1e15  # amounts and quantities: far above any benefit, far below float trouble


def _refuse(records, name, value, what):
    raise ValidationError(
        coded(
            "bad_value",
            _(
                "%(model)s: %(field)s must be %(what)s, not %(value)s.",
                model=records._description,
                field=name,
                what=what,
                value=repr(value)[:80],
            ),
        )
    )


def _is_text(value, field, env):
    return isinstance(value, str) and "\x00" not in value


def _is_selection(value, field, env):
    return isinstance(value, str) and value in [key for key, _label in field._description_selection(env)]


def _is_integer(value, field, env):
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)  # 30.0 from a client that has only one kind of number
    return not isinstance(value, bool) and isinstance(value, int) and INT_MIN <= value <= INT_MAX


def _is_number(value, field, env):
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and abs(value) < FLOAT_MAX
    )


def _is_boolean(value, field, env):
    return isinstance(value, bool | int)


def _is_record_id(value, field, env):
    if hasattr(value, "_name"):  # a record (server-side callers)
        return True
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT_MAX:
        return False
    return bool(env[field.comodel_name].sudo().with_context(active_test=False).browse(value).exists())


def _is_date(value, field, env):
    try:
        field.convert_to_cache(value, env[field.model_name])
    except (TypeError, ValueError, OverflowError):
        return False
    return True


# field type -> (check, what the value must be)
CHECKS = {
    "char": (_is_text, "a text"),
    "text": (_is_text, "a text"),
    "html": (_is_text, "a text"),
    "selection": (_is_selection, "one of the field's values"),
    "integer": (_is_integer, "a whole number"),
    "float": (_is_number, "a finite number below 1e15"),
    "monetary": (_is_number, "a finite number below 1e15"),
    "boolean": (_is_boolean, "true or false"),
    "many2one": (_is_record_id, "the id of an existing record"),
    "date": (_is_date, "a date"),
    "datetime": (_is_date, "a date and time"),
}


def check_vals(records, vals):
    """Refuse (ValidationError ``[bad_value]``) the values of ``vals`` (dict for
    create/write on ``records``' model) whose type or range does not fit their field:
    texts are str without NUL, integers and ids fit PostgreSQL's integer, floats and
    amounts are finite and below 1e15, many2one ids exist, selections are among their
    keys. False/None (empty) is always accepted. Relational lists (x2many commands)
    are left to the ORM."""
    for name, value in vals.items():
        field = records._fields.get(name)
        if field is None:
            _refuse(records, name, value, "a field of the model")
        if value is False or value is None or field.type not in CHECKS:
            continue
        check, what = CHECKS[field.type]
        if not check(value, field, records.env):
            _refuse(records, name, value, what)
