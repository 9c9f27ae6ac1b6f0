"""CEL (Common Expression Language) for the whole suite: checks at save and the
per-beneficiary evaluation.

Eligibility expressions, entitlement conditions and formulas run in SQL when
``cel_sql`` can compile them; this module evaluates the others per beneficiary with
the official CEL runtime (cel-expr-python, Google's C++ implementation), which gives
the specification's answers (cel-python's compiled runner does not: it returned true
for ``size(members.filter(m, m.gender == 'male' && m.age >= 18)) > 0`` on a man without
a birthdate, where the specification gives an error). Parsing at save stays with
cel-python (its messages give line and column), then the official checker types the
text over the declared variables. Expressions are compiled once per text and cached;
activations are built from an explicit allow-list of registrant facts, read with one
query per batch.

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
from cel_expr_python import cel as cel_runtime
from dateutil.relativedelta import relativedelta

from odoo import _
from odoo.exceptions import ValidationError

from . import cel_sql
from .refusal import coded

_logger = logging.getLogger(__name__)

# cel-python's runners log every evaluation error at ERROR level ("Internal error"); the
# parity tests run its interpreter as a reference, so keep them quiet.
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
# cel-python parses (messages with line and column); its parser is shared, hence the lock.
_PARSER = celpy.Environment()
_COMPILE_LOCK = threading.Lock()
# The official runtime's declarations: ``me`` and the members are maps of dyn facts (a
# fact may be absent), the caller's figures doubles.
_DYN_MAP = cel_runtime.Type.Map(cel_runtime.Type.STRING, cel_runtime.Type.DYN)
VARIABLES = {
    "me": _DYN_MAP,
    "members": cel_runtime.Type.List(_DYN_MAP),
    "base_amount": cel_runtime.Type.DOUBLE,
    "base_quantity": cel_runtime.Type.DOUBLE,
}
_RUNTIME = cel_runtime.NewEnv(variables=VARIABLES)


class CELRunError(Exception):
    """An expression failed on one activation (missing fact, type mismatch...)."""


@functools.lru_cache(maxsize=512)
def _parse(text):
    with _COMPILE_LOCK:
        return _PARSER.compile(text)


@functools.lru_cache(maxsize=512)
def _compile(text):
    """The official runtime's checked program for ``text`` (raises on a type error)."""
    return _RUNTIME.compile(text)


def check_expression(text, label):
    """Parse ``text`` (cel-python) and type-check it (the official runtime, over
    ``VARIABLES``); raise ValidationError ``[invalid_expression]`` naming ``label`` with
    the message and position when it fails. Returns True."""
    if not text or not text.strip():
        return True
    try:
        _parse(text.strip())
        _compile(text.strip())
    except Exception as exc:
        line = getattr(exc, "line", None)
        where = (
            _("line %(line)s, column %(column)s", line=line, column=exc.column) if line else _("type check")
        )
        raise ValidationError(
            coded(
                "invalid_expression",
                _(
                    "%(label)s is not a valid CEL expression (%(where)s):\n%(error)s",
                    label=label,
                    where=where,
                    error=str(exc),
                ),
            )
        ) from None
    return True


def uses_members(text):
    return "members" in (text or "")


def referenced_facts(text):
    """The facts an expression can read: those whose name appears in its text."""
    return tuple(name for name in FACTS if re.search(r"\b%s\b" % name, text or ""))


def read_facts(env, partner_ids, names=FACTS, today=None):
    """Facts ``names`` of the registrants ``partner_ids`` (res.partner ids), one query;
    ``age`` at ``today`` (a date, default: today).

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
    today = today or date.today()
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
    """Evaluate one expression per beneficiary over batches of registrants, with the
    official CEL runtime.

    ``results(partner_ids, extra)`` returns {partner id: Python value} for the
    registrants on which it evaluated, and counts the others in ``self.errors``.
    Only the facts the expression names are read and converted, and registrants whose
    activations are identical are evaluated once.
    """

    def __init__(self, env, text, label, today=None):
        self.env = env
        self.text = text.strip()
        self.label = label
        self.today = today
        check_expression(self.text, label)
        self.program = _compile(self.text)
        self.with_members = uses_members(self.text)
        self.names = referenced_facts(self.text)
        self.errors = 0
        self.first_error = None

    def results(self, partner_ids, extra=None):
        facts = read_facts(self.env, partner_ids, self.names, self.today)
        members = {}
        if self.with_members:
            groups = [pid for pid in partner_ids if dict(facts.get(pid, ())).get("is_group", True)]
            by_group = self.env["res.partner"].browse(groups).active_members_by_group()
            member_facts = read_facts(
                self.env, [m for ids in by_group.values() for m in ids], self.names, self.today
            )
            members = {gid: tuple(member_facts[m] for m in ids) for gid, ids in by_group.items()}
        out = {}
        memo = {}
        for pid in partner_ids:
            key = (facts.get(pid, ()), members.get(pid, ()))
            if key in memo:
                value = memo[key]
            else:
                value = evaluate(self.program, dict(key[0]), [dict(m) for m in key[1]], extra)
                memo[key] = value
            if isinstance(value, CELRunError):
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


def evaluate(program, me, members, extra=None):
    """Evaluate a compiled ``program`` (see :func:`compile_runtime`) on one activation.

    :param me: dict of the registrant's facts; ``members``: list of such dicts;
        ``extra``: dict of the caller's variables (e.g. ``{"base_amount": 12.5}``).
    :return: the Python value (bool, int, float, str, list), or a :class:`CELRunError`
        (returned, not raised) when the expression errors on this activation.
    """
    try:
        result = program.eval(data={"me": me, "members": members, **(extra or {})})
        if result.type() == cel_runtime.Type.ERROR:
            return CELRunError(str(result.value()))
        return result.plain_value()
    except Exception as exc:  # the runtime's own failures count as errors on this registrant
        return CELRunError(repr(exc))


def compile_runtime(text):
    """The official runtime's program for ``text`` (cached; raises when it does not check)."""
    return _compile(text.strip())


def positive_number(value):
    """``value`` as a float when it is a finite number > 0, else None (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def path_label(text, extra_types=None):
    """Which path the CEL ``text`` takes, for the forms: "" without a text, else
    "evaluated in SQL" or "evaluated per beneficiary: <why>" (cel_sql's reason).

    :param extra_types: {variable: CEL type} the caller binds (``{"base_amount": "double"}``).
    """
    if not text or not text.strip():
        return ""
    in_sql, reason = cel_sql.sql_path(text, extra_types)
    if in_sql and cel_sql.uses_member_facts(text, extra_types):
        return _("evaluated in SQL, members' facts read from the household summary")
    if in_sql:
        return _("evaluated in SQL")
    return _("evaluated per beneficiary: %s", reason)
