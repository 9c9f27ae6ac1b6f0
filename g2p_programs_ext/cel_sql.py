"""CEL -> SQL: eligibility expressions, conditions and formulas as PostgreSQL expressions.

The CEL text is parsed with cel-python's parser (a lark tree) and each sub-expression
becomes an SQL expression (``odoo.tools.SQL``) of a known type whose NULL stands for a
CEL *error*. PostgreSQL's three-valued logic then gives the CEL specification's
commutative error absorption for free (``false AND NULL`` is false, ``true AND NULL`` is
NULL, ``true OR NULL`` is true); every other operator propagates NULL. What can error
(a missing fact, a division by zero, an int64 overflow, a type mismatch at runtime)
yields NULL; PostgreSQL's own errors (bigint overflow, float overflow or division by
zero) never fire: the helper functions of ``FUNCTIONS`` check first.

The answers are those of the official runtime (cel-expr-python, cel-cpp) over the
activation of ``cel.py`` (``me`` and ``members`` maps of ``dyn`` facts): heterogeneous
equality (``1 == 1.0`` true, ``1 == 'a'`` false), int/double ordering through the
double, NaN unordered, no implicit int/double arithmetic (an error), strings ordered by
code point. ``tests/test_cel_sql.py`` proves it against that runtime, cel-python's
interpreter and the cel-spec conformance cases.

What has no faithful SQL form here raises :class:`Unsupported` with the reason the forms
show (``matches``, maps, ternaries whose branches differ in type, ...): the caller then
evaluates per beneficiary.

Usage::

    compiled = compile_expression(text, extra={"base_amount": 12.5})
    sql = compiled.sql("p", today)   # over res_partner aliased p
"""

import functools
import re
from dataclasses import dataclass
from datetime import date, timedelta

from celpy.celparser import CELParser
from dateutil.relativedelta import relativedelta
from lark import Token, Tree

from odoo.tools import SQL

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

# The registrant facts of the activation (cel.FACTS): CEL type and SQL over a
# res_partner alias. NULL = the fact is absent (an error when read), as in cel.read_facts.
FACT_TYPES = {
    "id_number": "string",
    "age": "int",
    "gender": "string",
    "birthdate": "string",
    "has_disability": "bool",
    "is_pregnant": "bool",
    "household_size": "int",
    "is_group": "bool",
}

# PostgreSQL helpers: CEL's int64 and IEEE double arithmetic without PostgreSQL's own
# errors (which would abort the whole statement). LANGUAGE sql + IMMUTABLE: the planner
# inlines them. Installed by g2p.program's init().
FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION cel_int_add(a bigint, b bigint) RETURNS bigint
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT CASE WHEN (b > 0 AND a > 9223372036854775807 - b) OR (b < 0 AND a < -9223372036854775808 - b)
                   THEN NULL ELSE a + b END $$""",
    """CREATE OR REPLACE FUNCTION cel_int_sub(a bigint, b bigint) RETURNS bigint
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT CASE WHEN (b < 0 AND a > 9223372036854775807 + b) OR (b > 0 AND a < -9223372036854775808 + b)
                   THEN NULL ELSE a - b END $$""",
    """CREATE OR REPLACE FUNCTION cel_int_mul(a bigint, b bigint) RETURNS bigint
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT CASE WHEN a::numeric * b BETWEEN -9223372036854775808 AND 9223372036854775807
                   THEN a * b END $$""",
    """CREATE OR REPLACE FUNCTION cel_int_div(a bigint, b bigint) RETURNS bigint
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT CASE WHEN b = 0 OR (a = -9223372036854775808 AND b = -1) THEN NULL ELSE a / b END $$""",
    """CREATE OR REPLACE FUNCTION cel_int_mod(a bigint, b bigint) RETURNS bigint
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT CASE WHEN b = 0 OR (a = -9223372036854775808 AND b = -1) THEN NULL ELSE mod(a, b) END $$""",
    """CREATE OR REPLACE FUNCTION cel_int_neg(a bigint) RETURNS bigint
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT CASE WHEN a = -9223372036854775808 THEN NULL ELSE -a END $$""",
    # a + b: exact unless both are beyond 2^1022; then halved (exact) and the overflow decided
    """CREATE OR REPLACE FUNCTION cel_dbl_add(a float8, b float8) RETURNS float8
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT CASE WHEN abs(a) < 4.49423283715579e307 AND abs(b) < 4.49423283715579e307 THEN a + b
                   WHEN a = 'NaN' OR b = 'NaN' THEN 'NaN'::float8
                   WHEN abs(a) = 'Infinity' OR abs(b) = 'Infinity' THEN a + b
                   WHEN abs(a / 2 + b / 2) >= 8.98846567431158e307 THEN sign(a / 2 + b / 2) * 'Infinity'::float8
                   ELSE (a / 2 + b / 2) * 2 END $$""",
    """CREATE OR REPLACE FUNCTION cel_dbl_mul(a float8, b float8) RETURNS float8
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT CASE WHEN (a = 0 OR abs(a) BETWEEN 1e-150 AND 1e150) AND (b = 0 OR abs(b) BETWEEN 1e-150 AND 1e150)
                   THEN a * b
                   WHEN a = 0 OR b = 0 THEN a * b
                   WHEN a = 'NaN' OR b = 'NaN' OR abs(a) = 'Infinity' OR abs(b) = 'Infinity' THEN a * b
                   WHEN ln(abs(a)) + ln(abs(b)) > 709.78 THEN sign(a) * sign(b) * 'Infinity'::float8
                   WHEN ln(abs(a)) + ln(abs(b)) < -744.0 THEN sign(a) * sign(b) * 0.0::float8
                   ELSE a * b END $$""",
    """CREATE OR REPLACE FUNCTION cel_dbl_div(a float8, b float8) RETURNS float8
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT CASE WHEN b = 0 THEN
                        CASE WHEN a = 0 OR a = 'NaN' THEN 'NaN'::float8
                             WHEN (a > 0) = (left(b::text, 1) <> '-') THEN 'Infinity'::float8
                             ELSE '-Infinity'::float8 END
                   WHEN (a = 0 OR abs(a) BETWEEN 1e-150 AND 1e150) AND abs(b) BETWEEN 1e-150 AND 1e150
                   THEN a / b
                   WHEN a = 0 THEN a / b
                   WHEN a = 'NaN' OR b = 'NaN' OR abs(a) = 'Infinity' OR abs(b) = 'Infinity' THEN a / b
                   WHEN ln(abs(a)) - ln(abs(b)) > 709.78 THEN sign(a) * sign(b) * 'Infinity'::float8
                   WHEN ln(abs(a)) - ln(abs(b)) < -744.0 THEN sign(a) * sign(b) * 0.0::float8
                   ELSE a / b END $$""",
    # CEL int(double): truncation, an error out of int64's range or on NaN
    """CREATE OR REPLACE FUNCTION cel_dbl_int(a float8) RETURNS bigint
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT CASE WHEN a > -9.223372036854775807e18 AND a < 9.223372036854775807e18
                   THEN trunc(a)::bigint END $$""",
    # The ``age`` field's rule (relativedelta(today, birthdate).years): the whole years
    # n with birthdate + n years <= today (29 February + 1 year = 28 February).
    """CREATE OR REPLACE FUNCTION cel_age(b date, t date) RETURNS bigint
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT (date_part('year', t) - date_part('year', b))::bigint
              - CASE WHEN b + make_interval(years => (date_part('year', t) - date_part('year', b))::int) > t
                     THEN 1 ELSE 0 END $$""",
    # odoo.tools.float_round(x, precision_rounding=r) (HALF-UP), step for step in IEEE
    # doubles (epsilon 2**(log2|x/r| - 52), then round half even), for generation's
    # INSERT ... SELECT
    """CREATE OR REPLACE FUNCTION g2p_float_round(x float8, r float8) RETURNS float8
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT CASE WHEN r = 0 OR x = 0 THEN 0.0::float8
                   ELSE round(x / r + sign(x / r) * power(2::float8, ln(abs(x / r)) / ln(2::float8) - 52)) * r
              END $$""",
]

NUMERIC = ("int", "double")


class Unsupported(Exception):
    """The expression has no faithful SQL form here; ``args[0]`` says why (shown on forms)."""


@dataclass(frozen=True)
class Val:
    """A compiled scalar: ``sql`` (NULL = a CEL error) of CEL type ``type``
    (bool, int, double, string, or ``error`` for a value known to be an error)."""

    sql: SQL
    type: str
    # set on an int literal (its value) and on an ``age`` fact (the birthdate column):
    # ``age < 5`` then compiles to a comparison of the birthdate with a date
    const: int = None
    birthdate: str = None


def _err(type_="error"):
    return Val(SQL("NULL"), type_)


_SQL_TYPES = {"bool": "boolean", "int": "bigint", "double": "float8", "string": "text", "error": "boolean"}


def _typed(val, type_=None):
    """``val`` as an SQL expression of its own type (or of ``type_`` for an error)."""
    type_ = type_ or val.type
    if val.type == "error":
        return SQL("NULL::%s" % _SQL_TYPES.get(type_, "boolean"))
    return val.sql


@dataclass
class _Row:
    """A list element bound by a macro: a member (res_partner ``alias``) or a scalar ``e``."""

    alias: str
    kind: str  # "partner" or a scalar CEL type


@dataclass
class _List:
    """A list as rows: ``source`` is an SQL FROM body (with its WHERE) whose rows, under
    ``alias``, are its elements (a res_partner row for ``kind`` "partner", else a column
    ``e`` of that CEL type); ``keep`` (SQL over ``alias``) says whether the row is an
    element (true), not one (false), or makes the whole list an error (NULL); None:
    every row is an element."""

    source: SQL
    alias: str
    kind: str
    keep: object = None
    # for the members list and its filters: (membership alias, FROM body without the
    # correlation to `me`), for a grouped join
    grouped: object = None
    # always true, but over the list's own rows: an aggregate whose argument names only
    # outer columns would belong to the outer query (PostgreSQL's rule)
    anchor: object = None

    def kept(self):
        """``keep`` anchored to the list's rows (true/false/NULL as ``keep``)."""
        keep = self.keep if self.keep is not None else SQL("true")
        return SQL("(%s AND %s)", keep, self.anchor)


class Compiler:
    """Compile one parsed CEL expression. ``extra``: names of caller variables
    (e.g. ``base_amount``) -> CEL type; their values are SQL parameters."""

    def __init__(self, extra_types, prefix="", hoist=None, member_facts=False):
        self.extra_types = dict(extra_types)
        self.counter = 0
        self.uses_members = False
        self.prefix = prefix
        # hoist: None, or the SQL of the registrants' ids the query covers: then the
        # aggregates over `members` at the top level (not inside another macro, not
        # reading `me`) are computed by one grouped join (self.joins()) instead of
        # one correlated subquery per registrant
        self.hoist = hoist
        self.hoisted = []  # SQL of the hoisted aggregates: columns v1, v2... of one grouped join
        self.grouped = None
        self.depth = 0
        # member_facts (with hoist): the aggregates the household summary answers exactly
        # (g2p_household_member_facts, see _facts_exists and _facts_size) read it instead
        # of the members
        self.member_facts = member_facts and hoist is not None
        self.facts_used = False

    # -- entry ---------------------------------------------------------------
    def compile(self, tree, me_alias, today, extra_values):
        self.me = me_alias
        self.today = today
        self.extra_values = extra_values
        self.scope = {}
        return self.expr(tree)

    def _alias(self, prefix):
        self.counter += 1
        return "%s%s%d" % (self.prefix, prefix, self.counter)

    # -- tree walking ---------------------------------------------------------
    def expr(self, node):
        """Dispatch on the lark rule; passes through single-child wrappers."""
        if isinstance(node, Token):
            raise Unsupported("token %s" % node.type)
        method = getattr(self, "r_" + node.data, None)
        if method is not None:
            return method(node)
        if len(node.children) == 1:
            return self.expr(node.children[0])
        raise Unsupported("`%s` has no SQL form here" % node.data)

    def value(self, node):
        out = self.expr(node)
        if isinstance(out, _List):
            raise Unsupported("a list used as a value has no SQL form here")
        if isinstance(out, _Row):
            if out.kind == "partner":
                raise Unsupported("a member used as a value has no SQL form here")
            return Val(SQL("%s.e" % out.alias), out.kind)
        return out

    def as_list(self, node):
        out = self.expr(node)
        if isinstance(out, _List):
            return out
        if isinstance(out, Val) and out.type == "error":
            return None  # an error where a list is expected
        raise Unsupported("only `members`, its filter/map and list literals are lists here")

    def r_expr(self, node):
        if len(node.children) == 1:
            return self.expr(node.children[0])
        cond = self._bool(self.value(node.children[0]))
        a, b = self.value(node.children[1]), self.value(node.children[2])
        type_ = self._unify(a, b, "`? :`")
        return Val(
            SQL(
                "(CASE WHEN %s THEN %s WHEN NOT %s THEN %s END)",
                cond,
                _typed(a, type_),
                cond,
                _typed(b, type_),
            ),
            type_,
        )

    def _unify(self, a, b, what):
        if a.type == "error":
            return b.type
        if b.type == "error" or a.type == b.type:
            return a.type
        raise Unsupported("%s with branches of different types has no SQL form here" % what)

    @staticmethod
    def _bool(val):
        """A condition operand: non-bools are errors (absorbed like any error)."""
        return val.sql if val.type == "bool" else SQL("NULL::boolean")

    def r_conditionalor(self, node):
        if len(node.children) == 1:
            return self.expr(node.children[0])
        a, b = self.value(node.children[0]), self.value(node.children[1])
        return Val(SQL("(%s OR %s)", self._bool(a), self._bool(b)), "bool")

    def r_conditionaland(self, node):
        if len(node.children) == 1:
            return self.expr(node.children[0])
        a, b = self.value(node.children[0]), self.value(node.children[1])
        return Val(SQL("(%s AND %s)", self._bool(a), self._bool(b)), "bool")

    def r_relation(self, node):
        if len(node.children) == 1:
            return self.expr(node.children[0])
        op_node, right = node.children
        op = op_node.data.split("_")[1]
        if op == "in":
            return self._in(self.value(op_node.children[0]), right)
        return self._compare(op, self.value(op_node.children[0]), self.value(right))

    def _compare(self, op, a, b):
        if "error" in (a.type, b.type):
            return _err("bool")
        if op in ("eq", "ne"):
            eq = self._equal(a, b)
            return Val(eq if op == "eq" else SQL("(NOT %s)", eq), "bool")
        sql_op = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
        by_date = self._age_by_date(op, a, b)
        if by_date is not None:
            return by_date
        if a.type in NUMERIC and b.type in NUMERIC:
            x, y = self._as_double(a, b)
            if a.type == b.type == "int":
                return Val(SQL("(%s %s %s)" % ("%s", sql_op, "%s"), a.sql, b.sql), "bool")
            # IEEE: NaN is unordered (PostgreSQL orders it above everything)
            return Val(
                SQL(
                    "(CASE WHEN %s = 'NaN' OR %s = 'NaN' THEN false ELSE %s %s %s END)"
                    % ("%s", "%s", "%s", sql_op, "%s"),
                    x,
                    y,
                    x,
                    y,
                ),
                "bool",
            )
        if a.type == b.type == "string":
            return Val(SQL('(%s COLLATE "C" %s %s)' % ("%s", sql_op, "%s"), a.sql, b.sql), "bool")
        if a.type == b.type == "bool":
            return Val(SQL("(%s %s %s)" % ("%s", sql_op, "%s"), a.sql, b.sql), "bool")
        return _err("bool")  # no matching overload

    @staticmethod
    def _as_double(a, b):
        x = SQL("%s::float8", a.sql) if a.type == "int" else a.sql
        y = SQL("%s::float8", b.sql) if b.type == "int" else b.sql
        return x, y

    def _age_by_date(self, op, a, b):
        """``age <op> N`` (or ``N <op> age``, N an int literal from 0 to 150) as a
        comparison of the birthdate with a date (the same answer, NULL included, as
        ``cel_age``: age >= N exactly when birthdate + N years <= today, and that holds
        up to a cutoff date); None otherwise."""
        if a.birthdate is None and b.birthdate is not None:
            a, b = b, a
            op = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}[op]
        if a.birthdate is None or b.const is None or not 0 <= b.const <= 150:
            return None
        n = b.const + 1 if op in ("le", "gt") else b.const  # age <= N: age < N + 1
        at_least = op in ("ge", "gt")  # age >= n, else age < n
        return Val(
            SQL(
                "(%s %s %s::date)" % (a.birthdate, "<=" if at_least else ">", "%s"),
                _age_cutoff(self.today, n),
            ),
            "bool",
        )

    def _equal(self, a, b):
        """SQL bool for CEL ``a == b`` (neither an error type): heterogeneous equality."""
        if a.type in NUMERIC and b.type in NUMERIC:
            if a.type == b.type == "int":
                return SQL("(%s = %s)", a.sql, b.sql)
            x, y = self._as_double(a, b)
            return SQL("(%s = %s AND %s <> 'NaN')", x, y, x)
        if a.type == b.type:
            return SQL("(%s = %s)", a.sql, b.sql)
        # different types: false, but an error operand stays an error
        return SQL("(CASE WHEN %s IS NULL OR %s IS NULL THEN NULL ELSE false END)", a.sql, b.sql)

    def _in(self, a, right):
        lst = self.as_list(right)
        if lst is None or a.type == "error":
            return _err("bool")
        if lst.kind == "partner":
            raise Unsupported("`in` over members has no SQL form here")
        elem = Val(SQL("%s.e" % lst.alias), lst.kind) if lst.kind != "error" else _err()
        eq = self._equal(a, elem) if elem.type != "error" else SQL("NULL::boolean")
        keep = lst.kept()
        return Val(
            SQL(
                "(SELECT CASE WHEN %s IS NULL THEN NULL WHEN bool_or(%s IS NULL) THEN NULL "
                "ELSE coalesce(bool_or(%s AND %s), false) END FROM %s)",
                a.sql,
                keep,
                keep,
                eq,
                lst.source,
            ),
            "bool",
        )

    def r_addition(self, node):
        if len(node.children) == 1:
            return self.expr(node.children[0])
        op_node, right = node.children
        return self._arith(op_node.data.split("_")[1], self.value(op_node.children[0]), self.value(right))

    def r_multiplication(self, node):
        if len(node.children) == 1:
            return self.expr(node.children[0])
        op_node, right = node.children
        return self._arith(op_node.data.split("_")[1], self.value(op_node.children[0]), self.value(right))

    def _arith(self, op, a, b):
        if "error" in (a.type, b.type):
            return _err()
        if a.type == b.type == "int":
            return Val(SQL("cel_int_%s(%s, %s)" % (op, "%s", "%s"), a.sql, b.sql), "int")
        if a.type == b.type == "double":
            if op == "mod":
                return _err()
            if op == "sub":
                return Val(SQL("cel_dbl_add(%s, -%s)", a.sql, b.sql), "double")
            return Val(SQL("cel_dbl_%s(%s, %s)" % (op, "%s", "%s"), a.sql, b.sql), "double")
        if a.type == b.type == "string" and op == "add":
            return Val(SQL("(%s || %s)", a.sql, b.sql), "string")
        return _err()  # no implicit conversion in CEL

    def r_unary(self, node):
        if len(node.children) == 1:
            return self.expr(node.children[0])
        op_node, operand = node.children
        # CEL's parsers drop an even run of one unary operator (`!!x` is `x`, `--x` is `x`,
        # whatever x's type), as the official runtime does; cel-python's parser keeps it
        if (
            isinstance(operand, Tree)
            and operand.data == "unary"
            and len(operand.children) == 2
            and isinstance(operand.children[0], Tree)
            and operand.children[0].data == op_node.data
        ):
            return self.expr(operand.children[1])
        val = self.value(operand)
        if op_node.data == "unary_not":
            return Val(SQL("(NOT %s)", self._bool(val)), "bool")
        if op_node.data == "unary_neg":
            if val.type == "int":
                return Val(SQL("cel_int_neg(%s)", val.sql), "int")
            if val.type == "double":
                return Val(SQL("(-%s)", val.sql), "double")
            return _err()
        raise Unsupported("`%s` has no SQL form here" % op_node.data)

    def r_paren_expr(self, node):
        return self.expr(node.children[0])

    # -- literals and names -----------------------------------------------------
    def r_literal(self, node):
        token = node.children[0]
        text = str(token)
        if token.type == "INT_LIT":
            value = int(text, 0)
            if not INT_MIN <= value <= INT_MAX:
                raise Unsupported("an integer literal out of int64")
            # CAST(-9223372036854775808 AS bigint): a "-x::bigint" would cast before negating
            return Val(SQL("CAST(%s AS bigint)", value), "int", const=value)
        if token.type == "FLOAT_LIT":
            # given as text: a numeric literal has no negative zero
            return Val(SQL("CAST(%s AS float8)", repr(float(text))), "double")
        if token.type in ("STRING_LIT", "MLSTRING_LIT"):
            if text[:1] in "rRbB" or "\\" in text:
                raise Unsupported("strings with escapes or prefixes have no SQL form here")
            quote = 3 if token.type == "MLSTRING_LIT" else 1
            return Val(SQL("%s::text", text[quote:-quote]), "string")
        if token.type == "BOOL_LIT":
            return Val(SQL("true" if text == "true" else "false"), "bool")
        raise Unsupported("the literal `%s` has no SQL form here" % text)

    def r_ident(self, node):
        name = str(node.children[0])
        if name in self.scope:
            return self.scope[name]
        if name == "me":
            return _Row(self.me, "partner")
        if name == "members":
            self.uses_members = True
            return self._members_list()
        if name in self.extra_types:
            type_ = self.extra_types[name]
            value = self.extra_values[name]
            value = repr(float(value)) if type_ == "double" else value  # text: -0.0, inf, nan
            return Val(SQL("CAST(%s AS %s)" % ("%s", _SQL_TYPES[type_]), value), type_)
        if name in ("true", "false"):
            return Val(SQL(name), "bool")
        raise Unsupported("`%s` is not a variable here" % name)

    def _members_list(self):
        """The household's active members (as cel.py's activation): rows of res_partner.
        At the top level (outside any macro) every `members` has the same alias, so that
        the hoisted aggregates share one grouped join."""
        alias = self._alias("m") if self.depth else "%sm0" % self.prefix
        gm = alias + "_gm"
        source = SQL(
            "g2p_group_membership %s JOIN res_partner %s ON %s.id = %s.individual_id "
            "WHERE %s.group_id = %s.id AND %s.end_date IS NULL" % (gm, alias, alias, gm, gm, self.me, gm)
        )
        lst = _List(source, alias, "partner", anchor=SQL("(%s.id IS NOT NULL)" % gm))
        lst.grouped = (
            gm,
            SQL(
                "g2p_group_membership %s JOIN res_partner %s ON %s.id = %s.individual_id "
                "WHERE %s.end_date IS NULL" % (gm, alias, alias, gm, gm)
            ),
        )
        return lst

    def r_list_lit(self, node):
        exprs = node.children[0].children if node.children and node.children[0] is not None else []
        items = [self.value(child) for child in exprs]
        types = {v.type for v in items} - {"error"}
        if any(v.type == "error" for v in items):
            return _err()
        if len(types) > 1:
            raise Unsupported("a list of mixed types has no SQL form here")
        kind = types.pop() if types else "error"
        alias = self._alias("l")
        if not items:
            return _List(
                SQL("(SELECT NULL::boolean AS e WHERE false) %s" % alias),
                alias,
                kind,
                anchor=SQL("(%s IS NULL OR true)" % alias),
            )
        rows = SQL(", ").join(SQL("(%s)", v.sql) for v in items)
        source = SQL("(VALUES %s) %s(e)" % ("%s", alias), rows)
        return _List(
            source,
            alias,
            kind,
            keep=SQL("(%s.e IS NOT NULL OR NULL)" % alias),
            anchor=SQL("(%s IS NULL OR true)" % alias),
        )

    def r_member_dot(self, node):
        target, name = node.children
        row = self.expr(target)
        name = str(name)
        if isinstance(row, _Row) and row.kind == "partner":
            return self._fact(row.alias, name)
        if isinstance(row, Val) and row.type == "error":
            return _err()
        raise Unsupported("field selection on a non-map has no SQL form here")

    def _fact(self, alias, name):
        type_ = FACT_TYPES.get(name)
        if type_ is None:
            return _err()  # no such key: an error on every registrant
        if name == "age":
            return Val(
                SQL("cel_age(%s.birthdate, %%s::date)" % alias, self.today),
                "int",
                birthdate="%s.birthdate" % alias,
            )
        if name == "birthdate":
            return Val(SQL("to_char(%s.birthdate, 'YYYY-MM-DD')" % alias), "string")
        if name in ("id_number", "gender"):
            return Val(SQL("NULLIF(%s.%s, '')::text" % (alias, name)), "string")
        if name == "household_size":
            return Val(SQL("coalesce(%s.household_size, 0)::bigint" % alias), "int")
        return Val(SQL("coalesce(%s.%s, false)" % (alias, name)), "bool")

    def _present(self, alias, name):
        """SQL bool: the fact ``name`` is in the member/registrant's map (``has()``)."""
        if name not in FACT_TYPES:
            return SQL("false")
        column = "birthdate" if name in ("age", "birthdate") else name
        if name in ("id_number", "gender"):
            return SQL("(coalesce(%s.%s, '') <> '')" % (alias, column))
        if name in ("age", "birthdate"):
            return SQL("(%s.%s IS NOT NULL)" % (alias, column))
        return SQL("true")

    def r_ident_arg(self, node):
        name = str(node.children[0])
        args = _args(node.children[1] if len(node.children) > 1 else None)
        if name == "has" and len(args) == 1:
            return self._has(args[0])
        if name == "size" and len(args) == 1:
            return self._size(args[0])
        if name == "dyn" and len(args) == 1:
            return self.expr(args[0])
        if name in ("int", "double", "string") and len(args) == 1:
            return self._convert(name, self.value(args[0]))
        raise Unsupported("`%s()` has no SQL form here" % name)

    def _has(self, arg):
        node = arg
        while isinstance(node, Tree) and node.data != "member_dot" and len(node.children) == 1:
            node = node.children[0]
        if not (isinstance(node, Tree) and node.data == "member_dot"):
            raise Unsupported("`has()` takes a field selection")
        row = self.expr(node.children[0])
        if not (isinstance(row, _Row) and row.kind == "partner"):
            raise Unsupported("`has()` on a non-map has no SQL form here")
        return Val(self._present(row.alias, str(node.children[1])), "bool")

    def _size(self, arg):
        counted = self._facts_size(arg)
        if counted is not None:
            return counted
        out = self.expr(arg)
        if isinstance(out, _List):
            if self._facts_ready(out):
                # size(members): the summary's count (no row: no active member)
                return Val(SQL("coalesce(%s.member_count, 0)::bigint" % self._facts()), "int")
            return self._aggregate(out, "size", None)
        if isinstance(out, _Row):
            raise Unsupported("`size()` of a map has no SQL form here")
        if out.type == "string":
            return Val(SQL("char_length(%s)::bigint", out.sql), "int")
        return _err()

    def _convert(self, name, val):
        if val.type == "error":
            return _err()
        if name == "double":
            if val.type == "double":
                return val
            if val.type == "int":
                return Val(SQL("%s::float8", val.sql), "double")
            raise Unsupported("`double()` of a %s has no SQL form here" % val.type)
        if name == "int":
            if val.type == "int":
                return val
            if val.type == "double":
                return Val(SQL("cel_dbl_int(%s)", val.sql), "int")
            raise Unsupported("`int()` of a %s has no SQL form here" % val.type)
        if val.type == "string":
            return val
        if val.type == "int":
            return Val(SQL("%s::text", val.sql), "string")
        raise Unsupported("`string()` of a %s has no SQL form here" % val.type)

    def r_member_dot_arg(self, node):
        target, method = node.children[0], str(node.children[1])
        args = _args(node.children[2] if len(node.children) > 2 else None)
        if method in ("exists", "all", "exists_one", "filter", "map"):
            return self._macro(target, method, args)
        if method == "size" and not args:
            return self._size(target)
        if method in ("startsWith", "endsWith", "contains") and len(args) == 1:
            a, b = self.value(target), self.value(args[0])
            if "error" in (a.type, b.type) or a.type != "string" or b.type != "string":
                return _err("bool")
            template = {
                "startsWith": "(left(%s, char_length(%s)) = %s)",
                "endsWith": "(right(%s, char_length(%s)) = %s)",
                # '' is in every string, but not in an absent one (NULL: an error)
                "contains": "(strpos(%s, %s) > 0 OR (%s = '' AND %s IS NOT NULL))",
            }[method]
            args = (a.sql, b.sql, b.sql, a.sql) if method == "contains" else (a.sql, b.sql, b.sql)
            return Val(SQL(template, *args), "bool")
        raise Unsupported("`%s` has no SQL form here" % method)

    def _macro(self, target, method, args):
        if len(args) not in (2, 3) or (len(args) == 3 and method != "map"):
            raise Unsupported("`%s` with %d arguments" % (method, len(args)))
        var = _var_name(args[0])
        lst = self.as_list(target)
        if lst is None:
            return _err("bool" if method in ("exists", "all", "exists_one") else "error")
        if method == "exists" and len(args) == 2 and self._facts_ready(lst):
            atoms = self._facts_atoms(args[1], var)
            if atoms is not None:
                return self._facts_exists(atoms)
        row = _Row(lst.alias, lst.kind)
        saved = self.scope.get(var)
        self.scope[var] = row
        self.depth += 1
        try:
            pred = self.value(args[1])
            mapped = self.value(args[2]) if len(args) == 3 else None
        finally:
            self.depth -= 1
            if saved is None:
                self.scope.pop(var, None)
            else:
                self.scope[var] = saved
        if method in ("exists", "all", "exists_one"):
            return self._aggregate(lst, method, self._bool(pred))
        if method == "filter":
            return self._derived(lst, self._bool(pred), None)
        if mapped is None:  # map(x, f)
            return self._derived(lst, None, pred)
        return self._derived(lst, self._bool(pred), mapped)

    def _derived(self, lst, pred, mapped):
        """filter/map of ``lst``: filter keeps its rows with a new ``keep``; map makes rows
        of a subquery whose ``e`` is the mapped value and ``k`` the keep."""
        keep = lst.keep if lst.keep is not None else SQL("true")
        if pred is not None:
            keep = SQL(
                "(CASE WHEN %s IS NULL THEN NULL WHEN NOT %s THEN false ELSE %s END)", keep, keep, pred
            )
        if mapped is None:
            return _List(lst.source, lst.alias, lst.kind, keep, lst.grouped, lst.anchor)
        if mapped.type == "error":
            keep_map = SQL("(CASE WHEN %s IS NULL THEN NULL WHEN NOT %s THEN false END)", keep, keep)
        else:
            keep_map = SQL(
                "(CASE WHEN %s IS NULL THEN NULL WHEN NOT %s THEN false WHEN %s IS NULL THEN NULL ELSE true END)",
                keep,
                keep,
                mapped.sql,
            )
        alias = self._alias("s")
        source = SQL(
            "(SELECT %s AS e, %s AS k FROM %s) %s" % ("%s", "%s", "%s", alias),
            _typed(mapped),
            keep_map,
            lst.source,
        )
        return _List(
            source, alias, mapped.type, SQL("%s.k" % alias), anchor=SQL("(%s IS NULL OR true)" % alias)
        )

    # Each reads the keep k and the predicate p once per row (a simple CASE evaluates
    # its operand once; identical aggregates are computed once): per member, 3 = the
    # list errs (k NULL), then for exists 2 = true, 1 = error, 0 = false (all: the
    # same for NOT p). size: an error adds 2^30 (int4: summed in bigint), beyond any household.
    _AGGREGATES = {
        "size": (
            "CASE WHEN sum(CASE %(k)s WHEN true THEN 1 WHEN false THEN 0 ELSE 1073741824 END) "
            ">= 1073741824 THEN NULL "
            "ELSE coalesce(sum(CASE %(k)s WHEN true THEN 1 WHEN false THEN 0 ELSE 1073741824 END), 0)::bigint END",
            "int",
            "0",
        ),
        "exists": (
            "CASE max(CASE %(k)s WHEN true THEN coalesce((%(p)s)::int * 2, 1) WHEN false THEN 0 ELSE 3 END) "
            "WHEN 3 THEN NULL WHEN 2 THEN true WHEN 1 THEN NULL ELSE false END",
            "bool",
            "false",
        ),
        "all": (
            "CASE max(CASE %(k)s WHEN true THEN coalesce((NOT %(p)s)::int * 2, 1) WHEN false THEN 0 ELSE 3 END) "
            "WHEN 3 THEN NULL WHEN 2 THEN false WHEN 1 THEN NULL ELSE true END",
            "bool",
            "true",
        ),
        "exists_one": (
            "CASE WHEN bool_or(%(k)s IS NULL) THEN NULL WHEN bool_or(%(k)s AND %(p)s IS NULL) THEN NULL "
            "ELSE count(*) FILTER (WHERE %(k)s AND %(p)s) = 1 END",
            "bool",
            "false",
        ),
    }

    def _aggregate(self, lst, method, pred):
        """size/exists/all/exists_one over ``lst``: a correlated subquery, or (hoisted)
        a column of a grouped join over all the households' members."""
        template, type_, empty = self._AGGREGATES[method]
        k = lst.kept()
        pred = pred if pred is not None else SQL("true")
        value = SQL(template, k=k, p=pred)
        if self.hoist is not None and not self.depth and lst.grouped and not _mentions(self.me, value):
            self.hoisted.append(value)
            self.grouped = lst.grouped
            name, column = "%sg" % self.prefix, "v%d" % len(self.hoisted)
            # no row: a household without active members (or an individual): the empty list
            return Val(
                SQL("(CASE WHEN %s.gid IS NULL THEN %s ELSE %s.%s END)" % (name, empty, name, column)), type_
            )
        return Val(SQL("(SELECT %s FROM %s)", value, lst.source), type_)

    # -- the household summary (g2p_household_member_facts) ---------------------
    # CEL: ``members.exists(m, A1 || ... || An)`` is true when some member makes some
    # Ai true; else an error when some member's disjunction errs (an Ai errs and none is
    # true); else false. With atoms Ai that each read one fact of the member, "some member
    # makes Ai true" is a question about the household's aggregate of that fact, and the
    # atoms below err only on a member without a birthdate (an absent age); a boolean fact
    # is always present. So: true when some atom's aggregate test holds, else an error
    # when an age atom is present and a member has no birthdate, else false; no summary
    # row = no active member = the empty list (false). The same answer as the grouped pass
    # and the official runtime (tests/test_cel_sql.py compares the three).
    _FACT_COUNTS = {"is_pregnant": "pregnant_count", "has_disability": "disability_count"}

    def _facts_ready(self, lst):
        """Whether ``lst`` is the household's plain ``members`` at the top level of a
        hoisted query with the summary enabled."""
        return (
            self.member_facts
            and not self.depth
            and lst.kind == "partner"
            and lst.keep is None
            and lst.grouped is not None
        )

    def _facts(self):
        self.facts_used = True
        return "%smf" % self.prefix

    def _facts_atoms(self, node, var):
        """The atoms of the predicate ``node`` (a disjunction of single-fact atoms over
        the member ``var``) as (SQL bool over the summary ``<prefix>mf``: some member makes the
        atom true, whether the atom errs on a member without a birthdate); None when it
        is not such a disjunction."""
        f = "%smf" % self.prefix
        node = _unwrap(node)
        if not isinstance(node, Tree):
            return None
        if node.data == "conditionalor" and len(node.children) == 2:
            left, right = self._facts_atoms(node.children[0], var), self._facts_atoms(node.children[1], var)
            return left + right if left is not None and right is not None else None
        if node.data == "relation" and len(node.children) == 2:
            age = self._facts_age_atom(node, var)
            if age is None:
                return None
            # as _age_by_date: age >= n exactly when the birthdate is on or before the cutoff
            at_least, cutoff = age
            if at_least:
                return [(SQL("(%s.birthdate_min <= %%s::date)" % f, cutoff), True)]
            return [(SQL("(%s.birthdate_max > %%s::date)" % f, cutoff), True)]
        name = _member_fact(node, var)
        if name in self._FACT_COUNTS:
            return [(SQL("(%s.%s > 0)" % (f, self._FACT_COUNTS[name])), False)]
        if node.data == "unary" and len(node.children) == 2 and node.children[0].data == "unary_not":
            name = _member_fact(node.children[1], var)
            if name in self._FACT_COUNTS:
                return [(SQL("(%s.member_count > %s.%s)" % (f, f, self._FACT_COUNTS[name])), False)]
        return None

    # CEL: ``size(members.filter(m, A))`` is an error when A errs on some member (filter
    # keeps no error), else the number of members that make A true. For one atom A that
    # reads one fact: a boolean fact is always present, so the summary's count (or the
    # member count minus it, for its negation); an age atom errs exactly on a member
    # without a birthdate, so an error when one lacks it, else the members born on or
    # before the atom's cutoff (age >= n), or after it (age < n), counted by a binary
    # search of the sorted birthdates. No summary row: no active member, 0.
    def _facts_size(self, arg):
        """``size(<arg>)`` from the summary (a Val of type int) when ``arg`` is
        ``members.filter(v, A)`` at the top level of a hoisted query with the summary
        enabled, A one atom :meth:`_facts_count` answers; None otherwise (then compiled
        as any list)."""
        if not self.member_facts or self.depth or "members" in self.scope:
            return None
        node = _unwrap(arg)
        if not (
            isinstance(node, Tree)
            and node.data == "member_dot_arg"
            and len(node.children) == 3
            and str(node.children[1]) == "filter"
        ):
            return None
        target = _unwrap(node.children[0])
        if not (isinstance(target, Tree) and target.data == "ident" and str(target.children[0]) == "members"):
            return None
        args = _args(node.children[2])
        if len(args) != 2:
            return None
        try:
            var = _var_name(args[0])
        except Unsupported:
            return None
        count = self._facts_count(args[1], var)
        if count is None:
            return None
        self.uses_members = True
        return Val(count, "int")

    def _facts_count(self, node, var):
        """SQL bigint over the summary: how many members make the single atom ``node``
        (over the member ``var``) true, NULL (an error) when an age atom meets a member
        without a birthdate; None when ``node`` is not such an atom."""
        f = "%smf" % self.prefix
        node = _unwrap(node)
        age = self._facts_age_atom(node, var)
        if age is not None:
            at_least, cutoff = age
            # born on or before the cutoff: width_bucket's binary search of the sorted array
            born_by = "width_bucket(%%s::date, %s.birthdates)" % f
            count = born_by if at_least else "cardinality(%s.birthdates) - %s" % (f, born_by)
            self._facts()
            return SQL(
                "(CASE WHEN %s.group_id IS NULL THEN 0 WHEN %s.birthdate_missing > 0 THEN NULL ELSE %s END)::bigint"
                % (f, f, count),
                cutoff,
            )
        name = _member_fact(node, var)
        if name in self._FACT_COUNTS:
            self._facts()
            return SQL("coalesce(%s.%s, 0)::bigint" % (f, self._FACT_COUNTS[name]))
        if (
            isinstance(node, Tree)
            and node.data == "unary"
            and len(node.children) == 2
            and node.children[0].data == "unary_not"
        ):
            name = _member_fact(node.children[1], var)
            if name in self._FACT_COUNTS:
                self._facts()
                return SQL("coalesce(%s.member_count - %s.%s, 0)::bigint" % (f, f, self._FACT_COUNTS[name]))
        return None

    def _facts_age_atom(self, node, var):
        """(at_least, cutoff) when ``node`` is ``<var>.age <op> N`` or ``N <op> <var>.age``
        (N an int literal from 0 to 150): the atom holds exactly when the birthdate is on
        or before ``cutoff`` (at_least) or after it (not at_least), as :meth:`_age_by_date`;
        None otherwise."""
        if not (isinstance(node, Tree) and node.data == "relation" and len(node.children) == 2):
            return None
        op_node, right = node.children
        op = op_node.data.split("_")[1] if isinstance(op_node, Tree) else None
        if op not in ("lt", "le", "gt", "ge"):
            return None
        left = op_node.children[0]
        if _member_fact(right, var) == "age":
            left, right = right, left
            op = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}[op]
        value = _int_literal(right)
        if _member_fact(left, var) != "age" or value is None or not 0 <= value <= 150:
            return None
        # age <= N: age < N + 1; age > N: age >= N + 1
        n = value + 1 if op in ("le", "gt") else value
        return op in ("ge", "gt"), _age_cutoff(self.today, n)

    def _facts_exists(self, atoms):
        f = self._facts()
        tests = SQL(" OR ").join(sql for sql, _errs in atoms)
        if any(errs for _sql, errs in atoms):
            return Val(
                SQL(
                    "(CASE WHEN %s THEN true WHEN %s.birthdate_missing > 0 THEN NULL ELSE false END)"
                    % ("%s", f),
                    tests,
                ),
                "bool",
            )
        return Val(SQL("coalesce(%s, false)", tests), "bool")

    def joins(self):
        """The LEFT JOINs of the hoisted aggregates: the household summary and the
        grouped pass over the memberships (SQL, empty without any)."""
        facts = SQL()
        if self.facts_used:
            f = "%smf" % self.prefix
            facts = SQL("LEFT JOIN g2p_household_member_facts %s ON %s.group_id = %s.id" % (f, f, self.me))
        if not self.hoisted:
            return facts
        return SQL("%s %s", facts, self._grouped_join())

    def _grouped_join(self):
        gm, body = self.grouped
        name = "%sg" % self.prefix
        columns = SQL(", ").join(
            SQL("%s AS v%d" % ("%s", i + 1), value) for i, value in enumerate(self.hoisted)
        )
        return SQL(
            "LEFT JOIN (SELECT %s.group_id AS gid, %s FROM %s AND %s.group_id IN %s GROUP BY 1) %s ON %s.gid = %s.id"
            % (gm, "%s", "%s", gm, "%s", name, name, self.me),
            columns,
            body,
            self.hoist,
        )


def _age_cutoff(today, years):
    """The last birthdate b with b + ``years`` years <= ``today`` (29 February + 1 year
    = 28 February, as PostgreSQL's date arithmetic in ``cel_age``): age >= years exactly
    when the birthdate is on or before it."""
    if isinstance(today, str):
        today = date.fromisoformat(today)
    cutoff = today - relativedelta(years=years)
    while cutoff + timedelta(days=1) + relativedelta(years=years) <= today:
        cutoff += timedelta(days=1)
    return cutoff


def _unwrap(node):
    """``node`` without its single-child wrappers (parentheses included)."""
    while isinstance(node, Tree) and len(node.children) == 1 and node.data not in ("ident", "literal"):
        node = node.children[0]
    return node


def _member_fact(node, var):
    """The fact name when ``node`` is ``<var>.<fact>``, else None."""
    node = _unwrap(node)
    if not (isinstance(node, Tree) and node.data == "member_dot" and len(node.children) == 2):
        return None
    target = _unwrap(node.children[0])
    if isinstance(target, Tree) and target.data == "ident" and str(target.children[0]) == var:
        return str(node.children[1])
    return None


def _int_literal(node):
    """The value of an int literal node, else None."""
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == "literal" and node.children[0].type == "INT_LIT":
        return int(str(node.children[0]), 0)
    return None


def _mentions(alias, sql):
    """Whether the SQL code reads columns of ``alias``."""
    return re.search(r"(?<![\w.])%s\." % re.escape(alias), sql.code) is not None


def _args(exprlist):
    return exprlist.children if isinstance(exprlist, Tree) else []


def _var_name(node):
    while isinstance(node, Tree) and len(node.children) == 1:
        if node.data == "ident":
            return str(node.children[0])
        node = node.children[0]
    raise Unsupported("a macro's variable must be a name")


@functools.lru_cache(maxsize=512)
def _parse(text):
    return CELParser().parse(text)


@dataclass(frozen=True)
class Compiled:
    """A CEL text that compiles to SQL: ``sql(alias, today, extra)`` gives it over the
    res_partner alias ``alias``; ``type`` is its CEL type (bool, int, double, string, error)."""

    text: str
    type: str
    uses_members: bool
    extra_types: tuple
    # some aggregate over `members` is read from the household summary (in parts())
    uses_member_facts: bool = False

    def sql(self, alias, today, extra=None):
        compiler = Compiler(dict(self.extra_types))
        return compiler.compile(_parse(self.text), alias, today, extra or {}).sql

    def parts(self, alias, today, ids_sql, extra=None, prefix="", member_facts=True):
        """(expression, joins): the text over the res_partner alias ``alias`` whose
        rows are among ``ids_sql`` (an SQL list or subquery of ids, e.g. ``(SELECT ...)``),
        with the aggregates over ``members`` as LEFT JOINs (``joins``, SQL to put after
        ``FROM res_partner alias``): the household summary for those it answers exactly
        (unless ``member_facts`` is False), one grouped pass over the memberships for the
        others. ``prefix``: for the aliases, when two texts share a query."""
        compiler = Compiler(dict(self.extra_types), prefix=prefix, hoist=ids_sql, member_facts=member_facts)
        value = compiler.compile(_parse(self.text), alias, today, extra or {})
        return value.sql, compiler.joins()

    def shared_part(self, compiler, alias, today, extra=None):
        """The text's expression over the res_partner alias ``alias``, compiled by
        ``compiler`` (from :func:`shared_compiler`): its aggregates over ``members`` go
        into the compiler's one grouped join with those of the other texts it compiled
        (``compiler.joins()``, once, after ``FROM res_partner alias``)."""
        compiler.extra_types = dict(self.extra_types)
        return compiler.compile(_parse(self.text), alias, today, extra or {}).sql


def shared_compiler(ids_sql, prefix="s", member_facts=True):
    """A compiler for several texts of one query over the registrants among ``ids_sql``
    (an SQL subquery of ids): their aggregates over ``members`` are computed by one
    grouped pass over the memberships (``joins()``) instead of one per text, or read
    from the household summary where it answers them exactly."""
    return Compiler({}, prefix=prefix, hoist=ids_sql, member_facts=member_facts)


@functools.lru_cache(maxsize=512)
def _compile_cached(text, extra_types):
    compiler = Compiler(dict(extra_types))
    dummy = {name: 0.0 for name, _type in extra_types}
    val = compiler.compile(_parse(text), "p", "2000-01-01", dummy)
    if not isinstance(val, Val):
        raise Unsupported("the expression's value is a list or a map: no SQL form here")
    hoisted = Compiler(dict(extra_types), hoist=SQL("(0)"), member_facts=True)
    hoisted.compile(_parse(text), "p", "2000-01-01", dummy)
    return Compiled(text, val.type, compiler.uses_members, extra_types, hoisted.facts_used)


def compile_expression(text, extra_types=None):
    """Compile the CEL ``text`` for SQL.

    :param extra_types: {variable name: CEL type} the caller binds (e.g.
        ``{"base_amount": "double"}``).
    :return: :class:`Compiled`
    :raise Unsupported: no faithful SQL form (``args[0]``: why, for the forms).
    :raise Exception: the text does not parse (cel-python's parser error).
    """
    return _compile_cached(text.strip(), tuple(sorted((extra_types or {}).items())))


def sql_path(text, extra_types=None):
    """(True, None) when ``text`` runs in SQL, else (False, reason)."""
    if not text or not text.strip():
        return True, None
    try:
        compile_expression(text, extra_types)
    except Unsupported as exc:
        return False, exc.args[0]
    except Exception as exc:  # does not parse: the save checks say so
        return False, str(exc).splitlines()[0] if str(exc) else repr(exc)
    return True, None


def uses_member_facts(text, extra_types=None):
    """Whether ``text`` runs in SQL and reads some aggregate over ``members`` from the
    household summary (for the forms)."""
    try:
        return bool(text and text.strip()) and compile_expression(text, extra_types).uses_member_facts
    except Exception:  # no SQL form, or does not parse
        return False
