"""The translation templates' check (setup/i18n.py): what counts as a change.

The export itself runs against a real database in ``make test`` (setup/run_tests.py).
"""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "i18n", Path(__file__).resolve().parent.parent / "setup" / "i18n.py"
)
i18n = importlib.util.module_from_spec(spec)
spec.loader.exec_module(i18n)

POT = """msgid ""
msgstr ""
"Project-Id-Version: Odoo Server 17.0\\n"
"POT-Creation-Date: 2026-12-07 19:15+0000\\n"
"PO-Revision-Date: 2026-12-07 19:15+0000\\n"

#. module: spp_service_points
#: model:ir.model.fields,field_description:spp_service_points.field_spp_service_point__code
msgid "Code"
msgstr ""
"""


def test_an_export_at_another_time_is_the_same_template():
    later = POT.replace("2026-12-07 19:15", "2027-01-02 08:00")
    assert i18n.comparable(later) == i18n.comparable(POT)


def test_a_new_or_changed_term_is_a_change():
    assert i18n.comparable(POT.replace('"Code"', '"Point code"')) != i18n.comparable(POT)
    assert i18n.comparable(POT + '\nmsgid "Area"\nmsgstr ""\n') != i18n.comparable(POT)


def test_every_addon_has_a_committed_template():
    assert all(i18n.pot_path(addon).is_file() for addon in i18n.ADDONS)
