"""Who may do what: the design (g2p_programs_ext/readme/USAGE.md, "Roles") as data, checked cell by cell.

``CRUD`` and ``METHODS`` below are the expected matrix: for each model and operation
(read, create, write, unlink) and each public method, the roles that may do it. Every
other role is refused with the exception class the cell names (``AccessError`` unless
said otherwise). ``AG`` (agent) in a cell means *for their own service points only*: the
same operation on a record of another point is refused too. Each cell runs as a real
user with real groups (``with_user``), in a savepoint rolled back afterwards, so every
cell starts from the same data. ``matrix_markdown()`` renders the matrix for the README.

The same matrix is checked over XML-RPC, on a representative subset, by
``tests/test_access_xmlrpc.py``.
"""

from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from .common import InkindRedemptionCase

OFFICER, VALIDATOR, APPROVER, MANAGER = "officer", "validator", "approver", "manager"
AG, INTERNAL, PORTAL = "agent", "internal", "portal"
ROLES = (OFFICER, VALIDATOR, APPROVER, MANAGER, AG, INTERNAL, PORTAL)
BACK_OFFICE = frozenset({OFFICER, VALIDATOR, APPROVER, MANAGER})
NOBODY = frozenset()


def roles(*names):
    return frozenset(names)


# ----------------------------------------------------------------------------------
# The design: model -> operation -> roles allowed (AG: own service points only).
# Refused cells raise AccessError (ACL or record rule).
# ----------------------------------------------------------------------------------
CRUD = {
    "res.partner (registrant)": {
        "read": BACK_OFFICE | {AG},
        "create": roles(OFFICER, MANAGER),
        "write": roles(OFFICER, MANAGER),
        "unlink": NOBODY,
    },
    "g2p.group.membership": {
        "read": BACK_OFFICE | {AG},
        "create": roles(OFFICER, MANAGER),
        "write": roles(OFFICER, MANAGER),
        "unlink": roles(OFFICER, MANAGER),
    },
    "g2p.group.membership.kind": {
        "read": BACK_OFFICE | {AG, INTERNAL},
        "create": roles(MANAGER),
        "write": roles(MANAGER),
        "unlink": roles(MANAGER),
    },
    "g2p.program": {
        "read": BACK_OFFICE,
        "create": roles(MANAGER),
        "write": roles(MANAGER),
        "unlink": roles(MANAGER),
    },
    "g2p.program.membership": {
        "read": BACK_OFFICE,
        "create": roles(OFFICER, MANAGER),
        "write": roles(OFFICER, MANAGER),
        "unlink": roles(MANAGER),
    },
    "g2p.cycle": {
        "read": BACK_OFFICE,
        "create": roles(OFFICER, MANAGER),
        "write": roles(OFFICER, APPROVER, MANAGER),
        "unlink": roles(MANAGER),
    },
    "g2p.cycle.membership": {
        "read": BACK_OFFICE,
        "create": roles(OFFICER, MANAGER),
        "write": roles(OFFICER, MANAGER),
        "unlink": roles(MANAGER),
    },
    "g2p.program.entitlement.manager.cash": {
        "read": BACK_OFFICE,
        "create": roles(MANAGER),
        "write": roles(MANAGER),
        "unlink": roles(MANAGER),
    },
    "g2p.program.entitlement.manager.cash.item": {
        "read": BACK_OFFICE,
        "create": roles(MANAGER),
        "write": roles(MANAGER),
        "unlink": roles(MANAGER),
    },
    "g2p.program.entitlement.manager.inkind": {
        "read": BACK_OFFICE,
        "create": roles(MANAGER),
        "write": roles(MANAGER),
        "unlink": roles(MANAGER),
    },
    "g2p.program.entitlement.manager.inkind.item": {
        "read": BACK_OFFICE,
        "create": roles(MANAGER),
        "write": roles(MANAGER),
        "unlink": roles(MANAGER),
    },
    "g2p.entitlement": {
        "read": BACK_OFFICE | {AG},
        "create": roles(MANAGER),  # a draft only; generation is prepare_entitlement
        # validity and service point; never state, nor figures past draft. Officers
        # correct drafts only (the cell writes an approved one: refused to them)
        "write": roles(MANAGER),
        "unlink": roles(MANAGER),  # a draft only
    },
    "g2p.entitlement.inkind": {
        "read": BACK_OFFICE | {AG},
        "create": roles(MANAGER),
        "write": roles(MANAGER),
        "unlink": roles(MANAGER),
    },
    "spp.service.point": {
        "read": BACK_OFFICE | {AG},
        "create": roles(MANAGER),
        "write": roles(MANAGER),
        "unlink": roles(MANAGER),
    },
    "spp.area": {
        "read": BACK_OFFICE | {AG, INTERNAL},
        "create": roles(MANAGER),
        "write": roles(MANAGER),
        "unlink": roles(MANAGER),
    },
    "spp.entitlement.transaction": {
        "read": BACK_OFFICE | {AG},
        "create": NOBODY,  # only the redemption API makes them
        "write": NOBODY,
        "unlink": NOBODY,
    },
    "g2p.entitlement.reject.wizard": {"create": roles(VALIDATOR, MANAGER)},
    "spp.assign.service.point.wizard": {"create": roles(OFFICER, MANAGER)},
    "spp.service.point.agent.wizard": {"create": roles(MANAGER)},
}

# Cells refused with UserError (a business rule, README "Error codes") rather than
# AccessError: transactions are never edited or deleted, whoever asks ([immutable]).
REFUSED_WITH_USER_ERROR = {
    ("spp.entitlement.transaction", "write"),
    ("spp.entitlement.transaction", "unlink"),
}

# Fields that only the suite's own actions set (UserError [use_actions] for everyone,
# managers included): model -> values tried on an approved record.
GUARDED_WRITES = {
    "g2p.entitlement": [
        {"state": "approved"},
        {"state": "redeemed"},
        {"amount_redeemed": 0.0},
        {"initial_amount": 1000.0},
        {"code": "AAAA-AAAA-A"},
    ],
    "g2p.entitlement.inkind": [{"state": "cancelled"}, {"quantity_redeemed": 1.0}, {"quantity": 99.0}],
    "g2p.cycle": [{"state": "draft"}, {"locked": True}],
    "g2p.program": [{"locked": True}],
}

# Public methods: (model, method) -> roles allowed; the others get AccessError unless the
# third item names another class. AG: for their own service points only.
METHODS = {
    ("g2p.program", "enroll_eligible_registrants"): roles(OFFICER, MANAGER),
    ("g2p.program", "create_new_cycle"): roles(OFFICER, MANAGER),
    ("g2p.program", "action_end"): roles(MANAGER),
    ("g2p.cycle", "prepare_entitlement"): roles(OFFICER, MANAGER),
    ("g2p.cycle", "to_approve"): roles(OFFICER, MANAGER),
    ("g2p.cycle", "approve"): roles(APPROVER, MANAGER),
    ("g2p.cycle", "mark_distributed"): roles(APPROVER, MANAGER),
    ("g2p.cycle", "mark_ended"): roles(APPROVER, MANAGER),
    ("g2p.cycle", "mark_cancelled"): roles(APPROVER, MANAGER),
    ("g2p.cycle", "reset_draft"): roles(APPROVER, MANAGER),
    ("g2p.cycle", "action_close"): roles(APPROVER, MANAGER),
    ("g2p.cycle", "action_post_deliveries"): roles(APPROVER, MANAGER),
    # the validator of the test is in the managers' validation group, the manager is not
    ("g2p.cycle", "validate_entitlement"): roles(VALIDATOR, MANAGER),
    ("g2p.entitlement", "approve_entitlement"): roles(VALIDATOR),
    ("g2p.entitlement", "action_reject"): roles(VALIDATOR),
    ("g2p.entitlement", "action_cancel"): roles(MANAGER),
    # officers reset pending and rejected entitlements (the cell: a rejected one);
    # a cancelled one only managers (g2p_programs_ext/tests/test_workflow.py)
    ("g2p.entitlement", "action_reset_to_draft"): roles(OFFICER, MANAGER),
    ("g2p.entitlement", "action_submit"): roles(OFFICER, MANAGER),
    ("spp.entitlement.transaction", "lookup"): BACK_OFFICE | {AG},
    ("spp.entitlement.transaction", "entitlements_for_service_point"): BACK_OFFICE | {AG},
    ("spp.entitlement.transaction", "redeem"): roles(AG),
    ("spp.entitlement.transaction", "reverse"): roles(AG),
    ("spp.entitlement.transaction", "redeem_batch"): roles(AG),
    ("res.users", "action_generate_api_key_for_device"): NOBODY,  # Settings administrators only
}


def matrix_markdown():
    """The matrix as Markdown tables (for the README): ✓ allowed, ✓own for their own
    service points only, ✗ refused (AccessError), ✗imm refused as immutable and ✗use
    for fields that only actions set (UserError, to roles that may write the model)."""
    heads = ["model / method", "op", *ROLES]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]

    def mark(allowed, role, refused="✗", scoped=True):
        if role in allowed:
            return "✓own" if role == AG and scoped else "✓"
        return refused

    for model, ops in CRUD.items():
        for op, allowed in ops.items():
            refused = "✗imm" if (model, op) in REFUSED_WITH_USER_ERROR else "✗"
            scoped = model not in ("g2p.group.membership.kind", "spp.area")  # reference data
            cells = " | ".join(mark(allowed, r, refused, scoped) for r in ROLES)
            lines.append("| `%s` | %s | %s |" % (model, op, cells))
    for (model, method), allowed in METHODS.items():
        lines.append("| `%s` | `%s()` | %s |" % (model, method, " | ".join(mark(allowed, r) for r in ROLES)))
    for model, vals_list in GUARDED_WRITES.items():
        names = sorted({name for vals in vals_list for name in vals})
        lines.append(
            "| `%s` | write %s | %s |"
            % (
                model,
                ", ".join(names),
                " | ".join("✗use" if r in CRUD[model]["write"] else "✗" for r in ROLES),
            )
        )
    return "\n".join(lines)


class _Outcome:
    def __init__(self, error=None):
        self.error = error

    @property
    def allowed(self):
        return self.error is None


@tagged("post_install", "-at_install")
class TestAccessMatrix(InkindRedemptionCase):
    """Every cell of CRUD and METHODS, as each role, from the same data each time."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.portal = mail_new_test_user(cls.env, login="mx_portal", groups="base.group_portal", name="Portal")
        cls.users = {
            OFFICER: cls.officer,
            VALIDATOR: cls.validator,
            APPROVER: cls.approver,
            MANAGER: cls.manager,
            AG: cls.agent_a,
            INTERNAL: cls.not_agent,
            PORTAL: cls.portal,
        }
        Partner = cls.env["res.partner"]
        cls.ind_b1 = Partner.create(
            {"name": "Bo B1", "is_registrant": True, "service_point_id": cls.point_b.id}
        )
        cls.spare_ind = Partner.create(
            {"name": "Spare", "is_registrant": True, "service_point_id": cls.point_a.id}
        )
        cls.spare_house = Partner.create(
            {
                "name": "Spare house",
                "is_registrant": True,
                "is_group": True,
                "service_point_id": cls.point_a.id,
            }
        )
        Membership = cls.env["g2p.group.membership"]
        cls.member_a = Membership.search([("individual_id", "=", cls.ind_a1.id)])
        cls.member_b = Membership.create({"group_id": cls.house_b1.id, "individual_id": cls.ind_b1.id})
        cls.kind = cls.env.ref("g2p_programs_ext.membership_kind_principal_recipient")
        cls.area = cls.env["spp.area"].create({"name": "Matrix area"})
        cls.cash_manager = cls.env["g2p.program.entitlement.manager.cash"].search(
            [("program_id", "=", cls.program.id)]
        )
        cls.inkind_manager = cls.env["g2p.program.entitlement.manager.inkind"].search(
            [("program_id", "=", cls.inkind_program.id)]
        )
        cls.bare_program = cls.env["g2p.program"].create({"name": "No manager yet"})
        cls.draft_cycle = cls.env["g2p.cycle"].create(
            {
                "name": "Draft cycle",
                "program_id": cls.program.id,
                "sequence": 50,
                "start_date": cls.days(60),
                "end_date": cls.days(90),
            }
        )
        cls.draft_ent = cls.env["g2p.entitlement"].create(
            {"cycle_id": cls.draft_cycle.id, "partner_id": cls.spare_house.id, "initial_amount": 5.0}
        )
        api = cls.env["spp.entitlement.transaction"]
        cls.tx_a = api.browse(
            api.with_user(cls.agent_a).redeem(cls.ent_a2.code, 10, cls.point_a.id, "MX-A")["transaction_id"]
        )
        cls.tx_b = api.browse(
            api.with_user(cls.agent_b).redeem(cls.ent_b2.code, 10, cls.point_b.id, "MX-B")["transaction_id"]
        )

    # ------------------------------------------------------------------
    # Running one cell
    # ------------------------------------------------------------------
    def run_cell(self, call):
        """Run ``call()`` in a savepoint that is always rolled back; flush inside so that
        constraints speak. :return: _Outcome (error: the AccessError/UserError raised)."""
        savepoint = self.env.cr.savepoint()
        try:
            call()
            self.env.flush_all()
            return _Outcome()
        except UserError as error:  # AccessError and ValidationError are UserErrors
            return _Outcome(error)
        finally:
            savepoint.close(rollback=True)
            self.env.invalidate_all()

    def check_cell(self, label, role, allowed, call, refused_class=AccessError):
        outcome = self.run_cell(call)
        with self.subTest(cell=label, role=role):
            if allowed:
                self.assertTrue(
                    outcome.allowed, "%s as %s should be allowed, got %r" % (label, role, outcome.error)
                )
            else:
                self.assertFalse(outcome.allowed, "%s as %s should be refused" % (label, role))
                self.assertIsInstance(outcome.error, refused_class, "%s as %s" % (label, role))
                if refused_class is not AccessError:
                    self.assertNotIsInstance(outcome.error, AccessError, "%s as %s" % (label, role))

    # ------------------------------------------------------------------
    # CRUD
    # ------------------------------------------------------------------
    def crud_cases(self):
        """model -> (own record, other point's record or None, create vals, write vals)."""
        today = self.today
        return {
            "res.partner (registrant)": (
                self.house_a1,
                self.house_b1,
                {"name": "New registrant", "is_registrant": True},
                {"name": "Renamed"},
            ),
            "g2p.group.membership": (
                self.member_a,
                self.member_b,
                {"group_id": self.spare_house.id, "individual_id": self.spare_ind.id},
                {"start_date": today},
            ),
            "g2p.group.membership.kind": (self.kind, None, {"name": "Matrix role"}, {"sequence": 7}),
            "g2p.program": (self.program, None, {"name": "Matrix program"}, {"name": "Renamed"}),
            "g2p.program.membership": (
                self.env["g2p.program.membership"].search([("program_id", "=", self.program.id)], limit=1),
                None,
                {"program_id": self.program.id, "partner_id": self.spare_house.id, "state": "enrolled"},
                {"enrollment_date": today},
            ),
            "g2p.cycle": (
                self.draft_cycle,
                None,
                {
                    "name": "Matrix cycle",
                    "program_id": self.program.id,
                    "sequence": 77,
                    "start_date": self.days(200),
                    "end_date": self.days(229),
                },
                {"name": "Renamed"},
            ),
            "g2p.cycle.membership": (
                self.cycle.cycle_membership_ids[:1],
                None,
                {"cycle_id": self.cycle.id, "partner_id": self.spare_house.id},
                {"state": "paused"},
            ),
            "g2p.program.entitlement.manager.cash": (
                self.cash_manager,
                None,
                {"program_id": self.bare_program.id, "item_ids": [(0, 0, {"amount": 5.0})]},
                {"name": "Renamed"},
            ),
            "g2p.program.entitlement.manager.cash.item": (
                self.cash_manager.item_ids[:1],
                None,
                {"manager_id": self.cash_manager.id, "amount": 1.0},
                {"sequence": 3},
            ),
            "g2p.program.entitlement.manager.inkind": (
                self.inkind_manager,
                None,
                {"program_id": self.bare_program.id, "warehouse_id": self.warehouse.id},
                {"name": "Renamed"},
            ),
            "g2p.program.entitlement.manager.inkind.item": (
                self.inkind_manager.item_ids[:1],
                None,
                {"manager_id": self.inkind_manager.id, "product_id": self.rice.id, "quantity": 1.0},
                {"sequence": 3},
            ),
            "g2p.entitlement": (
                self.ent_a1,
                self.ent_b1,
                {"cycle_id": self.draft_cycle.id, "partner_id": self.house_a2.id, "initial_amount": 5.0},
                {"valid_until": self.days(40)},
            ),
            "g2p.entitlement.inkind": (
                self.ink_a1,
                self.ink_b1,
                {
                    "cycle_id": self.draft_cycle.id,
                    "partner_id": self.house_a2.id,
                    "inkind_item_id": self.inkind_manager.item_ids[0].id,
                    "product_id": self.rice.id,
                    "uom_id": self.kg.id,
                    "quantity": 1.0,
                },
                {"valid_until": self.days(40)},
            ),
            "spp.service.point": (
                self.point_a,
                self.point_b,
                {"name": "New", "code": "MX-NEW"},
                {"phone": "+63 2"},
            ),
            "spp.area": (self.area, None, {"name": "New area"}, {"name": "Renamed"}),
            "spp.entitlement.transaction": (
                self.tx_a,
                self.tx_b,
                {
                    "entitlement_id": self.ent_a1.id,
                    "transaction_type": "redemption",
                    "amount": 1.0,
                    "service_point_id": self.point_a.id,
                    "user_id": self.agent_a.id,
                    "reference": "FORGED",
                    "company_id": self.env.company.id,
                },
                {"reason": "edited"},
            ),
        }

    def test_crud_matrix(self):
        cases = self.crud_cases()
        for model_label, ops in CRUD.items():
            if model_label not in cases:
                continue
            model = model_label.split(" ")[0]
            own, other, create_vals, write_vals = cases[model_label]
            self.assertTrue(own, model_label)
            for role, user in self.users.items():
                Model = self.env[model].with_user(user)
                mine = own.with_user(user)
                self.check_cell(
                    "%s read" % model_label,
                    role,
                    role in ops["read"],
                    lambda mine=mine: mine.read(["display_name"]),
                )
                if other is not None and role == AG:
                    theirs = other.with_user(user)
                    self.check_cell(
                        "%s read (other point)" % model_label,
                        role,
                        False,
                        lambda t=theirs: t.read(["display_name"]),
                    )
                    found = Model.search([("id", "in", (own | other).ids)])
                    self.assertEqual(found, mine, "%s: an agent finds only its own" % model_label)
                self.check_cell(
                    "%s create" % model_label,
                    role,
                    role in ops["create"],
                    lambda M=Model, v=create_vals: M.create(v),
                )
                self.check_cell(
                    "%s write" % model_label,
                    role,
                    role in ops["write"],
                    lambda r=mine, v=write_vals: r.write(v),
                    refused_class=self.refused_class(model, "write"),
                )
                self.check_cell(
                    "%s unlink" % model_label,
                    role,
                    role in ops["unlink"],
                    lambda m=model, own=own, cv=create_vals, u=user: (
                        self.unlink_target(m, own, cv).with_user(u).unlink()
                    ),
                    refused_class=self.refused_class(model, "unlink"),
                )

    def refused_class(self, model, op):
        return UserError if (model, op) in REFUSED_WITH_USER_ERROR else AccessError

    def unlink_target(self, model, own, create_vals):
        """A record of ``model`` that may be deleted when the role allows it (made as
        superuser inside the cell's savepoint): not referenced, a draft where it matters."""
        su = self.env
        if model == "g2p.entitlement":
            return self.draft_ent
        if model == "g2p.cycle":
            return su[model].create(
                {
                    "name": "To delete",
                    "program_id": self.program.id,
                    "sequence": 88,
                    "start_date": self.days(300),
                    "end_date": self.days(301),
                }
            )
        if model == "res.partner":
            return self.spare_ind
        if model == "g2p.program":
            return self.bare_program
        if model == "spp.service.point":
            return su[model].create({"name": "Empty", "code": "MX-EMPTY"})
        if model == "g2p.program.entitlement.manager.inkind.item":
            return su[model].create(
                {"manager_id": self.inkind_manager.id, "product_id": self.rice.id, "quantity": 2.0}
            )
        if model == "g2p.entitlement.inkind":
            return su[model].create({**create_vals, "partner_id": self.spare_house.id})
        if model == "g2p.program.membership":
            return su[model].create({"program_id": self.program.id, "partner_id": self.spare_ind.id})
        if model == "g2p.cycle.membership":
            return su[model].create({"cycle_id": self.cycle.id, "partner_id": self.spare_ind.id})
        if model in ("g2p.program.entitlement.manager.cash", "g2p.program.entitlement.manager.inkind"):
            return su[model].create({"program_id": self.bare_program.id})
        return own

    def test_wizards(self):
        wizards = {
            "g2p.entitlement.reject.wizard": lambda W: W.with_context(
                active_model="g2p.entitlement", active_ids=self.ent_a1.ids
            ).create({"rejection_reason": "declined"}),
            "spp.assign.service.point.wizard": lambda W: W.create(
                {"service_point_id": self.point_a.id, "assign_by": "area", "area_id": self.area.id}
            ),
            "spp.service.point.agent.wizard": lambda W: W.create(
                {"service_point_id": self.point_a.id, "name": "New agent", "login": "mx_new_agent"}
            ),
        }
        for model, make in wizards.items():
            for role, user in self.users.items():
                wizard_model = self.env[model].with_user(user)
                self.check_cell(
                    "%s create" % model,
                    role,
                    role in CRUD[model]["create"],
                    lambda W=wizard_model, make=make: make(W),
                )

    def test_lifecycle_fields_only_through_actions(self):
        records = {
            "g2p.entitlement": self.ent_a1,
            "g2p.entitlement.inkind": self.ink_a1,
            "g2p.cycle": self.cycle,
            "g2p.program": self.program,
        }
        for model, vals_list in GUARDED_WRITES.items():
            for vals in vals_list:
                for role in (MANAGER, OFFICER, APPROVER):
                    user = self.users[role]
                    record = records[model].with_user(user)
                    allowed_to_write = role in CRUD[model]["write"]
                    self.check_cell(
                        "%s write %s" % (model, vals),
                        role,
                        False,
                        lambda r=record, v=vals: r.write(v),
                        refused_class=UserError if allowed_to_write else AccessError,
                    )
        # nor on create: a new entitlement or cycle is a draft
        for vals in ({"state": "approved"}, {"code": "AAAA-AAAA-A"}, {"amount_redeemed": 1.0}):
            self.check_cell(
                "g2p.entitlement create %s" % vals,
                MANAGER,
                False,
                lambda v=vals: (
                    self.env["g2p.entitlement"]
                    .with_user(self.manager)
                    .create(
                        {
                            "cycle_id": self.draft_cycle.id,
                            "partner_id": self.house_a2.id,
                            "initial_amount": 5.0,
                            **v,
                        }
                    )
                ),
                refused_class=UserError,
            )
        self.check_cell(
            "g2p.cycle create approved",
            OFFICER,
            False,
            lambda: (
                self.env["g2p.cycle"]
                .with_user(self.officer)
                .create(
                    {
                        "name": "Forged",
                        "program_id": self.program.id,
                        "sequence": 66,
                        "start_date": self.days(400),
                        "end_date": self.days(401),
                        "state": "approved",
                    }
                )
            ),
            refused_class=UserError,
        )
        self.check_cell(
            "approved g2p.entitlement unlink",
            MANAGER,
            False,
            lambda: self.ent_a1.with_user(self.manager).unlink(),
            refused_class=UserError,
        )

    # ------------------------------------------------------------------
    # Public methods
    # ------------------------------------------------------------------
    def method_calls(self, user):
        """(model, method) -> a callable doing the call as ``user``, after putting the data
        in the state the method starts from (as superuser, inside the cell's savepoint)."""
        su = self.env
        Api = su["spp.entitlement.transaction"].with_user(user)

        def pending_cycle():
            cycle = su["g2p.cycle"].browse(self.program.create_new_cycle())
            cycle.prepare_entitlement()
            cycle.to_approve()
            cycle.approve()
            return cycle

        def submitted(cycle):
            cycle.to_approve()
            return cycle.with_user(user)

        def past_cycle():
            self.cycle.write({"start_date": self.days(-40), "end_date": self.days(-1)})
            return self.cycle.with_user(user)

        def rejected(entitlement):
            entitlement.action_reject("declined")
            return entitlement.with_user(user)

        def drafted(entitlement):
            entitlement.action_reject("declined")
            entitlement.action_reset_to_draft()
            return entitlement.with_user(user)

        return {
            ("g2p.program", "enroll_eligible_registrants"): lambda: self.program.with_user(
                user
            ).enroll_eligible_registrants(),
            ("g2p.program", "create_new_cycle"): lambda: self.program.with_user(user).create_new_cycle(),
            ("g2p.program", "action_end"): lambda: self.program.with_user(user).action_end(),
            ("g2p.cycle", "prepare_entitlement"): lambda: (
                su["g2p.cycle"].browse(self.program.create_new_cycle()).with_user(user).prepare_entitlement()
            ),
            ("g2p.cycle", "to_approve"): lambda: self.draft_cycle.with_user(user).to_approve(),
            ("g2p.cycle", "approve"): lambda: submitted(self.draft_cycle).approve(),
            ("g2p.cycle", "mark_distributed"): lambda: self.cycle.with_user(user).mark_distributed(),
            ("g2p.cycle", "mark_ended"): lambda: self.cycle.with_user(user).mark_ended(),
            # a cycle where nothing was handed out (one with handouts is ended, not cancelled)
            ("g2p.cycle", "mark_cancelled"): lambda: pending_cycle().with_user(user).mark_cancelled(),
            ("g2p.cycle", "reset_draft"): lambda: submitted(self.draft_cycle).reset_draft(),
            ("g2p.cycle", "action_close"): lambda: past_cycle().action_close(),
            ("g2p.cycle", "action_post_deliveries"): lambda: self.inkind_cycle.with_user(
                user
            ).action_post_deliveries(),
            ("g2p.cycle", "validate_entitlement"): lambda: (
                pending_cycle().with_user(user).validate_entitlement()
            ),
            ("g2p.entitlement", "approve_entitlement"): lambda: (
                pending_cycle().entitlement_ids.with_user(user).approve_entitlement()
            ),
            ("g2p.entitlement", "action_reject"): lambda: (
                pending_cycle().entitlement_ids.with_user(user).action_reject("declined", "moved away")
            ),
            ("g2p.entitlement", "action_cancel"): lambda: self.ent_a1.with_user(user).action_cancel(),
            ("g2p.entitlement", "action_reset_to_draft"): lambda: rejected(
                self.ent_a1
            ).action_reset_to_draft(),
            ("g2p.entitlement", "action_submit"): lambda: drafted(self.ent_a1).action_submit(),
            ("spp.entitlement.transaction", "lookup"): lambda: Api.lookup(self.ent_a1.code),
            ("spp.entitlement.transaction", "entitlements_for_service_point"): lambda: (
                Api.entitlements_for_service_point(self.point_a.id)
            ),
            ("spp.entitlement.transaction", "redeem"): lambda: Api.redeem(
                self.ent_a1.code, 1.0, self.point_a.id, "MX-1"
            ),
            ("spp.entitlement.transaction", "reverse"): lambda: Api.reverse(
                "MX-A", self.point_a.id, "mistake"
            ),
            ("spp.entitlement.transaction", "redeem_batch"): lambda: Api.redeem_batch(
                self.point_a.id, [{"code": self.ent_a1.code, "quantity": 1.0, "reference": "MX-2"}]
            ),
            ("res.users", "action_generate_api_key_for_device"): lambda: self.agent_b.with_user(
                user
            ).action_generate_api_key_for_device("Tablet"),
        }

    def test_method_matrix(self):
        for role, user in self.users.items():
            calls = self.method_calls(user)
            self.assertEqual(set(calls), set(METHODS), "every method of the matrix is tried")
            for key, allowed in METHODS.items():
                self.check_cell("%s.%s()" % key, role, role in allowed, calls[key])

    # ------------------------------------------------------------------
    # Agents never reach another service point's data, by any path
    # ------------------------------------------------------------------
    def test_agent_reaches_only_its_own_service_point(self):
        agent = self.agent_a
        env = self.env(user=agent)
        # search / search_count / read_group / name_search on every model an agent reads
        own_partners = (self.house_a1 | self.house_a2 | self.ind_a1 | self.spare_ind | self.spare_house).ids
        self.assertEqual(
            set(env["res.partner"].search([("is_registrant", "=", True)]).ids), set(own_partners)
        )
        self.assertFalse(env["res.partner"].name_search("House B1"))
        self.assertFalse(env["res.partner"].name_search("Bo B1"))
        groups = env["res.partner"].read_group(
            [("is_registrant", "=", True)], ["service_point_id"], ["service_point_id"]
        )
        self.assertEqual([g["service_point_id"][0] for g in groups], [self.point_a.id])
        for model, own, other in (
            ("g2p.entitlement", self.ent_a1, self.ent_b1),
            ("g2p.entitlement.inkind", self.ink_a1, self.ink_b1),
            ("spp.entitlement.transaction", self.tx_a, self.tx_b),
            ("g2p.group.membership", self.member_a, self.member_b),
            ("spp.service.point", self.point_a, self.point_b),
        ):
            with self.subTest(model=model):
                found = env[model].search([])
                self.assertIn(own, found.sudo())
                self.assertNotIn(other.id, found.ids)
                self.assertEqual(env[model].search_count([("id", "=", other.id)]), 0)
                rows = env[model].read_group([("id", "=", other.id)], [], [])
                self.assertEqual(rows[0]["__count"] if rows else 0, 0)
                self.assertFalse([row for row in env[model].name_search("") if row[0] == other.id])
                with self.assertRaises(AccessError):
                    other.with_user(agent).read(["display_name"])
        # through a relation: the own point's transactions only
        self.assertEqual(self.point_a.with_user(agent).transaction_ids, self.tx_a.with_user(agent))
        # health and birth data: not even of their own registrants
        with self.assertRaises(AccessError):
            self.house_a1.with_user(agent).read(["has_disability"])
        with self.assertRaises(AccessError):
            env["res.partner"].search([("is_pregnant", "=", True)])
        # the API: another point's code, point, reference
        Api = env["spp.entitlement.transaction"]
        before = self.snapshot()
        for call, exception, code in (
            (lambda: Api.lookup(self.ent_b1.code), UserError, "wrong_service_point"),
            (
                lambda: Api.redeem(self.ent_b1.code, 1.0, self.point_a.id, "X-1"),
                UserError,
                "wrong_service_point",
            ),
            (
                lambda: Api.redeem(self.ent_b1.code, 1.0, self.point_b.id, "X-2"),
                AccessError,
                "not_your_service_point",
            ),
            (lambda: Api.reverse("MX-B", self.point_b.id, "not mine"), AccessError, "not_your_service_point"),
            (lambda: Api.reverse("MX-B", self.point_a.id, "not mine"), UserError, "unknown_reference"),
            (
                lambda: Api.entitlements_for_service_point(self.point_b.id),
                AccessError,
                "not_your_service_point",
            ),
            (lambda: Api.redeem_batch(self.point_b.id, []), AccessError, "not_your_service_point"),
        ):
            with self.subTest(code=code), self.assertRaises(exception) as caught:
                call()
            self.assertTrue(caught.exception.args[0].startswith("[%s]" % code), caught.exception.args[0])
        self.assertEqual(self.snapshot(), before)
        # a batch line for another point's entitlement is refused on its own
        answer = Api.redeem_batch(
            self.point_a.id, [{"code": self.ent_b1.code, "quantity": 1.0, "reference": "X-3"}]
        )
        self.assertTrue(answer[0]["error"].startswith("[wrong_service_point]"))
        # the offline list holds the own point's entitlements only
        codes = {row["code"] for row in Api.entitlements_for_service_point(self.point_a.id)}
        self.assertIn(self.ent_a1.code, codes)
        self.assertNotIn(self.ent_b1.code, codes)

    def test_plain_and_portal_users_see_nothing_of_the_suite(self):
        for role in (INTERNAL, PORTAL):
            user = self.users[role]
            env = self.env(user=user)
            with self.subTest(role=role):
                self.assertFalse(env["res.partner"].search([("is_registrant", "=", True)]))
                self.assertFalse(env["res.partner"].name_search("House A1"))
                for model in (
                    "g2p.program",
                    "g2p.cycle",
                    "g2p.entitlement",
                    "g2p.entitlement.inkind",
                    "spp.entitlement.transaction",
                    "spp.service.point",
                    "g2p.group.membership",
                ):
                    with self.assertRaises(AccessError):
                        env[model].search([])

    def test_markdown(self):
        table = matrix_markdown()
        self.assertIn("| `spp.entitlement.transaction` | `redeem()` |", table)
        self.assertEqual(
            table.count("\n") + 1,
            2 + sum(len(ops) for ops in CRUD.values()) + len(METHODS) + len(GUARDED_WRITES),
        )
