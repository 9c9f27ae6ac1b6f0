from odoo.exceptions import AccessError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .test_entitlements import EntitlementCommon


@tagged("post_install", "-at_install")
class TestBackOffice(EntitlementCommon):
    """The cycle dashboard's counts and the audit of who rejected, cancelled, reset."""

    def test_dashboard_counts_per_state_and_filtered_lists(self):
        cycle = self.approved_cycle()
        entitlements = cycle.entitlement_ids.sorted("id")
        self.assertEqual(len(entitlements), 4)
        entitlements[0].with_user(self.validator).approve_entitlement()
        entitlements[1].with_user(self.validator).action_reject("declined")
        entitlements[2].with_user(self.manager).action_cancel()
        cycle.invalidate_recordset()
        as_validator = cycle.with_user(self.validator)
        self.assertEqual(as_validator.entitlement_count, 4)
        self.assertEqual(
            [
                as_validator["cash_%s_count" % k]
                for k in ("draft", "pending", "approved", "redeemed", "closed")
            ],
            [0, 1, 1, 0, 2],
        )
        # Each smart button opens the list of its states, as the user sees it
        action = as_validator.with_context(dashboard_state="closed").action_open_entitlements()
        listed = self.env["g2p.entitlement"].with_user(self.validator).search(action["domain"])
        self.assertEqual(listed, entitlements[1] | entitlements[2])
        action = as_validator.action_open_entitlements()
        self.assertEqual(action["domain"], [("cycle_id", "=", cycle.id)])
        self.assertEqual(action["context"], {"search_default_group_state": 1})

    def test_dashboard_counts_of_several_cycles_in_one_query(self):
        first = self.approved_cycle()
        second = self.new_cycle()
        second.with_user(self.officer).prepare_entitlement()
        self.env.flush_all()

        def queries(cycles):
            cycles.invalidate_recordset()
            before = self.cr.sql_log_count
            counts = [(c.cash_pending_count, c.cash_draft_count) for c in cycles]
            return self.cr.sql_log_count - before, counts

        queries(first.with_user(self.officer))  # warm the access caches
        one, _counts = queries(first.with_user(self.officer))
        both, counts = queries((first | second).with_user(self.officer))
        self.assertEqual(counts, [(4, 0), (0, 4)])
        self.assertEqual(both, one, "the same queries for one cycle or several")

    def test_audit_fields_and_one_message_per_batch(self):
        cycle = self.approved_cycle()
        entitlements = cycle.entitlement_ids
        rejected = entitlements[:2]
        messages_before = len(cycle.message_ids)
        rejected.with_user(self.validator).action_reject("other", "Moved away")
        self.assertEqual(set(rejected.mapped("state")), {"rejected"})
        self.assertEqual(rejected.rejected_by_id, self.validator)
        self.assertTrue(all(rejected.mapped("date_rejected")))
        self.assertEqual(set(rejected.mapped("rejection_note")), {"Moved away"})
        cancelled = entitlements[2:]
        cancelled.with_user(self.manager).action_cancel()
        self.assertEqual(cancelled.cancelled_by_id, self.manager)
        self.assertTrue(all(cancelled.mapped("date_cancelled")))
        self.assertFalse(cancelled.rejected_by_id)
        cycle.invalidate_recordset(["message_ids"])
        new_messages = cycle.message_ids[: len(cycle.message_ids) - messages_before]
        self.assertEqual(len(new_messages), 2, "one message per batch on the cycle")
        self.assertIn("Cancelled by %s" % self.manager.name, new_messages[0].body)
        self.assertIn("(2 Cash entitlement)", new_messages[0].body)
        self.assertIn("Rejected by %s" % self.validator.name, new_messages[1].body)
        # Reset clears the audit of the decision it undoes
        entitlements.with_user(self.manager).action_reset_to_draft()
        self.assertFalse(entitlements.rejected_by_id | entitlements.cancelled_by_id)
        self.assertFalse(any(entitlements.mapped("date_rejected") + entitlements.mapped("date_cancelled")))

    def test_list_actions_as_each_role(self):
        """Action > Approve / Reject / Cancel entitlements / Reset to draft, as the
        list runs them (the bound server action or wizard, with the selection)."""
        cycle = self.approved_cycle()
        entitlements = cycle.entitlement_ids.sorted("id")

        def run(xmlid, user, records):
            action = self.env.ref(xmlid).with_user(user)
            return action.with_context(active_model=records._name, active_ids=records.ids).run()

        run("g2p_programs_ext.g2p_entitlement_action_approve", self.validator, entitlements[:2])
        self.assertEqual(entitlements[:2].mapped("state"), ["approved", "approved"])
        self.assertEqual(entitlements[:2].approved_by_id, self.validator)
        # the reject wizard, opened on the selection, needs a reason
        wizard_action = self.env.ref("g2p_programs_ext.g2p_entitlement_reject_wizard_action")
        self.assertEqual(wizard_action.binding_model_id.model, "g2p.entitlement")
        Wizard = (
            self.env["g2p.entitlement.reject.wizard"]
            .with_user(self.validator)
            .with_context(active_model="g2p.entitlement", active_ids=entitlements[2:].ids)
        )
        self.assertTrue(Wizard._fields["rejection_reason"].required)
        wizard = Wizard.create({"rejection_reason": "declined"})
        self.assertEqual(wizard.entitlement_count, 2)
        wizard.action_confirm()
        self.assertEqual(entitlements[2:].mapped("state"), ["rejected", "rejected"])
        # Cancel and Reset are the managers'
        with self.assertRaises(AccessError), mute_logger("odoo.addons.base.models.ir_actions"):
            run("g2p_programs_ext.g2p_entitlement_action_cancel", self.validator, entitlements[:2])
        run("g2p_programs_ext.g2p_entitlement_action_cancel", self.manager, entitlements[:2])
        self.assertEqual(entitlements[:2].mapped("state"), ["cancelled", "cancelled"])
        run("g2p_programs_ext.g2p_entitlement_action_reset_draft", self.manager, entitlements)
        self.assertEqual(set(entitlements.mapped("state")), {"draft"})
