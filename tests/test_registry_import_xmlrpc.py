"""The fast registry import over XML-RPC against a real server (a separate process): a
program officer imports a small registry with ``import_registry``, a file with bad lines
is refused line by line with nothing written, and the demo's client (setup/fast_import.py)
runs the wizard as a queue_job job through the server's job runner, polling its progress."""

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "setup"))

import fast_import as fast_import_module
from fast_import import fast_import

ADMIN = ("admin", "admin")


class Client:
    def __init__(self, server, db, login, password):
        self.db, self.password = db, password
        self.uid = server.proxy("common").authenticate(db, login, password, {})
        assert self.uid, f"{login} logs in"
        self.models = server.proxy("object")

    def call(self, model, method, *args, **kwargs):
        return self.models.execute_kw(self.db, self.uid, self.password, model, method, list(args), kwargs)


@pytest.fixture
def clients(odoo_server, test_db):
    admin = Client(odoo_server, test_db, *ADMIN)
    tag = uuid.uuid4().hex[:8]
    group = admin.call(
        "ir.model.data",
        "search_read",
        [("module", "=", "g2p_programs_ext"), ("name", "=", "group_program_officer")],
        fields=["res_id"],
    )[0]["res_id"]
    admin.call(
        "res.users",
        "create",
        {
            "name": f"Import officer {tag}",
            "login": f"import_{tag}",
            "password": f"pw-{tag}",
            "groups_id": [(6, 0, [group])],
        },
    )
    return admin, Client(odoo_server, test_db, f"import_{tag}", f"pw-{tag}"), tag


def files(tag, bad=False):
    households = f"id,name,is_registrant,is_group,city,country_id/id\nx{tag}_hh1,Household {tag},True,True,Pasay,base.ph\n"
    individuals = (
        "id,name,is_registrant,is_group,id_number,birthdate,gender,has_disability,is_pregnant\n"
        f"x{tag}_i1,Ana {tag},True,False,{tag}-1,1990-04-01,female,False,False\n"
        f"x{tag}_i2,Ben {tag},True,False,{tag}-{'1' if bad else '2'},{'2020-13-01' if bad else '2020-12-01'},male,False,False\n"
    )
    memberships = (
        "id,group_id/id,individual_id/id,kind_ids/id,start_date\n"
        f"x{tag}_m1,x{tag}_hh1,x{tag}_i1,g2p_programs_ext.membership_kind_head,2024-01-01\n"
        f"x{tag}_m2,x{tag}_hh1,x{tag}_i2,,2024-01-01\n"
    )
    return households, individuals, memberships


def test_import_registry_over_xmlrpc(clients):
    admin, officer, tag = clients
    result = officer.call("g2p.registry.import", "import_registry", *files(tag))
    assert result["ok"] and result["error_count"] == 0, result
    assert (result["households"], result["individuals"], result["memberships"]) == (1, 2, 2)
    household = officer.call(
        "res.partner", "search_read", [("name", "=", f"Household {tag}")], fields=["household_size"]
    )
    assert [h["household_size"] for h in household] == [2]

    bad_tag = tag + "b"
    result = officer.call("g2p.registry.import", "import_registry", *files(bad_tag, bad=True))
    assert not result["ok"]
    assert [(e["file"], e["line"], e["code"]) for e in result["errors"]] == [
        ("individuals", 3, "bad_date"),
        ("individuals", 3, "duplicate_id_number"),
    ]
    assert result["errors"][0]["message"].startswith("[bad_date] ")
    assert officer.call("res.partner", "search_count", [("name", "like", bad_tag)]) == 0


def test_demo_client_runs_the_wizard_as_a_job(clients, tmp_path, monkeypatch):
    """The demo's client, its files sent in parts of 40 bytes (as a national registry's
    are sent in parts of 32 MB: the requests stay under Odoo's 128 MiB limit)."""
    monkeypatch.setattr(fast_import_module, "PART_BYTES", 40)
    admin, officer, tag = clients
    params = admin.call(
        "ir.config_parameter",
        "search_read",
        [("key", "=", "g2p_programs_ext.async_threshold")],
        fields=["value"],
    )
    admin.call("ir.config_parameter", "set_param", "g2p_programs_ext.async_threshold", "1")
    try:
        paths = {}
        for key, text in zip(("groups", "individuals", "memberships"), files(tag), strict=True):
            paths[key] = tmp_path / f"{key}.csv"
            paths[key].write_text(text)
        paths["household_areas"] = tmp_path / "areas.csv"
        paths["household_areas"].write_text("id\n")
        seen = []
        row = fast_import(officer, paths, progress=lambda pct, msg: seen.append(pct), poll=0.5, timeout=300)
    finally:
        admin.call(
            "ir.config_parameter",
            "set_param",
            "g2p_programs_ext.async_threshold",
            params[0]["value"] if params else "1000",
        )
    assert row["state"] == "done" and (row["households_count"], row["individuals_count"]) == (1, 2)
    assert seen[-1] == 100.0
    jobs = admin.call(
        "queue.job",
        "search_read",
        [("method_name", "=", "_job_import"), ("state", "=", "done")],
        fields=["uuid"],
    )
    assert jobs, "the import ran as a queue_job job"
    parts = admin.call("g2p.registry.import.part", "search_count", [("file", "=", "individuals")])
    assert parts >= 2, "the individuals' file went in parts"
