"""The demo's real-input generator (setup/demo_data): pure Python, no database.

Run alone with: .venv/bin/python -m pytest -p no:odoo -p no:cacheprovider -q tests/test_demo_data.py
"""

import csv
import re
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import pycountry
import pytest

# setup/ is not an importable package under the Odoo virtualenv (Odoo's own setup.py,
# on sys.path through its editable install, shadows it), so import the generator the way
# setup/demo.py does: with setup/ itself on sys.path.
SETUP_DIR = Path(__file__).resolve().parent.parent / "setup"
if str(SETUP_DIR) not in sys.path:
    sys.path.insert(0, str(SETUP_DIR))

import demo_data  # noqa: E402
from demo_data import (  # noqa: E402
    figures,
    goods,
    registry,
)

AS_OF = date(2026, 1, 15)
HOUSEHOLDS = 5000


def _read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [dict(zip(header, row, strict=True)) for row in reader]
    return header, rows


def _age(birthdate, on=AS_OF):
    born = date.fromisoformat(birthdate)
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    reg = demo_data.generate(HOUSEHOLDS, seed=42, country="PH", as_of=AS_OF)
    paths = demo_data.write_csv(reg, tmp_path_factory.mktemp("demo-input"))
    tables = {key: _read(path) for key, path in paths.items()}
    return reg, paths, tables


def _files(directory):
    return {path.name: path.read_bytes() for path in sorted(Path(directory).iterdir())}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        demo_data.write_csv(demo_data.generate(300, seed=seed, as_of=AS_OF), tmp_path / name)
    first, again, other = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert first == again
    assert set(first) == set(other)
    for name in ("res.partner.groups.csv", "res.partner.individuals.csv", "g2p.group.membership.csv"):
        assert first[name] != other[name], name


def test_csv_headers(written):
    _reg, _paths, tables = written
    assert tables["groups"][0] == [
        "id",
        "name",
        "is_registrant",
        "is_group",
        "street",
        "city",
        "country_id/id",
    ]
    assert tables["individuals"][0] == [
        "id",
        "name",
        "is_registrant",
        "is_group",
        "id_number",
        "birthdate",
        "gender",
        "has_disability",
        "is_pregnant",
        "phone",
    ]
    assert tables["memberships"][0] == ["id", "group_id/id", "individual_id/id", "kind_ids/id", "start_date"]
    assert tables["areas"][0] == ["id", "code", "name", "kind", "parent_id/id", "country_id/id"]
    assert tables["household_areas"][0] == ["id", "area_id/id"]
    assert {path.name for path in written[1].values()} == {
        "res.partner.groups.csv",
        "res.partner.individuals.csv",
        "g2p.group.membership.csv",
        "spp.area.csv",
        "res.partner.areas.csv",
    }


def test_values_as_odoo_import_expects(written):
    _reg, _paths, tables = written
    groups, individuals = tables["groups"][1], tables["individuals"][1]
    assert len(groups) == HOUSEHOLDS
    assert [row["id"] for row in groups][:2] == ["demo_hh_000001", "demo_hh_000002"]
    for row in groups:
        assert "." not in row["id"]
        assert (row["is_registrant"], row["is_group"], row["country_id/id"]) == ("True", "True", "base.ph")
        assert row["name"] and row["street"] and row["city"]
    for row in individuals:
        assert "." not in row["id"] and row["id"].startswith("demo_ind_")
        assert (row["is_registrant"], row["is_group"]) == ("True", "False")
        assert row["gender"] in ("female", "male")
        assert row["has_disability"] in ("True", "False") and row["is_pregnant"] in ("True", "False")
        date.fromisoformat(row["birthdate"])
        assert row["phone"] == "" or re.fullmatch(r"\+63 [89]\d\d \d{3} \d{4}", row["phone"])


def test_id_numbers_unique_and_philsys_like(written):
    individuals = written[2]["individuals"][1]
    numbers = [row["id_number"] for row in individuals]
    assert len(set(numbers)) == len(numbers)
    assert all(len(n) == 12 and n.isdigit() and n[0] != "0" for n in numbers)


def test_every_individual_in_exactly_one_household(written):
    tables = written[2]
    group_ids = {row["id"] for row in tables["groups"][1]}
    individual_ids = [row["id"] for row in tables["individuals"][1]]
    memberships = tables["memberships"][1]
    assert len(set(individual_ids)) == len(individual_ids)
    counts = Counter(row["individual_id/id"] for row in memberships)
    assert set(counts) == set(individual_ids)
    assert set(counts.values()) == {1}
    assert {row["group_id/id"] for row in memberships} == group_ids
    assert len({row["id"] for row in memberships}) == len(memberships)


def test_household_size_mean_matches_census(written):
    reg = written[0]
    mean = sum(len(h.members) for h in reg.households) / len(reg.households)
    assert abs(mean - figures.PH_AVERAGE_HOUSEHOLD_SIZE) <= 0.3
    assert min(len(h.members) for h in reg.households) >= 1


def test_every_household_has_one_adult_head_and_one_principal_recipient(written):
    tables = written[2]
    birthdates = {row["id"]: row["birthdate"] for row in tables["individuals"][1]}
    heads, principals = Counter(), Counter()
    for row in tables["memberships"][1]:
        kinds = set(filter(None, row["kind_ids/id"].split(",")))
        assert kinds <= {registry.KIND_HEAD, registry.KIND_PRINCIPAL}
        if registry.KIND_HEAD in kinds:
            heads[row["group_id/id"]] += 1
            assert _age(birthdates[row["individual_id/id"]]) >= 18
        if registry.KIND_PRINCIPAL in kinds:
            principals[row["group_id/id"]] += 1
            assert _age(birthdates[row["individual_id/id"]]) >= 18
    households = {row["id"] for row in tables["groups"][1]}
    assert set(heads) == households and set(heads.values()) == {1}
    assert set(principals) == households and set(principals.values()) == {1}


def test_membership_starts_neither_before_birth_nor_after_as_of(written):
    tables = written[2]
    birthdates = {row["id"]: row["birthdate"] for row in tables["individuals"][1]}
    for row in tables["memberships"][1]:
        assert birthdates[row["individual_id/id"]] <= row["start_date"] <= AS_OF.isoformat()


def test_pregnant_only_women_15_to_49(written):
    individuals = written[2]["individuals"][1]
    pregnant = [row for row in individuals if row["is_pregnant"] == "True"]
    assert pregnant
    for row in pregnant:
        assert row["gender"] == "female"
        assert 15 <= _age(row["birthdate"]) <= 49
    women = [r for r in individuals if r["gender"] == "female" and 15 <= _age(r["birthdate"]) <= 49]
    share = len(pregnant) / len(women)
    assert abs(share - figures.PH_PREGNANCY_PROBABILITY) < 0.015


def test_ages_agree_with_the_drawn_age(written):
    reg = written[0]
    for member in reg.individuals:
        assert _age(member.birthdate.isoformat()) == member.age


def test_age_structure_matches_census(written):
    individuals = written[2]["individuals"][1]
    ages = [_age(row["birthdate"]) for row in individuals]
    for low, high, share in figures.PH_BROAD_AGE_SHARES:
        observed = sum(low <= age <= high for age in ages) / len(ages)
        assert abs(observed - share) < 0.02, (low, high, observed, share)


def test_sex_and_disability_close_to_figures(written):
    individuals = written[2]["individuals"][1]
    males = sum(row["gender"] == "male" for row in individuals) / len(individuals)
    assert abs(males - 0.506) < 0.015
    adults = [row for row in individuals if _age(row["birthdate"]) >= 15]
    disabled = sum(row["has_disability"] == "True" for row in adults) / len(adults)
    assert abs(disabled - 0.12) < 0.015


def test_areas_are_real_pycountry_subdivisions(written):
    tables = written[2]
    ph = {sub.code: sub for sub in pycountry.subdivisions.get(country_code="PH")}
    areas = {row["code"]: row for row in tables["areas"][1]}
    by_xmlid = {row["id"]: row for row in tables["areas"][1]}
    for code, row in areas.items():
        assert code in ph
        assert row["id"] == registry.area_xmlid(code)
        assert row["name"] == ph[code].name
        parent = ph[code].parent_code or ""
        assert row["parent_id/id"] == (registry.area_xmlid(parent) if parent else "")
        assert row["parent_id/id"] == "" or row["parent_id/id"] in by_xmlid
        assert row["kind"] == ph[code].type.lower()
        assert row["country_id/id"] == "base.ph"
    used = [row["area_id/id"] for row in tables["household_areas"][1]]
    assert [row["id"] for row in tables["household_areas"][1]] == [row["id"] for row in tables["groups"][1]]
    assert set(used) <= set(by_xmlid)
    # Leaf areas only (a province, or the National Capital Region, which has none).
    assert not set(used) & {row["parent_id/id"] for row in areas.values()}
    # Weighted by households: Metro Manila is the largest single area by far.
    assert Counter(used).most_common(1)[0][0] == "area_PH_00"


def test_unknown_country_is_refused():
    with pytest.raises(ValueError, match="No published figures"):
        demo_data.generate(10, country="XX")


def test_pregnancy_probability_derivation():
    expected = 14.1 / 1000 * 0.75 / (27_800_000 / 109_035_343)
    assert figures.PH_PREGNANCY_PROBABILITY == pytest.approx(expected)
    assert 0.035 < figures.PH_PREGNANCY_PROBABILITY < 0.05


def test_figures_bundle_is_consistent():
    ph = figures.get_figures("ph")
    groups = ph.age_group_shares()
    assert sum(share for _, _, share in groups) == pytest.approx(1.0)
    assert sum(ph.single_year_age_shares()) == pytest.approx(1.0)
    assert sum(figures.PH_REGION_HOUSEHOLDS_2015.values()) + figures.PH_NIR_HOUSEHOLDS_2015 == 22_975_630
    male = sum(share * ph.male_share(low) for low, _high, share in ph.broad_age_shares)
    assert male == pytest.approx(0.506, abs=0.001)


def test_basket_per_person_per_30_days():
    rows = {row["default_code"]: row for row in goods.basket_per_person()}
    assert rows["GFD-RICE"]["uom_name"] == "kg"
    assert rows["GFD-RICE"]["quantity_per_person"] == pytest.approx(400 * 30 / 1000)  # 12 kg
    assert rows["GFD-PULSE"]["quantity_per_person"] == pytest.approx(60 * 30 / 1000)
    assert rows["GFD-SALT"]["quantity_per_person"] == pytest.approx(5 * 30 / 1000)
    assert rows["GFD-SUGAR"]["quantity_per_person"] == pytest.approx(15 * 30 / 1000)
    assert rows["GFD-SCEREAL"]["quantity_per_person"] == pytest.approx(50 * 30 / 1000)
    for item in goods.RATION:
        row = rows[item.default_code]
        if item.uom_name == "kg":
            assert row["quantity_per_person"] == pytest.approx(item.grams_per_person_per_day * 30 / 1000)
    oil = rows["GFD-OIL"]
    assert oil["uom_name"] == "L"
    assert oil["quantity_per_person"] == pytest.approx(round(25 * 30 / 1000 / 0.92, 2))  # 0.82 L
    assert [code for code, row in rows.items() if row["vulnerable_only"]] == ["GFD-SCEREAL"]
    assert all(row["max_household_size"] == goods.HOUSEHOLD_SIZE_CAP == 8 for row in rows.values())


def test_household_basket_caps_and_targets():
    five = goods.household_basket(5)
    assert five["GFD-RICE"] == pytest.approx(60.0)
    assert "GFD-SCEREAL" not in five
    assert goods.household_basket(12, vulnerable=True) == goods.household_basket(8, vulnerable=True)
    assert goods.household_basket(12, vulnerable=True)["GFD-SCEREAL"] == pytest.approx(12.0)
    assert goods.household_basket(3, vulnerable=True)["GFD-OIL"] == pytest.approx(2.46)
    assert goods.round_to_uom(0.815) == 0.82 and goods.round_to_uom(0.8149) == 0.81
