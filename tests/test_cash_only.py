"""A cash-only deployment: g2p_programs_ext, spp_service_points,
spp_entitlement_transactions and spp_auto_update_entitlements installed in a fresh
database of their own, without ``stock`` (nor spp_entitlement_in_kind), and a cash cycle
run to its closing there: enroll, cycle, generate, submit, approve, redeem through the
real ``redeem`` as an agent, the end date passes, the closing's scheduled action closes it.

The scenario runs in ``odoo-bin shell`` against that database as real users with the
suite's groups; it prints one JSON line that the tests read. The database is dropped at
the end, pass or fail."""

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.odoo_server import CASH_ONLY_ADDONS, free_port, odoo_bin

REPO = Path(__file__).resolve().parent.parent

MARK = "CASH-ONLY-RESULT "

SCENARIO = r"""
import json
from datetime import timedelta

from odoo import fields

env = env(context=dict(env.context, tracking_disable=True))
Module = env["ir.module.module"]
modules = {m.name: m.state for m in Module.search([("name", "in", ["stock", "product", "spp_entitlement_in_kind",
    "g2p_programs_ext", "spp_service_points", "spp_entitlement_transactions", "spp_auto_update_entitlements"])])}


def user(login, *groups):
    return env["res.users"].create({
        "name": login.title(), "login": login,
        "groups_id": [(6, 0, [env.ref(g).id for g in groups])],
    })


manager = user("cash_manager", "g2p_programs_ext.group_program_manager")
officer = user("cash_officer", "g2p_programs_ext.group_program_officer")
validator = user("cash_validator", "g2p_programs_ext.group_program_validator")
approver = user("cash_approver", "g2p_programs_ext.group_cycle_approver")
agent = user("cash_agent", "spp_service_points.group_service_point_agent")
validation_group = env["res.groups"].create({"name": "Cash-only validators"})
validator.groups_id = [(4, validation_group.id)]

point = env["spp.service.point"].create({"name": "Cash desk", "code": "CASH-1", "user_ids": [(6, 0, agent.ids)]})
Partner = env["res.partner"]
houses = Partner.browse([
    Partner.create({"name": name, "is_registrant": True, "is_group": True, "service_point_id": point.id}).id
    for name in ("Full", "Part", "None")
])
program = env["g2p.program"].with_user(manager).create(
    {"name": "Cash only", "eligibility_domain": "[('id', 'in', %s)]" % houses.ids}
)
env["g2p.program.entitlement.manager.cash"].with_user(manager).create(
    {"program_id": program.id, "validation_group_id": validation_group.id, "item_ids": [(0, 0, {"amount": 100.0})]}
)
enrolled = program.with_user(officer).enroll_eligible_registrants()
cycle = env["g2p.cycle"].browse(program.with_user(officer).create_new_cycle())
cycle.with_user(officer).prepare_entitlement()
cycle.with_user(officer).to_approve()
cycle.with_user(approver).approve()
cycle.with_user(validator).validate_entitlement()
by_name = {e.partner_id.name: e for e in cycle.entitlement_ids}
api = env["spp.entitlement.transaction"].with_user(agent)
answers = [
    api.redeem(by_name["Full"].code, 100.0, point.id, "CASH-FULL"),
    api.redeem(by_name["Part"].code, 40.0, point.id, "CASH-PART"),
]
states_before = {name: e.state for name, e in by_name.items()}

# The end date passes.
yesterday = fields.Date.today() - timedelta(days=1)
cycle.sudo().write({"start_date": yesterday - timedelta(days=29), "end_date": yesterday})
cron = env.ref("spp_auto_update_entitlements.ir_cron_close_ended_cycles")
cron.method_direct_trigger()
env.invalidate_all()
print("CASH-ONLY-RESULT " + json.dumps({
    "modules": modules,
    "enrolled": enrolled,
    "answers": answers,
    "states_before": states_before,
    "states": {e.partner_id.name: e.state for e in cycle.entitlement_ids},
    "redeemed": {e.partner_id.name: e.amount_redeemed for e in cycle.entitlement_ids},
    "cycle": cycle.state,
    "transactions": env["spp.entitlement.transaction"].search_count([("cycle_id", "=", cycle.id)]),
    "cron_user": cron.user_id.login,
    "message": cycle.message_ids[:1].body or "",
}))
"""


def _run(cmd, **kwargs):
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def cash_only():
    db = "g2p_test_cash_only_%s" % time.strftime("%Y%m%d_%H%M%S")
    try:
        _run(
            [
                *odoo_bin(),
                "-d",
                db,
                "-i",
                ",".join(CASH_ONLY_ADDONS),
                "--stop-after-init",
                "--workers=0",
                "--max-cron-threads=0",
                "--http-port",
                str(free_port()),
            ],
            timeout=1800,
        )
        python, script, *options = odoo_bin()  # the command comes before the options
        proc = _run(
            [python, script, "shell", *options, "-d", db, "--no-http"],
            input=SCENARIO,
            timeout=900,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
        assert lines, (proc.stdout[-3000:], proc.stderr[-3000:])
        yield json.loads(lines[-1][len(MARK) :])
    finally:
        subprocess.run(["dropdb", "--if-exists", "--force", db], check=False)


def test_installed_without_stock(cash_only):
    modules = cash_only["modules"]
    assert modules["stock"] == "uninstalled"
    assert modules["spp_entitlement_in_kind"] == "uninstalled"
    for addon in CASH_ONLY_ADDONS:
        assert modules[addon] == "installed", addon


def test_cash_cycle_redeemed_then_closed_by_the_scheduled_action(cash_only):
    assert cash_only["enrolled"] == 3
    full, part = cash_only["answers"]
    assert (full["balance"], full["state"]) == (0.0, "redeemed")
    assert (part["balance"], part["state"]) == (60.0, "approved")
    assert cash_only["states_before"] == {"Full": "redeemed", "Part": "approved", "None": "approved"}
    assert cash_only["states"] == {"Full": "redeemed", "Part": "partially_redeemed", "None": "expired"}
    assert cash_only["redeemed"] == {"Full": 100.0, "Part": 40.0, "None": 0.0}
    assert cash_only["cycle"] == "ended"
    assert cash_only["transactions"] == 2
    assert cash_only["cron_user"] == "__system__"
    assert "Cycle closed" in cash_only["message"]
