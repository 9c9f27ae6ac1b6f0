"""The redemption API's input checks (spp_entitlement_transactions/redemption_input.py),
without a database: plain Python, run with ``pytest -p no:odoo``.

The module imports ``odoo.addons.g2p_programs_ext.ern``; both files are loaded here by
path (the addons' ``__init__`` and Odoo's registry are not needed)."""

import importlib.util
import math
import sys
import types
import xmlrpc.client
from datetime import datetime, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _load_input_module():
    """redemption_input, its ``from odoo.addons.g2p_programs_ext import ern`` answered by
    ern.py itself; sys.modules is left as it was found."""
    names = ("odoo", "odoo.addons", "odoo.addons.g2p_programs_ext", "odoo.addons.g2p_programs_ext.ern")
    saved = {name: sys.modules.get(name) for name in names}
    try:
        for name in names[:3]:
            if name not in sys.modules:
                package = types.ModuleType(name)
                package.__path__ = []
                sys.modules[name] = package
        ern = _load("odoo.addons.g2p_programs_ext.ern", REPO / "g2p_programs_ext" / "ern.py")
        sys.modules["odoo.addons.g2p_programs_ext"].ern = ern
        return _load("redemption_input", REPO / "spp_entitlement_transactions" / "redemption_input.py"), ern
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


ri, ern = _load_input_module()


def refused(code, check, value):
    with pytest.raises(ri.InputError) as caught:
        check(value)
    assert caught.value.code == code
    assert str(caught.value).startswith("[%s] " % code)
    return caught.value


# ----------------------------------------------------------------------
# Device times (issue 21 item 6): ISO 8601 in its usual forms, XML-RPC dateTime
# ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "sent, expected",
    [
        ("2026-12-07T10:15:00.123Z", datetime(2026, 12, 7, 10, 15)),  # a phone's toISOString(), to the second
        ("2026-12-07T18:15:00+08:00", datetime(2026, 12, 7, 10, 15)),  # converted to UTC
        ("2026-12-07T05:15:00-05:00", datetime(2026, 12, 7, 10, 15)),
        ("2026-12-07T10:15:00Z", datetime(2026, 12, 7, 10, 15)),
        ("2026-12-07T10:15:00", datetime(2026, 12, 7, 10, 15)),  # no zone: UTC
        ("2026-12-07 10:15:00", datetime(2026, 12, 7, 10, 15)),
        (" 2026-12-07T10:15 ", datetime(2026, 12, 7, 10, 15)),
        ("2026-12-08T01:15:00+15:00", datetime(2026, 12, 7, 10, 15)),
        (xmlrpc.client.DateTime("20261207T10:15:00"), datetime(2026, 12, 7, 10, 15)),
        (xmlrpc.client.DateTime(datetime(2026, 12, 7, 10, 15)), datetime(2026, 12, 7, 10, 15)),
        (xmlrpc.client.DateTime("2026-12-07T18:15:00+08:00"), datetime(2026, 12, 7, 10, 15)),
        (datetime(2026, 12, 7, 10, 15), datetime(2026, 12, 7, 10, 15)),
        (datetime(2026, 12, 7, 10, 15, tzinfo=timezone.utc), datetime(2026, 12, 7, 10, 15)),
    ],
)
def test_device_time_accepted_forms(sent, expected):
    parsed = ri.device_time(sent)
    assert parsed == expected
    assert parsed.tzinfo is None  # naive UTC, as Odoo stores datetimes


@pytest.mark.parametrize("sent", [False, None, ""])
def test_no_device_time(sent):
    assert ri.device_time(sent) is False


@pytest.mark.parametrize(
    "sent",
    [
        "2026-12-07",  # a date without a time
        "20261207",
        "2026-W49-1",
        xmlrpc.client.DateTime("20261207"),
        "yesterday",
        "2026-13-07T10:15:00",
        "2026-12-07T25:00:00",
        "0001-01-01T00:00:00+08:00",  # before year 1 once in UTC
        "abc\x00def",
        "𝕏😀" * 20,
        12345,
        1.5,
        True,
        ["2026-12-07T10:15:00Z"],
        {"time": "2026-12-07T10:15:00Z"},
    ],
)
def test_device_time_refused(sent):
    refused("bad_device_time", ri.device_time, sent)


# ----------------------------------------------------------------------
# Codes, quantities, references, reasons, service points, batches
# ----------------------------------------------------------------------
def test_code_normalized_to_display_form():
    code = ern.generate()
    display = ern.display(code)
    assert ri.code(code.lower()) == display
    assert ri.code(" %s " % display) == display
    assert ri.code("%s %s %s" % (code[:4], code[4:8], code[8:])) == display


@pytest.mark.parametrize(
    "sent", ["", "ABC", "7KQ2-MX4P", "7KQ2-MX4P-9X", "7KQ2_MX4P_9", None, 7, ["7KQ2MX4P9"]]
)
def test_malformed_code(sent):
    refused("malformed_code", ri.code, sent)


def test_wrong_check_character_and_swap():
    code = ern.generate()
    wrong = code[:-1] + next(c for c in ern.ALPHABET if c != code[-1])
    error = refused("bad_check_character", ri.code, wrong)
    assert ern.display(wrong) in str(error)
    if code[0] != code[1]:
        refused("bad_check_character", ri.code, code[1] + code[0] + code[2:])


@pytest.mark.parametrize("sent, expected", [(1, 1.0), (2.5, 2.5), (1e-12, 1e-12), (10**6, 1e6)])
def test_quantity_accepted(sent, expected):
    assert ri.quantity(sent) == expected


@pytest.mark.parametrize("sent", [0, -1, -0.0, math.nan, math.inf, -math.inf, True, "5", None, [5], 10**400])
def test_quantity_refused(sent):
    refused("bad_quantity", ri.quantity, sent)


def test_reference():
    assert ri.reference("DEV-1-000042") == "DEV-1-000042"
    assert ri.reference("x" * 64) == "x" * 64
    for bad in ("", "   ", "x" * 65, "a\x00b", "a\nb", None, 42, ["R1"]):
        refused("bad_reference", ri.reference, bad)


def test_reason():
    assert ri.reason("  wrong household  ") == "wrong household"
    for bad in ("", "  ", "x" * 501, "a\x00b", None, 3):
        refused("bad_reason", ri.reason, bad)


def test_service_point_id():
    assert ri.service_point_id(7) == 7
    for bad in (True, False, "7", 7.0, None, [7]):
        refused("bad_service_point", ri.service_point_id, bad)


def test_batch_lines():
    assert ri.batch_lines(({"code": "x"},)) == [{"code": "x"}]
    assert ri.batch_lines([]) == []
    for bad in ({"code": "x"}, "lines", None, [{}] * (ri.BATCH_MAX_LINES + 1)):
        refused("bad_lines", ri.batch_lines, bad)


def test_batch_line():
    line = {"code": "C", "quantity": 2, "reference": "R", "device_time": "2026-12-07T18:15:00+08:00"}
    assert ri.batch_line(line) == ("C", 2, "R", datetime(2026, 12, 7, 10, 15))
    assert ri.batch_line({}) == (None, None, None, False)
    refused("bad_line", ri.batch_line, ["C", 2, "R"])
    refused("bad_device_time", ri.batch_line, {**line, "device_time": "2026-12-07"})


def test_messages_are_templates_with_their_values():
    """The API translates ``template`` and fills it with ``params``; the English text
    (``str``) is the same message."""
    error = refused("bad_quantity", ri.quantity, -3)
    assert error.template % error.params == str(error)[len("[bad_quantity] ") :]
    assert "-3" in str(error)
