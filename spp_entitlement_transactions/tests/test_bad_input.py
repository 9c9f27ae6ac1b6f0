"""Bad input, property-based (hypothesis): random and hostile values (wrong types, huge,
negative, NaN, infinities, unicode, NUL, SQL-looking and over-long strings, nested
lists and dicts) given to the redemption API, to the rejection of entitlements, and to
the configuration of programs and entitlement items (CEL expressions, domains,
quantities, multipliers, caps, units).

Each holds for every example:
- the call succeeds, or is refused with ``UserError`` / ``ValidationError`` /
  ``AccessError`` (never another exception), whose API message starts with a bracketed
  code;
- a refused call changes nothing (balances, states, number of transactions, the
  configuration as stored);
- an accepted configuration does not break what runs on it later (enrollment, the
  figures of an item): that too succeeds or says what is wrong.

Short form: a few dozen examples per property, derandomized (same examples every run).
Long form (``G2P_LONG_TESTS=1``, ``setup/run_tests.py --long``): many more, random.
Every example runs as a real user (agent, validator, manager) in a savepoint that is
rolled back.
"""

import math
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import InkindRedemptionCase

LONG = os.environ.get("G2P_LONG_TESTS") == "1"
SETTINGS = settings(
    max_examples=400 if LONG else 30,
    deadline=None,
    database=None,
    derandomize=not LONG,
    suppress_health_check=list(HealthCheck),
)
VALID = "<valid>"  # stands for the valid value of an argument, filled in by the test

HOSTILE_TEXTS = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "abc\x00def",
        "'; DROP TABLE res_partner; --",
        "1 OR 1=1",
        "%s %s %(x)s",
        "$$; SELECT pg_sleep(10); $$",
        "__import__('os').system('id')",
        "[('id', '>', 0)]",
        "[(1, '=', 1)] + [('x', 'in', (lambda: 1)())]",
        "me.age > 10000000000000000000000",
        "\u202eevil\u202c",
        "𝕏😀" * 20,
        "A" * 5000,
        "NaN",
        "inf",
        "-1",
        "1e309",
        "None",
        "{'a': 1}",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e-12, 1e308, -1.0]),
    st.text(max_size=80),
    st.text(min_size=65, max_size=700),
    st.binary(max_size=20),
    HOSTILE_TEXTS,
)
HOSTILE = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def maybe_valid(strategy=HOSTILE):
    """The valid value (VALID) or a hostile one."""
    return st.one_of(st.just(VALID), strategy)


def no_none(value):
    if isinstance(value, dict):
        return all(isinstance(k, str) and no_none(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(no_none(v) for v in value)
    return value is not None


@tagged("post_install", "-at_install")
class TestBadInput(InkindRedemptionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        api = cls.env["spp.entitlement.transaction"].with_user(cls.agent_a)
        api.redeem(cls.ent_a2.code, 10.0, cls.point_a.id, "BAD-R1")
        cls.cash_item = (
            cls.env["g2p.program.entitlement.manager.cash"]
            .search([("program_id", "=", cls.program.id)])
            .item_ids[:1]
        )
        cls.cash_manager = cls.cash_item.manager_id
        cls.inkind_item = (
            cls.env["g2p.program.entitlement.manager.inkind"]
            .search([("program_id", "=", cls.inkind_program.id)])
            .item_ids[:1]
        )
        cls.partner_ids = cls.households.ids + cls.ind_a1.ids

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------
    def state(self):
        """What a refused call must leave as it was."""
        self.env.invalidate_all(flush=False)
        cr = self.env.cr
        cr.execute("SELECT count(*) FROM spp_entitlement_transaction")
        count = cr.fetchone()[0]
        cr.execute("SELECT id, state, amount_redeemed, code FROM g2p_entitlement ORDER BY id")
        cash = cr.fetchall()
        cr.execute("SELECT id, state, quantity_redeemed, code FROM g2p_entitlement_inkind ORDER BY id")
        inkind = cr.fetchall()
        return count, cash, inkind

    def attempt(self, call, api=True):
        """Run ``call()`` in a savepoint that is rolled back. :return: its result, or
        the UserError raised (after checking that nothing changed and, for the API,
        that the message starts with a bracketed code). Any other exception fails."""
        before = self.state()
        savepoint = self.env.cr.savepoint()
        try:
            try:
                result = call()
                self.env.flush_all()
                return result
            except UserError as error:
                message = error.args[0] if error.args else ""
                if api:
                    self.assertRegex(message, r"^\[[a-z_]+\] ", "a refusal starts with its code")
                self.env.cr.execute("SELECT 1")  # the transaction is still usable
                self.assertEqual(self.state(), before, "a refused call changes nothing: %s" % message)
                return error
        finally:
            savepoint.close(rollback=True)
            self.env.invalidate_all(flush=False)

    def fill(self, value, valid):
        return valid if value is VALID or value == VALID else value

    # ------------------------------------------------------------------
    # The redemption API
    # ------------------------------------------------------------------
    @SETTINGS
    @given(code=maybe_valid(), quantity=maybe_valid(), point=maybe_valid(), reference=maybe_valid())
    def test_redeem(self, code, quantity, point, reference):
        api = self.api(self.agent_a)
        result = self.attempt(
            lambda: api.redeem(
                self.fill(code, self.ent_a1.code),
                self.fill(quantity, 1.0),
                self.fill(point, self.point_a.id),
                self.fill(reference, "BAD-NEW"),
            )
        )
        if not isinstance(result, UserError):
            self.assertTrue(no_none(result) and result["transaction_id"], result)

    @SETTINGS
    @given(code=HOSTILE)
    def test_lookup(self, code):
        for user in (self.agent_a, self.officer):
            result = self.attempt(lambda u=user: self.api(u).lookup(code))
            if not isinstance(result, UserError):
                self.assertTrue(no_none(result), result)

    @SETTINGS
    @given(reference=maybe_valid(), point=maybe_valid(), reason=maybe_valid())
    def test_reverse(self, reference, point, reason):
        api = self.api(self.agent_a)
        result = self.attempt(
            lambda: api.reverse(
                self.fill(reference, "BAD-R1"),
                self.fill(point, self.point_a.id),
                self.fill(reason, "mistake"),
            )
        )
        if not isinstance(result, UserError):
            self.assertTrue(no_none(result), result)

    @SETTINGS
    @given(
        point=maybe_valid(),
        lines=st.one_of(
            HOSTILE,
            st.lists(HOSTILE, max_size=4),
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "code": maybe_valid(),
                        "quantity": maybe_valid(),
                        "reference": maybe_valid(),
                        "device_time": maybe_valid(),
                    },
                ),
                max_size=4,
            ),
        ),
    )
    def test_redeem_batch(self, point, lines):
        if isinstance(lines, list):
            valid = {
                "code": self.ent_a1.code,
                "quantity": 1.0,
                "reference": "BAD-B",
                "device_time": "2024-01-01 10:00:00",
            }
            lines = [
                {k: self.fill(v, valid.get(k)) for k, v in line.items()} if isinstance(line, dict) else line
                for line in lines
            ]
        result = self.attempt(
            lambda: self.api(self.agent_a).redeem_batch(self.fill(point, self.point_a.id), lines)
        )
        if not isinstance(result, UserError):
            self.assertEqual(len(result), len(lines))
            for answer in result:
                self.assertTrue(no_none(answer), answer)
                self.assertTrue(
                    answer.get("transaction_id") or answer["error"].startswith("["),
                    "each line answered: %s" % answer,
                )

    @SETTINGS
    @given(point=HOSTILE)
    def test_entitlements_for_service_point(self, point):
        for user in (self.agent_a, self.officer):
            result = self.attempt(lambda u=user: self.api(u).entitlements_for_service_point(point))
            if not isinstance(result, UserError):
                self.assertTrue(no_none(result), result)

    @SETTINGS
    @given(reason=maybe_valid(), note=HOSTILE)
    def test_reject(self, reason, note):
        entitlement = self.ent_a1.with_user(self.validator)
        self.attempt(lambda: entitlement.action_reject(self.fill(reason, "declined"), note))

    # ------------------------------------------------------------------
    # Configuration: domains, CEL expressions, figures
    # ------------------------------------------------------------------
    def stored(self, record, name):
        self.env.cr.execute(f'SELECT "{name}" FROM {record._table} WHERE id = %s', [record.id])
        return self.env.cr.fetchone()[0]

    def configure(self, record, vals, then=None):
        """Write ``vals`` on ``record`` as the program manager: accepted, or refused with a
        UserError leaving the stored values as they were. When accepted, ``then()``
        (what runs on that configuration later) succeeds or raises a UserError."""
        before = {name: self.stored(record, name) for name in vals}

        def call():
            record.with_user(self.manager).write(vals)
            self.env.flush_all()
            if then:
                try:
                    then()
                except UserError as error:  # refused later: it says why, with a code
                    self.assertRegex(error.args[0], r"^\[[a-z_]+\] ")

        result = self.attempt(call, api=False)
        if isinstance(result, UserError):
            self.assertEqual({name: self.stored(record, name) for name in vals}, before)
        return result

    @SETTINGS
    @given(
        domain=st.one_of(HOSTILE, st.text(max_size=200)), expression=st.one_of(HOSTILE, st.text(max_size=200))
    )
    def test_program_targeting(self, domain, expression):
        program = self.program
        self.configure(
            program,
            {"eligibility_domain": domain},
            then=lambda: program.with_user(self.officer).enroll_eligible_registrants(),
        )
        self.configure(
            program,
            {"eligibility_expression": expression},
            then=lambda: program.with_user(self.officer).enroll_eligible_registrants(),
        )

    @SETTINGS
    @given(
        field=st.sampled_from(
            ["condition", "condition_expression", "formula", "multiplier_field", "max_multiplier", "amount"]
        ),
        value=st.one_of(HOSTILE, st.text(max_size=100)),
    )
    def test_cash_item(self, field, value):
        item = self.cash_item
        self.configure(item, {field: value}, then=lambda: item.sudo()._figures(self.partner_ids))

    @SETTINGS
    @given(
        field=st.sampled_from(["formula", "condition", "quantity", "uom_id", "product_id", "max_multiplier"]),
        value=HOSTILE,
    )
    def test_inkind_item(self, field, value):
        item = self.inkind_item
        self.configure(item, {field: value}, then=lambda: item.sudo()._figures(self.partner_ids))

    @SETTINGS
    @given(
        field=st.sampled_from(["max_amount", "transfer_fee", "validation_group_id"]),
        value=HOSTILE,
    )
    def test_cash_manager(self, field, value):
        self.configure(self.cash_manager, {field: value})

    @SETTINGS
    @given(value=HOSTILE)
    def test_cycle_duration(self, value):
        self.configure(self.program, {"cycle_duration": value})
