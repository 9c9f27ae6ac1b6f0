"""CEL (Common Expression Language, via cel-python) for the whole suite.

Eligibility expressions, entitlement conditions and formulas all go through here:
expressions are compiled once per text and cached; activations are built from an
explicit allow-list of registrant facts, read with one query per batch.

Activation (documented in ``readme/USAGE.md``, "CEL"):
- ``me``: the beneficiary: ``id_number``, ``age``, ``gender``, ``birthdate`` (ISO
  string), ``has_disability``, ``is_pregnant``, ``household_size``, ``is_group``. A fact
  that is not known (no birthdate, hence no age) is absent: an expression that reads it
  fails on that registrant, who is then skipped and counted.
- ``members``: for a household, the list of its active members (same facts); empty
  for an individual.
- what the caller adds, e.g. ``base_amount`` / ``base_quantity`` (doubles).
"""

import functools
import logging
import math
import re
import threading
from datetime import date

import celpy
from celpy import celtypes
from dateutil.relativedelta import relativedelta

from odoo import _
from odoo.exceptions import ValidationError

_logger = logging.getLogger(__name__)

# cel-python's runners log every evaluation error at ERROR level ("Internal error"); this
# module counts and logs them itself (one warning per batch), so keep the runners quiet.
for _name in ("celpy.Transpiler", "celpy.CompiledRunner", "celpy.Evaluator", "celpy.InterpretedRunner"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

FACTS = (
    "id_number",
    "age",
    "gender",
    "birthdate",
    "has_disability",
    "is_pregnant",
    "household_size",
    "is_group",
)
# The compiled runner evaluates through a module-level global of cel-python: one
# evaluation at a time per process (threaded servers run several requests at once).
_EVAL_LOCK = threading.Lock()
# Only one runner class in the process: cel-python shares its parser between them.
_ENVIRONMENT = celpy.Environment(runner_class=celpy.CompiledRunner)
_COMPILE_LOCK = threading.Lock()


class CELRunError(Exception):
    """An expression failed on one activation (missing fact, type mismatch...)."""


@functools.lru_cache(maxsize=512)
def _compile(text):
    with _COMPILE_LOCK:
        return _ENVIRONMENT.program(_ENVIRONMENT.compile(text))


def check_expression(text, label):
    """Compile ``text``; raise ValidationError naming ``label`` with the parser's
    message and position when it does not compile. Returns True."""
    if not text or not text.strip():
        return True
    try:
        _compile(text.strip())
    except Exception as exc:
        line = getattr(exc, "line", None)
        where = _("line %(line)s, column %(column)s", line=line, column=exc.column) if line else ""
        raise ValidationError(
            _(
                "[invalid_expression] %(label)s is not a valid CEL expression (%(where)s):\n%(error)s",
                label=label,
                where=where,
                error=str(exc),
            )
        ) from None
    return True


def uses_members(text):
    return "members" in (text or "")


def referenced_facts(text):
    """The facts an expression can read: those whose name appears in its text."""
    return tuple(name for name in FACTS if re.search(r"\b%s\b" % name, text or ""))


def read_facts(env, partner_ids, names=FACTS):
    """Facts ``names`` of the registrants ``partner_ids`` (res.partner ids), one query.

    :return: dict {partner id: tuple of (name, value) pairs}, facts that are not known
        left out (hashable, so that identical activations evaluate once).
    """
    if not partner_ids:
        return {}
    env["res.partner"].flush_model(
        ["id_number", "gender", "birthdate", "has_disability", "is_pregnant", "household_size", "is_group"]
    )
    env.cr.execute(
        """SELECT id, id_number, gender, birthdate, has_disability, is_pregnant, household_size, is_group
           FROM res_partner WHERE id = ANY(%s)""",
        [list(partner_ids)],
    )
    today = date.today()
    wanted = set(names)
    facts = {}
    for pid, id_number, gender, birthdate, disability, pregnant, size, is_group in env.cr.fetchall():
        fact = {
            "has_disability": bool(disability),
            "is_pregnant": bool(pregnant),
            "household_size": size or 0,
            "is_group": bool(is_group),
        }
        if id_number:
            fact["id_number"] = id_number
        if gender:
            fact["gender"] = gender
        if birthdate:
            fact["birthdate"] = birthdate.isoformat()
            if "age" in wanted:
                fact["age"] = relativedelta(today, birthdate).years
        facts[pid] = tuple((k, v) for k, v in fact.items() if k in wanted)
    return facts


class Evaluator:
    """Evaluate one expression over batches of registrants.

    ``results(partner_ids, extra)`` returns {partner id: Python value} for the
    registrants on which it evaluated, and counts the others in ``self.errors``.
    Only the facts the expression names are read and converted, and registrants whose
    activations are identical are evaluated once.
    """

    def __init__(self, env, text, label):
        self.env = env
        self.text = text.strip()
        self.label = label
        check_expression(self.text, label)
        self.program = _compile(self.text)
        self.with_members = uses_members(self.text)
        self.names = referenced_facts(self.text)
        self.errors = 0
        self.first_error = None

    def results(self, partner_ids, extra=None):
        facts = read_facts(self.env, partner_ids, self.names)
        members = {}
        if self.with_members:
            groups = [pid for pid in partner_ids if dict(facts.get(pid, ())).get("is_group", True)]
            by_group = self.env["res.partner"].browse(groups).active_members_by_group()
            member_facts = read_facts(self.env, [m for ids in by_group.values() for m in ids], self.names)
            members = {gid: tuple(member_facts[m] for m in ids) for gid, ids in by_group.items()}
        extra_cel = {k: celpy.json_to_cel(v) for k, v in (extra or {}).items()}
        out = {}
        memo = {}
        for pid in partner_ids:
            key = (facts.get(pid, ()), members.get(pid, ()))
            if key in memo:
                value = memo[key]
            else:
                activation = {
                    "me": celpy.json_to_cel(dict(key[0])),
                    "members": celpy.json_to_cel([dict(m) for m in key[1]]),
                    **extra_cel,
                }
                try:
                    with _EVAL_LOCK:
                        value = to_python(self.program.evaluate(activation))
                except celpy.CELEvalError as exc:
                    value = exc
                except Exception as exc:
                    value = celpy.CELEvalError(repr(exc))
                memo[key] = value
            if isinstance(value, celpy.CELEvalError):
                self._count_error(pid, value)
                continue
            out[pid] = value
        return out

    def _count_error(self, pid, exc):
        self.errors += 1
        if self.first_error is None:
            self.first_error = "registrant %s: %s" % (pid, exc.args[0] if exc.args else exc)

    def log_errors(self):
        if self.errors:
            _logger.warning(
                "%s: CEL expression failed on %d registrant(s), who were skipped; first: %s",
                self.label,
                self.errors,
                self.first_error,
            )


def to_python(value):
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    return value


def positive_number(value):
    """``value`` as a float when it is a finite number > 0, else None (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None
