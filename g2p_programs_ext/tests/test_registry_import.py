import base64
import gzip

from odoo.addons.queue_job.tests.common import trap_jobs
from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from .common import G2PCommon

HOUSEHOLDS = """id,name,is_registrant,is_group,street,city,country_id/id
t_hh_1,Household of Ana Cruz,True,True,12 Mabini Street,Pasay,base.ph
t_hh_2,Household of Jose Reyes,True,True,4 Rizal Avenue,Cebu,base.ph
"""
INDIVIDUALS = """id,name,is_registrant,is_group,id_number,birthdate,gender,has_disability,is_pregnant,phone,email
t_ind_1,Ana Cruz,True,False,IMP-1,1990-04-01,female,False,True,+63 917 123 4567,Ana.Cruz@Example.org
t_ind_2,Ben Cruz,True,False,IMP-2,2021-11-30,male,True,False,,
t_ind_3,Jose Reyes,True,False,IMP-3,1961-02-28,male,False,False,0917 765 4321,
"""
MEMBERSHIPS = """id,group_id/id,individual_id/id,kind_ids/id,start_date
t_mem_1,t_hh_1,t_ind_1,"g2p_programs_ext.membership_kind_head,g2p_programs_ext.membership_kind_principal_recipient",2024-01-15
t_mem_2,t_hh_1,t_ind_2,,2024-01-15
t_mem_3,t_hh_2,t_ind_3,g2p_programs_ext.membership_kind_head,2023-06-01
"""

#: Columns that differ between two registrants by construction.
OWN = {"id", "create_date", "write_date", "commercial_partner_id", "id_number"}


@tagged("post_install", "-at_install")
class TestRegistryImport(G2PCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Import = cls.env["g2p.registry.import"].with_user(cls.officer)

    def _rows(self, table, ids):
        self.env.flush_all()
        self.env.cr.execute("SELECT * FROM %s WHERE id = ANY(%%s) ORDER BY id" % table, [list(ids)])
        columns = [d[0] for d in self.env.cr.description]
        return [dict(zip(columns, row, strict=True)) for row in self.env.cr.fetchall()]

    def _count(self):
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT (SELECT count(*) FROM res_partner), (SELECT count(*) FROM g2p_group_membership),"
            " (SELECT count(*) FROM ir_model_data WHERE module = '__import__')"
        )
        return self.env.cr.fetchone()

    def _codes(self, result):
        return [(e["file"], e["line"], e["code"]) for e in result["errors"]]

    # ------------------------------------------------------------------
    # A good file
    # ------------------------------------------------------------------
    def test_good_file_imported_as_the_orm_creates(self):
        result = self.Import.import_registry(HOUSEHOLDS, INDIVIDUALS, MEMBERSHIPS)
        self.assertTrue(result["ok"], result["errors"])
        self.assertEqual((result["households"], result["individuals"], result["memberships"]), (2, 3, 3))
        self.assertEqual(result["error_count"], 0)

        hh1 = self.env.ref("__import__.t_hh_1")
        ana, ben, jose = (self.env.ref("__import__.t_ind_%s" % i) for i in (1, 2, 3))
        self.assertEqual(hh1.household_size, 2)
        self.assertEqual(hh1.group_membership_ids.individual_id, ana | ben)
        self.assertEqual(
            ana.individual_membership_ids.kind_ids,
            self.head_kind | self.env.ref("g2p_programs_ext.membership_kind_principal_recipient"),
        )
        self.assertEqual(str(ben.birthdate), "2021-11-30")
        self.assertEqual(jose.individual_membership_ids.group_id.household_size, 1)

        # The same registrants made by the ORM, as the same officer (tracking off, as batch work does).
        Partner = self.env["res.partner"].with_user(self.officer)
        ph = self.env.ref("base.ph")
        orm_hh = Partner.create(
            [
                {"name": "Household of Ana Cruz", "is_registrant": True, "is_group": True, "street": "12 Mabini Street",
                 "city": "Pasay", "country_id": ph.id},
                {"name": "Household of Jose Reyes", "is_registrant": True, "is_group": True, "street": "4 Rizal Avenue",
                 "city": "Cebu", "country_id": ph.id},
            ]
        )  # fmt: skip
        orm_ind = Partner.create(
            [
                {"name": "Ana Cruz", "is_registrant": True, "is_group": False, "id_number": "ORM-1",
                 "birthdate": "1990-04-01", "gender": "female", "has_disability": False, "is_pregnant": True,
                 "phone": "+63 917 123 4567", "email": "Ana.Cruz@Example.org"},
                {"name": "Ben Cruz", "is_registrant": True, "is_group": False, "id_number": "ORM-2",
                 "birthdate": "2021-11-30", "gender": "male", "has_disability": True, "is_pregnant": False},
                {"name": "Jose Reyes", "is_registrant": True, "is_group": False, "id_number": "ORM-3",
                 "birthdate": "1961-02-28", "gender": "male", "has_disability": False, "is_pregnant": False,
                 "phone": "0917 765 4321"},
            ]
        )  # fmt: skip
        principal = self.env.ref("g2p_programs_ext.membership_kind_principal_recipient")
        orm_mem = (
            self.env["g2p.group.membership"]
            .with_user(self.officer)
            .create(
                [
                    {"group_id": orm_hh[0].id, "individual_id": orm_ind[0].id, "start_date": "2024-01-15",
                     "kind_ids": [(6, 0, (self.head_kind | principal).ids)]},
                    {"group_id": orm_hh[0].id, "individual_id": orm_ind[1].id, "start_date": "2024-01-15"},
                    {"group_id": orm_hh[1].id, "individual_id": orm_ind[2].id, "start_date": "2023-06-01",
                     "kind_ids": [(6, 0, self.head_kind.ids)]},
                ]
            )
        )  # fmt: skip
        # Stored computes (household_size) are written at flush, by the user who flushes.
        orm_mem.env.flush_all()
        imported = self._rows("res_partner", (hh1 | self.env.ref("__import__.t_hh_2") | ana | ben | jose).ids)
        made = self._rows("res_partner", (orm_hh | orm_ind).ids)
        self.assertEqual(len(imported), 5)
        for mine, theirs in zip(imported, made, strict=True):
            self.assertEqual(mine["commercial_partner_id"], mine["id"])
            self.assertEqual((mine["id_number"] or "").replace("IMP", "ORM"), theirs["id_number"] or "")
            self.assertTrue(mine["create_date"] and mine["create_date"] == mine["write_date"])
            differing = {k: (mine[k], theirs[k]) for k in mine if k not in OWN and mine[k] != theirs[k]}
            self.assertEqual(differing, {}, "imported and ORM-made rows differ (imported, ORM)")
        self.assertEqual(imported[2]["create_uid"], self.officer.id)

        own = {"id", "create_date", "write_date", "group_id", "individual_id"}
        mine = self._rows("g2p_group_membership", (ana | ben | jose).individual_membership_ids.ids)
        theirs = self._rows("g2p_group_membership", orm_mem.ids)
        for a, b in zip(mine, theirs, strict=True):
            self.assertEqual(
                {k: v for k, v in a.items() if k not in own}, {k: v for k, v in b.items() if k not in own}
            )
        self.assertEqual(
            [m.kind_ids for m in (ana | ben | jose).individual_membership_ids], [m.kind_ids for m in orm_mem]
        )

    def test_base64_and_bytes_input(self):
        result = self.Import.import_registry(
            base64.b64encode(HOUSEHOLDS.encode()).decode(), INDIVIDUALS.encode(), MEMBERSHIPS
        )
        self.assertTrue(result["ok"], result["errors"])
        self.assertEqual(self.env.ref("__import__.t_hh_2").household_size, 1)

    # ------------------------------------------------------------------
    # Bad lines: each reported with its line and reason, nothing imported
    # ------------------------------------------------------------------
    def test_each_kind_of_bad_line_reported_and_nothing_imported(self):
        before = self._count()
        households = (
            HOUSEHOLDS + "t_hh_3,,True,True,,,base.ph\nt_hh_4,Household X,True,maybe,,,base.nowhere\n"
        )
        individuals = INDIVIDUALS + (
            "t_ind_4,Dan,True,False,IMP-4,1990-02-30,female,False,False,,\n"
            "t_ind_5,Eve,True,False,IMP-5,1990-01-01,woman,False,False,,\n"
            "t_ind_6,Fay,True,True,IMP-6,1990-01-01,female,False,False,,\n"
            "t_ind_7,Gus,True,False,IMP-7,01/02/1990,male,False,False,,\n"
            "t_ind_8,Hal,True,False,IMP-8\n"
        )
        memberships = (
            "id,group_id/id,individual_id/id,kind_ids/id,start_date,end_date\n"
            + "".join(line + ",\n" for line in MEMBERSHIPS.splitlines()[1:])
            + "t_mem_4,t_hh_9,t_ind_4,,2024-01-01,\n"
            "t_mem_5,t_hh_2,t_ind_99,,2024-01-01,\n"
            "t_mem_6,t_hh_2,t_ind_5,g2p_programs_ext.no_such_kind,2024-01-01,\n"
            "t_mem_7,t_hh_2,t_ind_6,,2024-02-01,2024-01-01\n"
        )
        result = self.Import.import_registry(households, individuals, memberships)
        self.assertFalse(result["ok"])
        self.assertEqual(
            self._codes(result),
            [
                ("households", 4, "missing_value"),
                ("households", 5, "bad_boolean"),
                ("households", 5, "unknown_reference"),
                ("individuals", 5, "bad_date"),
                ("individuals", 6, "bad_selection"),
                ("individuals", 7, "wrong_kind"),
                ("individuals", 8, "bad_date"),
                ("individuals", 9, "bad_line"),
                ("memberships", 5, "unknown_household"),
                ("memberships", 6, "unknown_individual"),
                ("memberships", 7, "unknown_reference"),
                ("memberships", 8, "dates_ordered"),
            ],
        )
        self.assertTrue(all(e["message"].startswith("[%s] " % e["code"]) for e in result["errors"]))
        self.assertEqual(result["error_count"], 12)
        self.assertEqual(self._count(), before, "a refused import writes nothing")

    def test_references_checked_in_sql_reported_and_nothing_imported(self):
        before = self._count()
        memberships = (
            MEMBERSHIPS + "t_mem_4,t_hh_9,t_ind_2,,2024-01-01\nt_mem_5,t_hh_2,t_ind_99,,2024-01-01\n"
        )
        result = self.Import.import_registry(HOUSEHOLDS, INDIVIDUALS, memberships)
        self.assertEqual(
            self._codes(result),
            [
                ("memberships", 5, "unknown_household"),
                ("memberships", 5, "two_households"),
                ("memberships", 6, "unknown_individual"),
            ],
        )
        self.assertIn("t_hh_9", result["errors"][0]["message"])
        self.assertIn("also on line 3", result["errors"][1]["message"])
        self.assertEqual(self._count(), before)

    def test_unknown_and_missing_columns(self):
        result = self.Import.import_registry(
            HOUSEHOLDS.replace("street,", "strete,"), INDIVIDUALS.replace("name,", "nom,")
        )
        self.assertEqual(
            self._codes(result),
            [
                ("households", 1, "unknown_column"),
                ("individuals", 1, "unknown_column"),
                ("individuals", 1, "missing_column"),
            ],
        )

    # ------------------------------------------------------------------
    # Registry rules across lines and against the database
    # ------------------------------------------------------------------
    def test_duplicate_id_number_in_file_and_in_database(self):
        self.make_household("Existing", [{"id_number": "IMP-3"}])
        before = self._count()
        individuals = INDIVIDUALS + "t_ind_4,Dup Ana,True,False,IMP-1,1990-04-01,female,False,False,,\n"
        result = self.Import.import_registry(HOUSEHOLDS, individuals, MEMBERSHIPS)
        self.assertEqual(
            self._codes(result),
            [("individuals", 4, "duplicate_id_number"), ("individuals", 5, "duplicate_id_number")],
        )
        self.assertIn("also on line 2", result["errors"][1]["message"])
        self.assertIn("already held", result["errors"][0]["message"])
        self.assertEqual(self._count(), before)

    def test_duplicate_external_id_in_file_and_in_database(self):
        self.assertTrue(self.Import.import_registry(HOUSEHOLDS)["ok"])
        result = self.Import.import_registry(HOUSEHOLDS.replace("t_hh_2", "t_hh_1"))
        self.assertEqual(
            self._codes(result),
            [
                ("households", 2, "xmlid_exists"),
                ("households", 3, "duplicate_xmlid"),
                ("households", 3, "xmlid_exists"),
            ],
        )

    def test_individual_in_two_active_households_refused(self):
        before = self._count()
        memberships = MEMBERSHIPS + "t_mem_4,t_hh_2,t_ind_1,,2024-03-01\n"
        result = self.Import.import_registry(HOUSEHOLDS, INDIVIDUALS, memberships)
        self.assertEqual(self._codes(result), [("memberships", 5, "two_households")])
        self.assertEqual(self._count(), before)
        # Against the registry: a member of an existing household joins one of the file.
        group, (person,) = self.make_household("Existing", [{"id_number": "EX-1"}])
        self.env["ir.model.data"].create(
            {"module": "__import__", "name": "t_existing", "model": "res.partner", "res_id": person.id}
        )
        before = self._count()
        result = self.Import.import_registry(
            HOUSEHOLDS, INDIVIDUALS, MEMBERSHIPS + "t_mem_4,t_hh_2,t_existing,,2024-03-01\n"
        )
        self.assertEqual(self._codes(result), [("memberships", 5, "two_households")])
        self.assertIn(str(group.id), result["errors"][0]["message"])
        self.assertEqual(self._count(), before)

    def test_unique_role_once_per_household(self):
        memberships = MEMBERSHIPS.replace(
            "t_mem_2,t_hh_1,t_ind_2,,", "t_mem_2,t_hh_1,t_ind_2,g2p_programs_ext.membership_kind_head,"
        )
        result = self.Import.import_registry(HOUSEHOLDS, INDIVIDUALS, memberships)
        self.assertEqual(self._codes(result), [("memberships", 3, "unique_role")])

    def test_memberships_into_registry_households(self):
        group, _members = self.make_household("Existing", [{"id_number": "EX-1"}])
        self.env["ir.model.data"].create(
            {"module": "__import__", "name": "t_existing_hh", "model": "res.partner", "res_id": group.id}
        )
        result = self.Import.import_registry(
            "", INDIVIDUALS, "id,group_id/id,individual_id/id\nt_mem_9,t_existing_hh,t_ind_1\n"
        )
        self.assertTrue(result["ok"], result["errors"])
        self.assertEqual(group.household_size, 2)
        self.assertEqual(self.env.ref("__import__.t_mem_9").start_date, self.today)

    # ------------------------------------------------------------------
    # Rights, wizard, job
    # ------------------------------------------------------------------
    def test_only_registry_officers_import(self):
        with self.assertRaisesRegex(AccessError, r"^\[not_allowed\] "):
            self.env["g2p.registry.import"].with_user(self.internal).import_registry(HOUSEHOLDS)
        with self.assertRaises(AccessError):
            self.env["g2p.registry.import"].with_user(self.validator).import_registry(HOUSEHOLDS)
        result = self.env["g2p.registry.import"].with_user(self.manager).import_registry(HOUSEHOLDS)
        self.assertTrue(result["ok"])

    def test_wizard_runs_small_import_at_once(self):
        wizard = self.Import.create(
            {
                "households_file": base64.b64encode(HOUSEHOLDS.encode()),
                "individuals_file": base64.b64encode(INDIVIDUALS.encode()),
                "memberships_file": base64.b64encode(MEMBERSHIPS.encode()),
            }
        )
        wizard.action_import()
        self.assertEqual(wizard.state, "done")
        self.assertEqual(
            (wizard.households_count, wizard.individuals_count, wizard.memberships_count), (2, 3, 3)
        )
        self.assertEqual(self.env.ref("__import__.t_hh_1").household_size, 2)

    def test_wizard_above_threshold_runs_as_job_and_reports_bad_lines(self):
        self.env["ir.config_parameter"].sudo().set_param("g2p_programs_ext.async_threshold", 3)
        wizard = self.Import.create(
            {
                "households_file": base64.b64encode(HOUSEHOLDS.encode()),
                "individuals_file": base64.b64encode(INDIVIDUALS.replace("IMP-2", "IMP-1").encode()),
                "memberships_file": base64.b64encode(MEMBERSHIPS.encode()),
            }
        )
        with trap_jobs() as trap:
            wizard.action_import()
            trap.assert_jobs_count(1, only=wizard._job_import)
            self.assertEqual(wizard.state, "running")
            trap.perform_enqueued_jobs()
        self.assertEqual(wizard.state, "failed")
        self.assertEqual(wizard.error_count, 1)
        self.assertIn("individuals, line 3: [duplicate_id_number]", wizard.result_text)
        self.assertFalse(self.env.ref("__import__.t_hh_1", raise_if_not_found=False))

    def test_wizard_files_in_parts_read_as_one_file(self):
        """A file sent in parts (split mid-line, some gzipped, some not) is the same file:
        line numbers run on across parts; a part cannot be added once the import started."""
        individuals = INDIVIDUALS.encode()
        cut1, cut2 = individuals.index(b"Ben") + 2, individuals.index(b"IMP-3") + 1
        wizard = self.Import.create(
            {
                "households_file": base64.b64encode(gzip.compress(HOUSEHOLDS.encode())),
                "individuals_file": base64.b64encode(gzip.compress(individuals[:cut1])),
                "memberships_file": base64.b64encode(MEMBERSHIPS.encode()),
            }
        )
        Part = self.env["g2p.registry.import.part"].with_user(self.officer)
        # created out of order: read by sequence
        Part.create(
            {
                "import_id": wizard.id,
                "file": "individuals",
                "sequence": 2,
                "data": base64.b64encode(individuals[cut2:]),
            }
        )
        Part.create({"import_id": wizard.id, "file": "individuals", "sequence": 1,
                     "data": base64.b64encode(gzip.compress(individuals[cut1:cut2]))})  # fmt: skip
        wizard.action_import()
        self.assertEqual(wizard.state, "done", wizard.result_text)
        self.assertEqual(
            (wizard.households_count, wizard.individuals_count, wizard.memberships_count), (2, 3, 3)
        )
        self.assertEqual(self.env.ref("__import__.t_ind_2").name, "Ben Cruz")
        self.assertEqual(self.env.ref("__import__.t_ind_3").id_number, "IMP-3")
        with self.assertRaisesRegex(UserError, r"^\[running\] "):
            Part.create({"import_id": wizard.id, "file": "individuals", "data": base64.b64encode(b"x")})

    def test_wizard_parts_bad_line_numbered_in_the_whole_file(self):
        bad = INDIVIDUALS.replace("IMP-3", "IMP-1").encode()
        cut = bad.index(b"t_ind_3")
        wizard = self.Import.create(
            {
                "households_file": base64.b64encode(HOUSEHOLDS.encode()),
                "individuals_file": base64.b64encode(bad[:cut]),
                "memberships_file": base64.b64encode(MEMBERSHIPS.encode()),
            }
        )
        self.env["g2p.registry.import.part"].with_user(self.officer).create(
            {
                "import_id": wizard.id,
                "file": "individuals",
                "data": base64.b64encode(gzip.compress(bad[cut:])),
            }
        )
        wizard.action_import()
        self.assertEqual(wizard.state, "failed")
        self.assertIn("individuals, line 4: [duplicate_id_number]", wizard.result_text)
        self.assertFalse(self.env.ref("__import__.t_hh_1", raise_if_not_found=False))
