"""The household summary of the members' facts (g2p.household.member.facts).

It answers ``members.exists(m, A || B ...)`` over single-fact atoms, ``size(members)``
and ``size(members.filter(m, A))`` for one such atom, for the eligible count, enrollment
and generation. These tests check that it follows every path
that changes members or their facts (the ORM as a registry officer, the registry
import's raw SQL) and that its answers, errors included, are those of the grouped pass
over the members and of the official runtime per beneficiary (also over random
registries with ended memberships, in the property test below).
"""

import os

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from odoo.addons.g2p_programs_ext import cel, cel_sql
from odoo.addons.g2p_programs_ext.models.g2p_household_member_facts import SUMMARY
from odoo.tests import tagged
from odoo.tools import SQL

from .common import G2PCommon
from .test_cel_sql import ERROR, REGISTRY, _same

LONG = os.environ.get("G2P_LONG_TESTS") == "1"
DEMO_RULE = (
    "members.exists(m, m.age < 5 || m.age >= 60) || members.exists(m, m.is_pregnant || m.has_disability)"
)

# Texts whose aggregates the summary answers (each is checked to use it) ...
_ATOMS = [
    "m.age < 5",
    "m.age >= 60",
    "m.age <= 17",
    "m.age > 64",
    "18 <= m.age",
    "5 > m.age",
    "m.age < 0",
    "m.is_pregnant",
    "m.has_disability",
    "!m.is_pregnant",
    "!m.has_disability",
    "(m.age < 2)",
]
# ... and counts of members that make one atom true (ints, doubles, bools over them)
COUNTS = st.sampled_from(_ATOMS).flatmap(
    lambda atom: st.sampled_from(
        [
            "size(members.filter(m, %s))" % atom,
            "members.filter(m, %s).size()" % atom,
            "10.0 * double(size(members.filter(m, %s)))" % atom,
            "size(members.filter(m, %s)) >= 2" % atom,
            "size(members.filter(m, %s)) == 0" % atom,
        ]
    )
)
FACT_TEXTS = st.one_of(
    st.lists(st.sampled_from(_ATOMS), min_size=1, max_size=3).map(
        lambda atoms: "members.exists(m, %s)" % " || ".join(atoms)
    ),
    st.sampled_from(["size(members) > 2", "size(members) == 0", "members.size() >= 1"]),
    COUNTS.filter(lambda text: text.endswith(("2", "0"))),
)
TEXTS = st.one_of(
    FACT_TEXTS,
    st.tuples(FACT_TEXTS, st.sampled_from(["&&", "||"]), FACT_TEXTS).map(lambda t: "%s %s %s" % t),
    st.just(DEMO_RULE),
    COUNTS,
    st.tuples(COUNTS.filter(lambda text: not text.endswith(("2", "0"))), COUNTS)
    .filter(lambda t: t[0].startswith("10.0") == t[1].startswith("10.0") and not t[1].endswith(("2", "0")))
    .map(lambda t: "%s + %s" % t),
)
SETTINGS = settings(
    max_examples=300 if LONG else 25,
    deadline=None,
    database=None,
    derandomize=not LONG,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


@tagged("post_install", "-at_install")
class TestMemberFacts(G2PCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.serial = 0
        cls.program = cls.env["g2p.program"].create(
            {
                "name": "Member facts",
                "target_type": "group",
                "eligibility_expression": DEMO_RULE,
                "eligibility_domain": "[('name', '=like', 'FACTS %')]",
            }
        )
        cls.Membership = cls.env["g2p.group.membership"].with_user(cls.officer)
        cls.Officer = cls.env["res.partner"].with_user(cls.officer)

    # -- helpers -------------------------------------------------------------------
    def counts(self, program=None):
        """(eligible, errors, candidates) by the summary, checked equal to the grouped
        pass and to the official runtime per beneficiary."""
        program = program or self.program
        summary = program._eligibility_counts()
        grouped = program.with_context(cel_grouped_pass=True)._eligibility_counts()
        runtime = program.with_context(cel_per_beneficiary=True)._eligibility_counts()
        self.assertEqual(tuple(summary), tuple(grouped), "summary vs grouped pass")
        self.assertEqual(tuple(summary), tuple(runtime), "summary vs official runtime")
        return tuple(summary)

    def household(self, members):
        self.__class__.serial += 1
        return self.make_household("FACTS %s" % self.serial, members)

    def assert_summary_exact(self):
        """The maintained table equals a rebuild from the memberships."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                "SELECT group_id, member_count, birthdate_min, birthdate_max, birthdate_missing, pregnant_count,"
                " disability_count, birthdates FROM g2p_household_member_facts ORDER BY group_id"
            )
        )
        kept = self.env.cr.fetchall()
        self.env.cr.execute(SQL("SELECT * FROM (%s) r ORDER BY 1", SQL(SUMMARY)))
        self.assertEqual(kept, self.env.cr.fetchall())

    # -- the path ------------------------------------------------------------------
    def test_path_says_summary(self):
        """The program form says when the summary answers; the grouped pass otherwise."""
        self.assertIn("household summary", self.program.eligibility_path)
        self.assertTrue(cel_sql.compile_expression(DEMO_RULE).uses_member_facts)
        for text in (
            "members.exists(m, m.gender == 'male')",
            # a count over two atoms: a member may make both true, the summary cannot tell
            "size(members.filter(m, m.age < 5 || m.is_pregnant)) > 0",
            "size(members.filter(m, m.age < 5 && m.has_disability))",
            "size(members.filter(m, m.age < 200))",  # beyond the ages compared by date
            "size(members.filter(m, m.age < 5).filter(n, n.is_pregnant))",
            "members.exists(m, size(members.filter(n, n.age < 5)) > 1)",  # inside a macro
        ):
            self.assertEqual(cel.path_label(text), "evaluated in SQL", text)
            self.assertFalse(cel_sql.compile_expression(text).uses_member_facts, text)
        # the demo's formulas: counts of members by one atom, from the summary's birthdates
        for text in (
            "10.0 * double(size(members.filter(m, m.age < 5)))",
            "5.0 * double(size(members.filter(m, m.age >= 60)))",
            "members.filter(m, m.is_pregnant).size() > 0",
            "size(members.filter(m, !m.has_disability))",
        ):
            self.assertEqual(
                cel.path_label(text, {"base_amount": "double"}),
                "evaluated in SQL, members' facts read from the household summary",
                text,
            )
        # `me` mentioned inside the predicate: not single-member facts
        self.assertFalse(cel_sql.compile_expression("members.exists(m, m.age < me.age)").uses_member_facts)

    # -- every path that changes members or their facts -----------------------------
    def test_orm_changes_followed(self):
        """Birthdates, pregnancy, disability, memberships (added, ended, moved, removed)
        and individuals deleted, changed through the ORM as a registry officer: the
        count follows, equal to the grouped pass and to the runtime at each step."""
        group, (adult, other) = self.household([{"birthdate": self.born(30)}, {"birthdate": self.born(40)}])
        self.assertEqual(self.counts(), (0, 0, 1))
        self.Officer.browse(adult.id).write({"birthdate": self.born(3)})
        self.assertEqual(self.counts(), (1, 0, 1))
        self.Officer.browse(adult.id).write({"birthdate": self.born(30)})
        self.assertEqual(self.counts(), (0, 0, 1))
        self.Officer.browse(other.id).write({"is_pregnant": True})
        self.assertEqual(self.counts(), (1, 0, 1))
        membership = self.Membership.search([("individual_id", "=", other.id)])
        membership.write({"end_date": self.today})  # she left the household
        self.assertEqual(self.counts(), (0, 0, 1))
        membership.write({"end_date": False})
        self.assertEqual(self.counts(), (1, 0, 1))
        # moved to another household
        group2, _members = self.household([{"birthdate": self.born(20)}])
        membership.write({"group_id": group2.id})
        self.assertEqual(self.counts(), (1, 0, 2))
        membership.unlink()
        self.assertEqual(self.counts(), (0, 0, 2))
        # a member without a birthdate: an error (skipped and counted), unless another is true
        baby = self.Officer.create({"name": "FACTS baby", "is_registrant": True})
        self.Membership.create({"group_id": group.id, "individual_id": baby.id})
        self.assertEqual(self.counts(), (0, 1, 2))
        self.Officer.browse(baby.id).write({"has_disability": True})
        self.assertEqual(self.counts(), (1, 0, 2))
        # deleting a registrant is an administrator's act; memberships go with it (cascade)
        self.env["res.partner"].browse(baby.id).unlink()
        self.assertEqual(self.counts(), (0, 0, 2))
        self.Officer.browse(other.id).write({"birthdate": self.born(61)})
        self.assertEqual(self.counts(), (0, 0, 2))  # no longer a member of any household
        self.Membership.create({"group_id": group2.id, "individual_id": other.id})
        self.assertEqual(self.counts(), (1, 0, 2))
        self.assert_summary_exact()

    def test_import_followed(self):
        """The registry import (raw SQL) is followed too: a pregnant woman and a child
        imported into two new households, then an ended membership."""
        before = self.counts()
        households = "id,name,is_registrant,is_group\nf_hh_1,FACTS imported 1,True,True\nf_hh_2,FACTS imported 2,True,True\n"
        individuals = (
            "id,name,is_registrant,is_group,birthdate,is_pregnant\n"
            "f_ind_1,FACTS Ana,True,False,1990-04-01,True\n"
            "f_ind_2,FACTS Ben,True,False,%s,False\n"
            "f_ind_3,FACTS Jose,True,False,1990-02-28,False\n" % self.born(2)
        )
        memberships = (
            "id,group_id/id,individual_id/id,start_date,end_date\n"
            "f_mem_1,f_hh_1,f_ind_1,2024-01-15,\n"
            "f_mem_2,f_hh_2,f_ind_2,2024-01-15,2024-06-30\n"
            "f_mem_3,f_hh_2,f_ind_3,2024-01-15,\n"
        )
        result = (
            self.env["g2p.registry.import"]
            .with_user(self.officer)
            .import_registry(households, individuals, memberships)
        )
        self.assertTrue(result["ok"], result["errors"])
        # hh 1: pregnant; hh 2: the child's membership ended, Jose is 30-something
        self.assertEqual(self.counts(), (before[0] + 1, before[1], before[2] + 2))
        self.assert_summary_exact()

    def test_refresh_and_rebuild(self):
        """_refresh() of given households and the install/upgrade rebuild (init) give the
        table a rebuild from the memberships gives."""
        group, (member,) = self.household([{"birthdate": self.born(70)}])
        # a write that bypasses the triggers (as a restore without them would)
        self.env.flush_all()
        self.env.cr.execute("ALTER TABLE res_partner DISABLE TRIGGER g2p_member_facts_res_partner_update")
        self.env.cr.execute("UPDATE res_partner SET birthdate = %s WHERE id = %s", [self.born(30), member.id])
        self.env.cr.execute("ALTER TABLE res_partner ENABLE TRIGGER g2p_member_facts_res_partner_update")
        self.env["res.partner"].invalidate_model(["birthdate"])
        with self.assertRaises(AssertionError):
            self.assert_summary_exact()
        self.env["g2p.household.member.facts"]._refresh(group.ids)
        self.assert_summary_exact()
        self.env.cr.execute("DELETE FROM g2p_household_member_facts")
        self.env["g2p.household.member.facts"].init()
        self.assert_summary_exact()

    def test_cron_vacuum_runs(self):
        """The vacuum cron runs (its own connection, outside the transaction)."""
        self.assertTrue(
            self.env["g2p.household.member.facts"].with_context(g2p_force_vacuum=True)._cron_vacuum()
        )

    # -- property: summary = grouped pass = correlated subqueries = runtime -----------
    @SETTINGS
    @given(text=TEXTS, households=REGISTRY, ended=st.lists(st.integers(0, 15), max_size=3))
    def test_parity_property(self, text, households, ended):
        """Random registries (missing birthdates, empty households, ended memberships):
        the summary, the grouped pass, correlated subqueries and the official runtime
        agree on every household, errors included."""
        compiled = cel_sql.compile_expression(text)
        self.assertTrue(compiled.uses_member_facts, text)
        ids = []
        for members in households:
            if members:
                group, individuals = self.household(members)
                ids.append(group.id)
            else:
                self.__class__.serial += 1
                ids.append(
                    self.Partner.create(
                        {"name": "FACTS %s" % self.serial, "is_registrant": True, "is_group": True}
                    ).id
                )
        memberships = self.Membership.search([("group_id", "in", ids)], order="id")
        for index in sorted(set(ended)):
            if index < len(memberships):
                memberships[index].write({"end_date": self.today})
        self.env.flush_all()
        ids_sql = SQL("(SELECT unnest(%s::int[]))", ids)
        values = {}
        for label, facts in (("summary", True), ("grouped", False)):
            value, joins = compiled.parts("p", self.today, ids_sql, member_facts=facts)
            self.env.cr.execute(
                SQL("SELECT p.id, %s FROM res_partner p %s WHERE p.id = ANY(%s)", value, joins, ids)
            )
            values[label] = {pid: ERROR if v is None else v for pid, v in self.env.cr.fetchall()}
        self.env.cr.execute(
            SQL("SELECT p.id, %s FROM res_partner p WHERE p.id = ANY(%s)", compiled.sql("p", self.today), ids)
        )
        values["correlated"] = {pid: ERROR if v is None else v for pid, v in self.env.cr.fetchall()}
        facts = cel.read_facts(self.env, ids, cel.FACTS, self.today)
        by_group = self.Partner.browse(ids).active_members_by_group()
        member_facts = cel.read_facts(
            self.env, [m for ms in by_group.values() for m in ms], cel.FACTS, self.today
        )
        program = cel._RUNTIME.compile(text)
        for pid in ids:
            value = cel.evaluate(program, dict(facts[pid]), [dict(member_facts[m]) for m in by_group[pid]])
            runtime = ERROR if isinstance(value, cel.CELRunError) else value
            for label in ("summary", "grouped", "correlated"):
                self.assertTrue(
                    _same(values[label][pid], runtime),
                    "%s on %s: %s %r, runtime %r"
                    % (
                        text,
                        [dict(member_facts[m]) for m in by_group[pid]],
                        label,
                        values[label][pid],
                        runtime,
                    ),
                )
        self.assert_summary_exact()
