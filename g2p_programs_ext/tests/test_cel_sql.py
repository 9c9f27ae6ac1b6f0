"""CEL in SQL and per beneficiary give the same answers, and the specification's.

Three evaluators of one text over one registry:
- the SQL path (``cel_sql``: the text compiled to SQL over res_partner);
- the per-beneficiary path (``cel.Evaluator``: the official runtime, cel-expr-python);
- the reference: the cel-spec conformance cases (``cel_conformance.py``) for both paths,
  and cel-python's interpreter on the generated texts it handles as the current
  specification does (it has no heterogeneous int/double equality and orders NaN).

The property test generates texts from the grammar over the activation's facts and
random registries (missing birthdates and genders, empty households, zero divisors,
large integers, doubles vs integers) and asserts that the three agree on every value,
errors included; then enrollment and generation, as a program officer, by both paths.

Short form: derandomized (same examples every run). Long form: ``G2P_LONG_TESTS=1``.
"""

import math
import os
from datetime import date

import celpy
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st

from odoo.addons.g2p_programs_ext import cel, cel_sql
from odoo.tests import tagged
from odoo.tools import SQL

from .cel_conformance import CASES, ERROR
from .common import G2PCommon

LONG = os.environ.get("G2P_LONG_TESTS") == "1"
SETTINGS = settings(
    max_examples=500 if LONG else 30,
    deadline=None,
    database=None,
    derandomize=not LONG,
    suppress_health_check=list(HealthCheck),
    # no shrinking: each example builds a registry; the first failure is reported as is
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
_REFERENCE = celpy.Environment(runner_class=celpy.InterpretedRunner)

# ---------------------------------------------------------------------------
# Generated texts: (text, portable) where portable = cel-python's interpreter answers
# it as the current specification (no int/double mixing, no NaN)
# ---------------------------------------------------------------------------
INT_LITS = [
    "0",
    "1",
    "2",
    "5",
    "18",
    "60",
    "-3",
    "9223372036854775807",
    "-9223372036854775808",
    "4611686018427387904",
]
DBL_LITS = ["0.0", "1.5", "-2.5", "10.0", "0.1", "1e308", "3.0"]
STR_LITS = ["'male'", "'female'", "''", "'ma'", "'le'", "'é'", "'19'"]


def _leaf(values, portable=True):
    return st.sampled_from(values).map(lambda text: (text, portable))


def _binary(left, ops, right, portable=True, wrap="(%s %s %s)"):
    return st.tuples(left, st.sampled_from(ops), right).map(
        lambda t: (wrap % (t[0][0], t[1], t[2][0]), t[0][1] and t[2][1] and portable)
    )


@st.composite
def _macro(draw, method, var, body):
    inner_var = "n" if var == "m" else "m"
    pred = draw(body(inner_var))
    return ("members.%s(%s, %s)" % (method, inner_var, pred[0]), pred[1])


# counts of members by one atom: the household summary answers them at the top level
# (the sorted birthdates, the pregnancy and disability counts), the grouped pass inside
# a macro and the correlated subqueries everywhere; the three are compared
COUNT_LEAVES = [
    "size(members.filter(k, k.age < 5))",
    "size(members.filter(k, k.age >= 60))",
    "members.filter(k, 18 <= k.age).size()",
    "size(members.filter(k, k.age <= 0))",
    "size(members.filter(k, k.age > 24))",
    "size(members.filter(k, k.is_pregnant))",
    "size(members.filter(k, !k.has_disability))",
]


def ints(depth, var=None):
    leaves = [*INT_LITS, "me.age", "me.household_size", "size(members)", *COUNT_LEAVES]
    if var:
        leaves += ["%s.age" % var, "%s.household_size" % var]
    base = _leaf(leaves)
    if depth <= 0:
        return base
    sub = ints(depth - 1, var)
    return st.one_of(
        base,
        _binary(sub, ["+", "-", "*", "/", "%"], sub),
        sub.map(lambda t: ("-%s" % t[0] if not t[0].startswith("-") else "-(%s)" % t[0], t[1])),
        _macro("filter", var, lambda v: bools(depth - 1, v)).map(lambda t: ("size(%s)" % t[0], t[1])),
        dbls(depth - 1, var).map(lambda t: ("int(%s)" % t[0], t[1])),
    )


def dbls(depth, var=None):
    base = _leaf([*DBL_LITS, "base_amount"])
    if depth <= 0:
        return base
    sub = dbls(depth - 1, var)
    return st.one_of(
        base,
        _binary(sub, ["+", "-", "*"], sub),
        _binary(sub, ["/"], sub, portable=False),  # 0.0 / 0.0: NaN
        ints(depth - 1, var).map(lambda t: ("double(%s)" % t[0], t[1])),
    )


def strs(depth, var=None):
    leaves = [*STR_LITS, "me.gender", "me.id_number", "me.birthdate"]
    if var:
        leaves += ["%s.gender" % var, "%s.birthdate" % var]
    base = _leaf(leaves)
    if depth <= 0:
        return base
    # cel-python's interpreter: a concatenation gives a plain str, without contains() etc.
    return st.one_of(base, _binary(base, ["+"], base, portable=False))


def bools(depth, var=None):
    leaves = [
        "true",
        "false",
        "me.has_disability",
        "me.is_pregnant",
        "me.is_group",
        "has(me.gender)",
        "has(me.age)",
    ]
    if var:
        leaves += ["%s.is_pregnant" % var, "%s.has_disability" % var, "has(%s.birthdate)" % var]
    base = _leaf(leaves)
    if depth <= 0:
        return base
    sub = bools(depth - 1, var)
    cmp_ops = ["<", "<=", ">", ">=", "==", "!="]
    i, d, s = ints(depth - 1, var), dbls(depth - 1, var), strs(depth - 1, var)
    return st.one_of(
        base,
        _binary(i, cmp_ops, i),
        _binary(d, cmp_ops, d, portable=False),
        _binary(i, cmp_ops, d, portable=False),  # heterogeneous: allowed over dyn facts
        _binary(s, cmp_ops, s),
        _binary(i, ["=="], s, portable=False),  # different types: false
        _binary(s, ["startsWith", "endsWith", "contains"], s, wrap="%s.%s(%s)"),
        _binary(sub, ["&&", "||"], sub),
        # "!!x" is x for the CEL parsers (an even run is dropped), not for cel-python
        sub.map(lambda t: ("!%s" % t[0], t[1] and not t[0].startswith("!"))),
        st.tuples(sub, sub, sub).map(
            lambda t: ("(%s ? %s : %s)" % (t[0][0], t[1][0], t[2][0]), all(x[1] for x in t))
        ),
        st.tuples(i, st.lists(_leaf(INT_LITS), min_size=0, max_size=3)).map(
            lambda t: ("%s in [%s]" % (t[0][0], ", ".join(x[0] for x in t[1])), t[0][1])
        ),
        st.tuples(s, st.lists(_leaf(STR_LITS), min_size=0, max_size=3)).map(
            lambda t: ("%s in [%s]" % (t[0][0], ", ".join(x[0] for x in t[1])), t[0][1])
        ),
        _macro("exists", var, lambda v: bools(depth - 1, v)),
        _macro("all", var, lambda v: bools(depth - 1, v)),
        _macro("exists_one", var, lambda v: bools(depth - 1, v)),
        _macro("map", var, lambda v: ints(depth - 1, v)).map(lambda t: ("size(%s) > 0" % t[0], t[1])),
    )


EXPRESSIONS = st.one_of(bools(3), ints(2), dbls(2), strs(1))

BIRTHDATES = st.one_of(
    st.none(),
    st.dates(min_value=date(1920, 1, 1), max_value=date.today()),
    st.sampled_from([date(2000, 2, 29), date(2004, 2, 29), date.today()]),
    st.integers(min_value=0, max_value=70).map(lambda years: date.today() - relativedelta(years=years)),
)
MEMBER = st.fixed_dictionaries(
    {
        "birthdate": BIRTHDATES,
        "gender": st.sampled_from([False, "male", "female", "other"]),
        "is_pregnant": st.booleans(),
        "has_disability": st.booleans(),
    }
)
REGISTRY = st.lists(st.lists(MEMBER, max_size=4), min_size=1, max_size=4)
BASES = st.sampled_from([0.0, 12.5, 100.0, -1.0, 1e300])


def _checks(text):
    """The text passes the official checker (as at save)."""
    try:
        cel._RUNTIME.compile(text)
    except Exception:
        return False
    return True


def _same(a, b):
    if a is ERROR or b is ERROR:
        return a is b
    if type(a) is not type(b):  # bool vs int matters
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


@tagged("post_install", "-at_install")
class TestCelSql(G2PCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.anchor = cls.Partner.create({"name": "Anchor", "is_registrant": True})
        cls.serial = 0

    # -- the three evaluators ----------------------------------------------------
    def sql_values(self, text, partner_ids, extra=None):
        """{partner id: value or ERROR} by the SQL path."""
        types = {name: "double" for name in extra or {}}
        compiled = cel_sql.compile_expression(text, types)
        self.env.flush_all()
        ids_sql = SQL("(SELECT unnest(%s::int[]))", list(partner_ids))
        value, joins = compiled.parts("p", self.today, ids_sql, extra)
        self.env.cr.execute(
            SQL("SELECT p.id, %s FROM res_partner p %s WHERE p.id = ANY(%s)", value, joins, list(partner_ids))
        )
        hoisted = {pid: ERROR if v is None else v for pid, v in self.env.cr.fetchall()}
        # the same with every aggregate over members by the grouped pass (no household summary)
        value, joins = compiled.parts("p", self.today, ids_sql, extra, member_facts=False)
        self.env.cr.execute(
            SQL("SELECT p.id, %s FROM res_partner p %s WHERE p.id = ANY(%s)", value, joins, list(partner_ids))
        )
        for pid, v in self.env.cr.fetchall():
            v = ERROR if v is None else v
            self.assertTrue(_same(v, hoisted[pid]), "%s: summary %r, grouped %r" % (text, hoisted[pid], v))
        # the same text with every aggregate as a correlated subquery
        self.env.cr.execute(
            SQL(
                "SELECT p.id, %s FROM res_partner p WHERE p.id = ANY(%s)",
                compiled.sql("p", self.today, extra),
                list(partner_ids),
            )
        )
        correlated = {pid: ERROR if v is None else v for pid, v in self.env.cr.fetchall()}
        for pid, v in hoisted.items():
            self.assertTrue(
                _same(v, correlated[pid]), "%s: grouped %r, correlated %r" % (text, v, correlated[pid])
            )
        return hoisted

    def activations(self, partner_ids):
        facts = cel.read_facts(self.env, partner_ids, cel.FACTS, self.today)
        groups = self.Partner.browse([pid for pid in partner_ids if dict(facts[pid]).get("is_group")])
        by_group = groups.active_members_by_group()
        member_facts = cel.read_facts(
            self.env, [m for ids in by_group.values() for m in ids], cel.FACTS, self.today
        )
        return {
            pid: (dict(facts[pid]), [dict(member_facts[m]) for m in by_group.get(pid, [])])
            for pid in partner_ids
        }

    def runtime_values(self, text, activations, extra=None, disable_check=False):
        """{partner id: value or ERROR} by the official runtime (the per-beneficiary path)."""
        program = cel._RUNTIME.compile(text, disable_check=disable_check)
        out = {}
        for pid, (me, members) in activations.items():
            value = cel.evaluate(program, me, members, extra)
            out[pid] = ERROR if isinstance(value, cel.CELRunError) else value
        return out

    def reference_values(self, text, activations, extra=None):
        """{partner id: value or ERROR} by cel-python's interpreter."""
        program = _REFERENCE.program(_REFERENCE.compile(text))
        out = {}
        for pid, (me, members) in activations.items():
            activation = {
                "me": celpy.json_to_cel(me),
                "members": celpy.json_to_cel(members),
                **{k: celpy.json_to_cel(v) for k, v in (extra or {}).items()},
            }
            try:
                value = program.evaluate(activation)
            except Exception:
                out[pid] = ERROR
                continue
            if isinstance(value, celpy.CELEvalError):
                out[pid] = ERROR
            elif isinstance(value, celpy.celtypes.BoolType):
                out[pid] = bool(value)
            elif isinstance(value, celpy.celtypes.IntType):
                out[pid] = int(value)
            elif isinstance(value, celpy.celtypes.DoubleType):
                out[pid] = float(value)
            elif isinstance(value, celpy.celtypes.StringType):
                out[pid] = str(value)
            else:
                out[pid] = value
        return out

    def make_registry(self, households):
        """Households (lists of member values) made in the registry; returns all ids."""
        ids = []
        for members in households:
            self.__class__.serial += 1
            name = "CEL %s" % self.serial
            values = [
                dict(vals, id_number="CEL-%s-%s" % (self.serial, i) if i % 2 else False)
                for i, vals in enumerate(members)
            ]
            if values:
                group, individuals = self.make_household(name, values)
                ids += [group.id, *individuals.ids]
            else:
                ids.append(self.Partner.create({"name": name, "is_registrant": True, "is_group": True}).id)
        return ids

    # -- conformance -------------------------------------------------------------
    def test_conformance_cases(self):
        """The cel-spec cases (and ours) by both paths; the SQL path declines only
        lists and ternaries of mixed types (then the per-beneficiary path answers)."""
        activation = {self.anchor.id: ({}, [])}
        declined = []
        for source, name, text, expected, disable_check in CASES:
            label = "%s %s: %s" % (source, name, text)
            runtime = self.runtime_values(text, activation, disable_check=disable_check)[self.anchor.id]
            self.assertTrue(_same(runtime, expected), "%s: runtime gave %r" % (label, runtime))
            try:
                value = self.sql_values(text, [self.anchor.id])[self.anchor.id]
            except cel_sql.Unsupported as exc:
                declined.append((name, exc.args[0]))
                continue
            self.assertTrue(_same(value, expected), "%s: SQL gave %r" % (label, value))
        self.assertEqual(
            sorted(name for name, _reason in declined),
            sorted(
                [
                    "exists/list_elem_type_shortcircuit",
                    "exists/list_elem_type_exhaustive",
                    "all/list_elem_type_shortcircuit",
                    "all/list_elem_type_exhaustive",
                    "conditional/mixed_type",
                    "conditional/bad_type",
                    "in_list_mixed",
                ]
            ),
            declined,
        )

    def test_cel_spec_errors_in_registry(self):
        """The issue's case: a man without a birthdate makes the filter an error (skipped
        and counted), by both paths; `exists` is true when any member is true."""
        ids = self.make_registry(
            [
                [{"gender": "male", "birthdate": False}],
                [{"gender": "male", "birthdate": self.born(30)}, {"gender": "female", "birthdate": False}],
            ]
        )
        h1, h2 = ids[0], ids[2]
        acts = self.activations([h1, h2])
        text = "size(members.filter(m, m.gender == 'male' && m.age >= 18)) > 0"
        self.assertEqual(self.sql_values(text, [h1, h2]), {h1: ERROR, h2: True})
        self.assertEqual(self.runtime_values(text, acts), {h1: ERROR, h2: True})
        text = "members.exists(m, m.age >= 18)"
        self.assertEqual(self.sql_values(text, [h1, h2]), {h1: ERROR, h2: True})
        self.assertEqual(self.runtime_values(text, acts), {h1: ERROR, h2: True})
        text = "members.all(m, m.age >= 18)"
        self.assertEqual(self.sql_values(text, [h1, h2]), {h1: ERROR, h2: ERROR})
        self.assertEqual(self.runtime_values(text, acts), {h1: ERROR, h2: ERROR})

    def test_contains_on_a_missing_fact(self):
        """``x.contains('')`` is an error when x is absent (the long property test found
        SQL saying true: '' is in every string, the absent one included)."""
        group, without, with_id = self.make_registry([[{"birthdate": False}, {"birthdate": False}]])
        ids = [group, without, with_id]
        acts = self.activations(ids)
        for text in ("me.id_number.contains('')", "!me.id_number.contains('')", "me.id_number.contains('x')"):
            self.assertEqual(self.sql_values(text, ids), self.runtime_values(text, acts), text)
        self.assertEqual(
            self.sql_values("me.id_number.contains('')", ids), {group: ERROR, without: ERROR, with_id: True}
        )

    def test_paths_named(self):
        """The forms say which path a text takes and why."""
        self.assertEqual(
            cel.path_label("members.exists(m, m.age < 5)"),
            "evaluated in SQL, members' facts read from the household summary",
        )
        self.assertEqual(
            cel.path_label("10.0 * double(size(members.filter(m, m.age < 5)))"),
            "evaluated in SQL, members' facts read from the household summary",
        )
        self.assertEqual(cel.path_label("members.exists(m, m.gender == 'male')"), "evaluated in SQL")
        self.assertEqual(
            cel.path_label("me.gender.matches('^f')"),
            "evaluated per beneficiary: `matches` has no SQL form here",
        )
        program = self.env["g2p.program"].create(
            {"name": "Paths", "eligibility_expression": "me.gender.matches('f')"}
        )
        self.assertIn("per beneficiary", program.eligibility_path)

    # -- property: the three agree ------------------------------------------------
    @SETTINGS
    @given(expression=EXPRESSIONS, households=REGISTRY, base=BASES)
    def test_parity_property(self, expression, households, base):
        text, portable = expression
        if not _checks(text):
            reject()  # refused at save: never evaluated
        extra = {"base_amount": base}
        ids = self.make_registry(households)
        acts = self.activations(ids)
        runtime = self.runtime_values(text, acts, extra)
        try:
            in_sql = self.sql_values(text, ids, extra)
        except cel_sql.Unsupported as exc:
            self.fail("%s has no SQL form: %s" % (text, exc))
        for pid in ids:
            self.assertTrue(
                _same(in_sql[pid], runtime[pid]),
                "%s on %s %s: SQL %r, runtime %r"
                % (text, acts[pid][0], acts[pid][1], in_sql[pid], runtime[pid]),
            )
        if portable:
            reference = self.reference_values(text, acts, extra)
            for pid in ids:
                self.assertTrue(
                    _same(reference[pid], runtime[pid]),
                    "%s on %s %s: reference %r, runtime %r"
                    % (text, acts[pid][0], acts[pid][1], reference[pid], runtime[pid]),
                )

    @settings(SETTINGS, max_examples=200 if LONG else 10)
    @given(
        condition=bools(2),
        formula=st.one_of(dbls(2), ints(1)),
        households=REGISTRY,
        amount=st.sampled_from([0.0, 10.0, 12.5]),
    )
    def test_item_figures_parity(self, condition, formula, households, amount):
        """An item's figures and skipped count: SQL path = per-beneficiary path."""
        # a condition has no base_amount; what the checker refuses is refused at save
        if "base_amount" in condition[0] or not (_checks(condition[0]) and _checks(formula[0])):
            reject()
        ids = self.make_registry(households)
        manager = self.env["g2p.program.entitlement.manager.cash"].search([], limit=1) or self._cash_manager()
        item = self.env["g2p.program.entitlement.manager.cash.item"].create(
            {
                "manager_id": manager.id,
                "amount": amount,
                "condition_expression": condition[0],
                "formula": formula[0],
            }
        )
        self.assertIsNotNone(item._compiled_texts(), item.cel_path)
        in_sql = item._figures(ids)
        per_beneficiary = item.with_context(cel_per_beneficiary=True)._figures(ids)
        self.assertEqual(in_sql, per_beneficiary, "%s / %s" % (condition[0], formula[0]))

    def _cash_manager(self):
        program = self.env["g2p.program"].create({"name": "Figures"})
        return self.env["g2p.program.entitlement.manager.cash"].create({"program_id": program.id})

    # -- enrollment and generation by both paths, as a program officer ------------------
    def _program(self, expression, items):
        program = self.env["g2p.program"].create(
            {
                "name": "CEL %s" % expression[:20],
                "eligibility_domain": "[('name', '=like', 'PAR %')]",
                "eligibility_expression": expression,
            }
        )
        self.env["g2p.program.entitlement.manager.cash"].create(
            {"program_id": program.id, "max_amount": 1000.0, "item_ids": [(0, 0, vals) for vals in items]}
        )
        return program

    def test_enrollment_and_generation_parity(self):
        """The demo's rule and formulas (and a rule with an error): the same memberships,
        error counts and entitlement amounts by SQL (the household summary, and the
        grouped pass over the members) and per beneficiary."""
        rows = [
            [{"birthdate": self.born(3)}, {"birthdate": self.born(30)}],
            [{"birthdate": self.born(65), "gender": "female"}],
            [{"birthdate": False, "is_pregnant": True}],
            [{"birthdate": False}],
            [],
            [
                {"birthdate": self.born(20), "has_disability": True},
                {"birthdate": self.born(4)},
                {"birthdate": self.born(1)},
            ],
            # 29 February: 5 years old on 28 February of a common year, as the age field
            [{"birthdate": self.today - relativedelta(years=5, days=1), "is_pregnant": True}],
            [{"birthdate": date(2000, 2, 29), "has_disability": True}, {"birthdate": date(2020, 2, 29)}],
        ]
        for i, members in enumerate(rows):
            self.make_household("PAR %s" % i, members) if members else self.Partner.create(
                {"name": "PAR %s" % i, "is_registrant": True, "is_group": True}
            )
        rule = "members.exists(m, m.age < 5 || m.age >= 60) || members.exists(m, m.is_pregnant || m.has_disability)"
        items = [
            {"amount": 300.0},
            {"amount": 0.0, "formula": "10.0 * double(size(members.filter(m, m.age < 5)))"},
            {"amount": 50.0, "formula": "base_amount * double(size(members.filter(m, m.age < 5)))"},
            {"amount": 100.0, "multiplier_field": "household_size", "max_multiplier": 2},
            {"amount": 0.0, "formula": "5.0 * double(size(members.filter(m, m.age >= 60)))"},
        ]
        self.assertTrue(
            all(
                cel_sql.compile_expression(vals["formula"], {"base_amount": "double"}).uses_member_facts
                for vals in items
                if vals.get("formula")
            )
        )
        results = []
        for context in ({}, {"cel_grouped_pass": True}, {"cel_per_beneficiary": True}):
            program = self._program(rule, items).with_context(**context)
            program = program.with_user(self.officer)
            program.enroll_eligible_registrants()
            enrolled = program.sudo().program_membership_ids.filtered(lambda m: m.state == "enrolled")
            counts = program.sudo()._eligibility_counts()
            cycle = self.env["g2p.cycle"].browse(program.create_new_cycle()).with_user(self.officer)
            cycle = cycle.with_context(**context)
            cycle.prepare_entitlement()
            amounts = {
                e.partner_id.name: e.initial_amount
                for e in self.env["g2p.entitlement"].sudo().search([("cycle_id", "=", cycle.id)])
            }
            results.append((sorted(enrolled.partner_id.mapped("name")), tuple(counts), amounts))
        self.assertEqual(results[0], results[1], "summary vs grouped pass")
        self.assertEqual(results[0], results[2], "SQL vs per beneficiary")
        names, counts, amounts = results[0]
        # PAR 3 (no birthdate, nothing else true) errs: skipped and counted; PAR 4 is empty
        self.assertEqual(names, ["PAR 0", "PAR 1", "PAR 2", "PAR 5", "PAR 6", "PAR 7"])
        self.assertEqual(counts, (6, 1, 8))
        # PAR 5: 300 + 10*2 + 50*2 + 100*min(3, 2) = 620; PAR 0: 300 + 10 + 50 + 200 = 560
        self.assertEqual(amounts["PAR 5"], 620.0)
        self.assertEqual(amounts["PAR 0"], 560.0)
        # PAR 1: 300 + 100 + 5 (aged 65); PAR 2: no birthdate, the formulas err: 300 + 100
        self.assertEqual(amounts["PAR 1"], 405.0)
        self.assertEqual(amounts["PAR 2"], 400.0)
        # PAR 6: born 5 years and a day ago: 5, no child; PAR 7: a child born 29 February 2020
        self.assertEqual(amounts["PAR 6"], 400.0)
        under_5 = relativedelta(self.today, date(2020, 2, 29)).years < 5  # the age field's rule
        self.assertEqual(amounts["PAR 7"], 300.0 + 200.0 + (60.0 if under_5 else 0.0))

    def test_formula_guide_examples(self):
        """Every pattern of the formula guide (004): fixed amount, per household member,
        base + per child under 5, maximum cap; ``base_amount`` in formulas."""
        self.make_household(
            "PAR big", [{"birthdate": self.born(2)} for _i in range(3)] + [{"birthdate": self.born(40)}] * 9
        )
        self.make_household("PAR small", [{"birthdate": self.born(1)}, {"birthdate": self.born(30)}])
        cases = [
            ("fixed", [{"amount": 500.0}], 0.0, {"PAR big": 500.0, "PAR small": 500.0}),
            (
                "per member",
                [{"amount": 100.0, "multiplier_field": "household_size"}],
                0.0,
                {"PAR big": 1200.0, "PAR small": 200.0},
            ),
            (
                "base + per child",
                [
                    {"amount": 300.0},
                    {"amount": 50.0, "formula": "base_amount * double(size(members.filter(m, m.age < 5)))"},
                ],
                0.0,
                {"PAR big": 450.0, "PAR small": 350.0},
            ),
            (
                "cap",
                [{"amount": 100.0, "multiplier_field": "household_size"}],
                1000.0,
                {"PAR big": 1000.0, "PAR small": 200.0},
            ),
        ]
        for label, items, cap, expected in cases:
            for per_beneficiary in (False, True):
                program = self.env["g2p.program"].create(
                    {"name": "Guide %s" % label, "eligibility_domain": "[('name', '=like', 'PAR %')]"}
                )
                self.env["g2p.program.entitlement.manager.cash"].create(
                    {
                        "program_id": program.id,
                        "max_amount": cap,
                        "item_ids": [(0, 0, vals) for vals in items],
                    }
                )
                program = program.with_user(self.officer).with_context(cel_per_beneficiary=per_beneficiary)
                program.enroll_eligible_registrants()
                cycle = self.env["g2p.cycle"].browse(program.create_new_cycle()).with_user(self.officer)
                cycle.with_context(cel_per_beneficiary=per_beneficiary).prepare_entitlement()
                amounts = {
                    e.partner_id.name: e.initial_amount
                    for e in self.env["g2p.entitlement"].sudo().search([("cycle_id", "=", cycle.id)])
                }
                self.assertEqual(amounts, expected, "%s (per beneficiary: %s)" % (label, per_beneficiary))

    # -- generation in one INSERT ... SELECT against the per-beneficiary bulk insert ------
    def test_generation_rows_same_by_both_paths(self):
        """A cash entitlement row written by the SQL path (one INSERT ... SELECT) equals,
        column by column, the one the per-beneficiary path writes (values, then bulk
        insert): amounts summed, capped, rounded to the currency; state and submitter of
        *Submit automatically*; validity, company, currency, fee; audit columns set."""
        self.make_household("PAR a", [{"birthdate": self.born(2)}, {"birthdate": self.born(70)}])
        self.make_household("PAR b", [{"birthdate": self.born(1)}] * 3 + [{"birthdate": self.born(30)}] * 5)
        self.make_household("PAR c", [{"birthdate": False}])  # the formula errs: skipped
        self.make_household("PAR d", [{"birthdate": self.born(40)}])
        program = self._program(
            "size(members) > 0",
            [
                {"amount": 33.335},  # rounded to the currency: 33.34 (HALF-UP), summed first
                {"amount": 0.0, "formula": "10.0 / 3.0 * double(size(members.filter(m, m.age < 5)))"},
                {"amount": 7.5, "condition_expression": "members.exists(m, m.age >= 60)"},
                {"amount": 20.0, "multiplier_field": "household_size", "max_multiplier": 6},
                {"amount": 1.0, "condition": "[('name', '=', 'PAR d')]"},
            ],
        )
        manager = self.env["g2p.program.entitlement.manager.cash"].search([("program_id", "=", program.id)])
        manager.write({"max_amount": 150.0, "transfer_fee": 1.25, "auto_submit": True})
        self.assertIsNotNone(manager._items_sql(SQL("(SELECT 1)")), "every item compiles")
        program.with_user(self.officer).enroll_eligible_registrants()
        cycle = self.env["g2p.cycle"].browse(program.sudo().create_new_cycle()).with_user(self.officer)
        volatile = {"id", "create_date", "write_date", "date_submitted"}
        rows = []
        for per_beneficiary in (True, False):
            created = cycle.with_context(cel_per_beneficiary=per_beneficiary).prepare_entitlement()
            self.env.flush_all()
            self.env.cr.execute("SELECT * FROM g2p_entitlement WHERE cycle_id = %s", [cycle.id])
            found = {row["partner_id"]: row for row in self.env.cr.dictfetchall()}
            self.assertEqual(created, len(found))
            for row in found.values():
                self.assertTrue(row["create_date"] and row["write_date"] and row["date_submitted"])
            rows.append(
                {pid: {k: v for k, v in row.items() if k not in volatile} for pid, row in found.items()}
            )
            # PAR c: the formula and the condition err; PAR d: the formula gives 0
            self.assertIn("3 skipped", cycle.sudo().message_ids[:1].body)
            self.env["g2p.entitlement"].sudo().search([("cycle_id", "=", cycle.id)]).unlink()
        self.assertEqual(rows[0], rows[1])
        by_name = {self.Partner.browse(pid).name: row for pid, row in rows[1].items()}
        self.assertEqual(sorted(by_name), ["PAR a", "PAR b", "PAR c", "PAR d"])
        # PAR a: 33.335 + 10/3 + 7.5 + 20*2 = 84.168... -> 84.17; PAR b: capped at 150
        self.assertEqual(float(by_name["PAR a"]["initial_amount"]), 84.17)
        self.assertEqual(float(by_name["PAR b"]["initial_amount"]), 150.0)
        self.assertEqual(by_name["PAR a"]["state"], "pending_validation")
        self.assertEqual(by_name["PAR a"]["submitted_by_id"], self.officer.id)
        self.assertEqual(by_name["PAR a"]["create_uid"], self.officer.id)
