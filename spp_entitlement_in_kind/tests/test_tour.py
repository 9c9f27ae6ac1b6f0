import shutil

from odoo.tests import HttpCase, tagged

from .common import InkindCommon

PROGRAM = "Tour food basket"

# Where each tour starts (the tours name no ``url``: this is the one place). Started from
# ``/web`` with a ``url`` of its own, a tour changes only the url's fragment, and the web
# client, still opening the default app, could end on that app instead of the action.
PROGRAMS = "/web#action=g2p_programs_ext.g2p_program_action"
CYCLES = "/web#action=g2p_programs_ext.g2p_cycle_action"
ENTITLEMENTS = "/web#action=spp_entitlement_in_kind.g2p_entitlement_inkind_action"


@tagged("post_install", "-at_install")
class TestDistributionTour(HttpCase, InkindCommon):
    """The back office in a real browser (headless Chromium), one tour per role, each
    followed by a check of the database (issue 11). Data: InkindCommon's four
    households (sizes 3, 1, 5 and 2) with rice and oil in stock."""

    def setUp(self):
        super().setUp()
        # A missing browser makes Odoo skip the tour: here that is a failure.
        self.assertTrue(
            shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome"),
            "Chromium is needed for the browser tour (setup/setup.sh installs Debian's chromium)",
        )
        # The test thread's checks between tours and the browser's late requests (a
        # websocket retry as Chromium closes) share the one test cursor; a request's
        # cursor takes the registry's test lock, the test thread does not. Hold it while
        # the test thread works, and let go of it only while a tour runs (a late request
        # once broke a check here: "no results to fetch").
        self.registry.test_lock.acquire()
        self.addCleanup(self.registry.test_lock.release)

    def start_tour(self, *args, **kwargs):
        self.registry.test_lock.release()
        try:
            return super().start_tour(*args, **kwargs)
        finally:
            self.registry.test_lock.acquire()

    def test_distribution_flow(self):
        Program = self.env["g2p.program"]
        self.start_tour(PROGRAMS, "g2p_tour_manager_creates_program", login=self.manager.login)
        program = Program.search([("name", "=", PROGRAM)])
        self.assertEqual(len(program), 1, "the manager created the program with the wizard")
        self.assertEqual(program.eligibility_expression, "me.household_size >= 2")
        manager = program.entitlement_manager_inkind_ids
        self.assertEqual(len(manager), 1, "with its in-kind entitlement manager")
        self.assertFalse(program.entitlement_manager_cash_ids, "no cash item: no cash manager")
        self.assertEqual(
            manager.validation_group_id, self.env.ref("g2p_programs_ext.group_program_validator")
        )
        self.assertEqual(
            [(i.product_id, i.quantity, i.uom_id) for i in manager.item_ids], [(self.rice, 5.0, self.kg)]
        )

        self.start_tour(PROGRAMS, "g2p_tour_officer_prepares_cycle", login=self.officer.login)
        self.assertEqual(
            set(program.program_membership_ids.filtered(lambda m: m.state == "enrolled").partner_id.ids),
            set((self.h1 | self.h3 | self.h4).ids),
        )
        cycle = program.cycle_ids
        self.assertEqual(len(cycle), 1)
        self.assertEqual(cycle.state, "to_approve")
        entitlements = cycle.inkind_entitlement_ids
        self.assertEqual(len(entitlements), 3)
        self.assertEqual(set(entitlements.mapped("state")), {"pending_validation"})

        self.start_tour(CYCLES, "g2p_tour_approver_approves_cycle", login=self.approver.login)
        self.assertEqual(cycle.state, "approved")

        self.start_tour(ENTITLEMENTS, "g2p_tour_validator_approves_and_rejects", login=self.validator.login)
        entitlements.invalidate_recordset()
        rejected = entitlements.filtered(lambda e: e.state == "rejected")
        self.assertEqual(rejected.partner_id, self.h1)
        self.assertEqual((rejected.rejection_reason, rejected.rejection_note), ("other", "Moved away"))
        self.assertEqual(rejected.rejected_by_id, self.validator)
        approved = entitlements - rejected
        self.assertEqual(set(approved.mapped("state")), {"approved"})
        self.assertTrue(all(approved.mapped("code")), "approved entitlements have their ERN")
        self.assertEqual(set(approved.mapped("approved_by_id")), {self.validator})

        # The tour itself checks that the report answered with the two vouchers.
        self.start_tour(ENTITLEMENTS, "g2p_tour_officer_prints_vouchers", login=self.officer.login)
        self.assertEqual(set(approved.mapped("state")), {"approved"}, "printing changes nothing")

        # The guide's loop inside the approved cycle: reset, correct, submit, approve.
        free_before = self.figures(self.rice, self.wh_north)["free"]
        self.start_tour(ENTITLEMENTS, "g2p_tour_officer_corrects_and_resubmits", login=self.officer.login)
        rejected.invalidate_recordset()
        self.assertEqual((rejected.state, rejected.quantity), ("pending_validation", 4.0))
        self.assertEqual(rejected.submitted_by_id, self.officer)
        self.assertEqual(rejected.note, "One member moved away")
        change = rejected.correction_ids.filtered(lambda c: c.field_name == "quantity")
        self.assertEqual((change.old_value, change.new_value, change.user_id), ("5.0", "4.0", self.officer))
        self.start_tour(ENTITLEMENTS, "g2p_tour_validator_approves_resubmitted", login=self.validator.login)
        rejected.invalidate_recordset()
        self.assertEqual((rejected.state, rejected.approved_by_id), ("approved", self.validator))
        self.assertTrue(rejected.code)
        self.assertEqual(cycle.state, "approved")
        self.assertAlmostEqual(free_before - self.figures(self.rice, self.wh_north)["free"], 4.0)
