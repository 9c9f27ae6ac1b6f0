"""Seeded, realistic registry data (households and their members) written as CSV files for
Odoo's standard import (``res.partner`` / ``g2p.group.membership`` ``load()``).

Pure Python: Faker (name, street and phone pools, built once), pycountry (real ISO 3166-2
subdivisions) and ``random.Random(seed)`` for everything drawn per person. The same
``(households, seed, country, as_of)`` always gives the same registry, byte for byte.

How a household is drawn (figures in ``figures.py``):

* its area: a leaf subdivision of the country in pycountry (for the Philippines: the 82
  provinces and the National Capital Region, which has no provinces there), weighted by
  the households of its region, shared equally by the region's provinces;
* its size: ``1 + Poisson(mean - 1)``;
* its head: aged 18 or more (few under 25), a woman with the published share of female
  heads;
* the other members: ages from a distribution chosen so that, heads included, the whole
  population has the published age structure (see :func:`_age_tables`), sex from the
  published sex ratio of each age group, again corrected for the heads;
* each person: disability with the published prevalence, pregnancy (women 15-49 only)
  with the probability derived from the crude birth rate, a unique 12-digit PhilSys-like
  number, a mobile number for most persons aged 15+.
"""

import csv
import math
import random
import unicodedata
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate
from pathlib import Path

import pycountry
from faker import Faker
from faker.providers.address.en_PH import Provider as EnPhAddress
from faker.providers.phone_number.en_PH import Provider as EnPhPhone

from .figures import get_figures

MAX_AGE = 99
HEAD_MIN_AGE = 18

#: External ids of the membership kinds (data of ``g2p_programs_ext``).
KIND_HEAD = "g2p_programs_ext.membership_kind_head"
KIND_PRINCIPAL = "g2p_programs_ext.membership_kind_principal_recipient"

GROUPS_FILE = "res.partner.groups.csv"
INDIVIDUALS_FILE = "res.partner.individuals.csv"
MEMBERSHIPS_FILE = "g2p.group.membership.csv"
AREAS_FILE = "spp.area.csv"
HOUSEHOLD_AREAS_FILE = "res.partner.areas.csv"

GROUPS_HEADER = ("id", "name", "is_registrant", "is_group", "street", "city", "country_id/id")
INDIVIDUALS_HEADER = (
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
)
MEMBERSHIPS_HEADER = ("id", "group_id/id", "individual_id/id", "kind_ids/id", "start_date")
# spp.area (added by spp_service_points): external id area_<ISO 3166-2 code>.
AREAS_HEADER = ("id", "code", "name", "kind", "parent_id/id", "country_id/id")
# The households' area, imported onto the households already loaded (same external ids).
HOUSEHOLD_AREAS_HEADER = ("id", "area_id/id")

#: How far back registrations go: a household registered up to two years before ``as_of``.
REGISTRATION_WINDOW_DAYS = 730


# ---------------------------------------------------------------------------------------
# Data model
# ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Individual:
    xmlid: str
    given_name: str
    middle_name: str
    family_name: str
    id_number: str
    birthdate: date
    age: int
    gender: str  # female | male
    has_disability: bool
    is_pregnant: bool
    phone: str  # "" when none
    is_head: bool
    is_principal_recipient: bool
    start_date: date

    @property
    def name(self):
        return f"{self.given_name} {self.middle_name} {self.family_name}"


@dataclass(slots=True)
class Household:
    xmlid: str
    name: str
    street: str
    city: str
    area_code: str
    members: list = field(default_factory=list)

    @property
    def head(self):
        return next(member for member in self.members if member.is_head)


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    parent_code: str  # "" for a top-level subdivision
    type: str  # pycountry's subdivision type, lower case: "region", "province", ...


@dataclass
class Registry:
    country: str
    country_xmlid: str
    seed: int
    as_of: date
    households: list
    areas: list

    @property
    def individuals(self):
        for household in self.households:
            yield from household.members

    def summary(self):
        people = sum(len(h.members) for h in self.households)
        return {
            "households": len(self.households),
            "individuals": people,
            "average_household_size": people / len(self.households) if self.households else 0.0,
            "areas": len(self.areas),
        }


# ---------------------------------------------------------------------------------------
# Country profiles: names, streets, cities, phones
# ---------------------------------------------------------------------------------------

#: Surnames common in the Philippines: many Spanish (from the 1849 Claveria catalogue of
#: surnames), some Tagalog, Visayan, Kapampangan and Chinese-Filipino. Hand-picked, not
#: a frequency table.
PH_SURNAMES = (
    "Abad", "Abella", "Agbayani", "Aguilar", "Agustin", "Alcantara", "Alvarez", "Andrada",
    "Aquino", "Bacani", "Baluyot", "Bautista", "Bernardo", "Buenaventura", "Cabahug",
    "Cabrera", "Castillo", "Castro", "Concepcion", "Corpuz", "Cruz", "Dalisay", "David",
    "De Guzman", "De Leon", "De los Reyes", "Dela Cruz", "Dela Pena", "Del Rosario",
    "Dimaano", "Dimaculangan", "Dizon", "Domingo", "Enriquez", "Espiritu", "Evangelista",
    "Fajardo", "Fernandez", "Flores", "Francisco", "Galang", "Garcia", "Go", "Gonzales",
    "Gutierrez", "Ignacio", "Javier", "Lacsamana", "Lagman", "Lim", "Lopez", "Lualhati",
    "Macaraeg", "Magbanua", "Magno", "Mallari", "Manalo", "Manansala", "Mangubat",
    "Marquez", "Medina", "Mendoza", "Mercado", "Morales", "Navarro", "Nepomuceno",
    "Ocampo", "Padilla", "Panganiban", "Pangilinan", "Pascual", "Perez", "Pineda",
    "Quiambao", "Ramos", "Reyes", "Rivera", "Robles", "Rodriguez", "Roque", "Salazar",
    "Salvador", "Samonte", "Santiago", "Santos", "Sarmiento", "Sison", "Soriano", "Tan",
    "Tolentino", "Tomas", "Torres", "Umali", "Valdez", "Villanueva", "Villareal", "Yap",
    "Ybanez", "Zamora",
)  # fmt: skip

#: Given names common in the Philippines (English, Spanish and local coinages).
PH_GIVEN_FEMALE = (
    "Aileen", "Analyn", "Angelica", "Cherry", "Corazon", "Cristina", "Erlinda", "Evelyn",
    "Gloria", "Imelda", "Jenelyn", "Jocelyn", "Joy", "Kristine", "Lorna", "Lourdes",
    "Ma. Cristina", "Ma. Theresa", "Maria", "Maricel", "Marites", "Marivic", "Mary Grace",
    "Mary Joy", "Mylene", "Nenita", "Precious", "Princess", "Rhea", "Rosalie", "Rosario",
    "Rowena", "Teresita", "Virginia",
)  # fmt: skip
PH_GIVEN_MALE = (
    "Angelo", "Arnel", "Bienvenido", "Christian", "Danilo", "Edgardo", "Efren", "Ernesto",
    "Erwin", "Jayson", "Jericho", "Joel", "John Paul", "Jomar", "Jose", "Juan", "Mark Anthony",
    "Noel", "Ramil", "Renato", "Reynaldo", "Rodel", "Rodrigo", "Rogelio", "Rolando", "Romeo",
    "Ronaldo", "Ruel",
)  # fmt: skip

_ACCENTS = str.maketrans("áéíóúüÁÉÍÓÚÜ", "aeiouuAEIOUU")


def _plain(name):
    """Drop Spanish accents (Filipino spelling rarely keeps them) but keep the letter ñ."""
    return unicodedata.normalize("NFC", name).translate(_ACCENTS)


def _faker_pool(fake, method, draws):
    return sorted({_plain(getattr(fake, method)()) for _ in range(draws)})


@dataclass
class NamePools:
    given_female: tuple  # ((cumulative probability, pool), ...)
    given_male: tuple
    surnames: tuple
    streets: list


def _ph_pools(seed):
    # Faker has no person provider for fil_PH / en_PH / tl_PH (they fall back to en_US
    # names), which matches how common English given names are in the Philippines; Spanish
    # names come from es_MX. Streets come from the en_PH address provider (via fil_PH).
    filipino = Faker("fil_PH")
    filipino.seed_instance(seed)
    spanish = Faker("es_MX")
    spanish.seed_instance(seed)
    female = (
        (0.40, PH_GIVEN_FEMALE),
        (0.75, _faker_pool(filipino, "first_name_female", 2000)),
        (1.00, _faker_pool(spanish, "first_name_female", 1000)),
    )
    male = (
        (0.40, PH_GIVEN_MALE),
        (0.75, _faker_pool(filipino, "first_name_male", 2000)),
        (1.00, _faker_pool(spanish, "first_name_male", 1000)),
    )
    surnames = ((0.55, PH_SURNAMES), (1.00, _faker_pool(spanish, "last_name", 2000)))
    # House number and street only: the en_PH provider's condominium formats ("21F ...
    # Residences Tower 6") do not fit most households of a social protection registry.
    streets = [f"{filipino.standalone_building_number()} {filipino.street_name()}" for _ in range(2000)]
    return NamePools(female, male, surnames, streets)


def _ph_mobile_prefixes():
    return sorted(
        set(
            EnPhPhone.globe_mobile_number_prefixes
            + EnPhPhone.smart_mobile_number_prefixes
            + EnPhPhone.sun_mobile_number_prefixes
        )
    )


def _ph_cities():
    # The 17 cities and municipality of Metro Manila; pycountry has no subdivision below
    # the National Capital Region, so its households get one of these as their city.
    return {"PH-00": tuple(EnPhAddress.metro_manila_lgus)}


@dataclass(frozen=True)
class CountryProfile:
    country: str
    country_xmlid: str
    build_pools: object  # seed -> NamePools
    mobile_prefixes: object  # () -> list of 3-digit prefixes after the country code
    phone_format: str  # with {prefix}, {a} (3 digits) and {b} (4 digits)
    cities: object  # () -> {area code: tuple of city names}; others use the area name
    id_digits: int


COUNTRY_PROFILES = {
    "PH": CountryProfile(
        country="PH",
        country_xmlid="base.ph",
        build_pools=_ph_pools,
        mobile_prefixes=_ph_mobile_prefixes,
        phone_format="+63 {prefix} {a} {b}",
        cities=_ph_cities,
        id_digits=12,  # PhilSys Number (PSN): 12 digits
    ),
}


def _profile(country):
    code = (country or "").upper()
    get_figures(code)  # refuses a country without figures
    if code not in COUNTRY_PROFILES:
        raise ValueError(
            f"No name/address profile for country {country!r}: add one to COUNTRY_PROFILES "
            "in setup/demo_data/registry.py."
        )
    return COUNTRY_PROFILES[code]


# ---------------------------------------------------------------------------------------
# Areas
# ---------------------------------------------------------------------------------------


def _subdivisions(country):
    subdivisions = pycountry.subdivisions.get(country_code=country) or []
    return {sub.code: sub for sub in subdivisions}


def _leaf_areas(subdivisions):
    parents = {sub.parent_code for sub in subdivisions.values() if sub.parent_code}
    return sorted(code for code in subdivisions if code not in parents)


def _area_weights(leaves, subdivisions, figures):
    """Households per leaf area: its region's households shared equally among the region's
    leaves (``region_households``), or given directly (``area_households_overrides``);
    uniform when the country has no regional figures."""
    overrides = figures.area_households_overrides
    regional = figures.region_households
    if not regional:
        return [1.0] * len(leaves)
    groups = defaultdict(list)
    for code in leaves:
        if code in overrides:
            continue
        key = code if code in regional else subdivisions[code].parent_code
        groups[key].append(code)
    weights = {}
    for key, codes in groups.items():
        for code in codes:
            weights[code] = regional[key] / len(codes) if key in regional else None
    known = [w for w in weights.values() if w is not None]
    fallback = sum(known) / len(known) if known else 1.0
    weights.update({code: float(n) for code, n in overrides.items() if code in subdivisions})
    return [weights[code] if weights[code] is not None else fallback for code in leaves]


def _areas_used(codes, subdivisions):
    todo, seen = list(codes), {}
    while todo:
        code = todo.pop()
        if code in seen:
            continue
        sub = subdivisions[code]
        seen[code] = Area(code, sub.name, sub.parent_code or "", sub.type.lower())
        if sub.parent_code:
            todo.append(sub.parent_code)
    return [seen[code] for code in sorted(seen)]


# ---------------------------------------------------------------------------------------
# Distributions
# ---------------------------------------------------------------------------------------


def _head_weight(age):
    if age < HEAD_MIN_AGE:
        return 0.0
    if age < 20:
        return 0.15
    if age < 25:
        return 0.5
    return 1.0


def _normalised(values):
    total = sum(values)
    return [value / total for value in values]


def _age_tables(figures):
    """Cumulative age distributions for heads and for the other members.

    With ``p`` the published share at each age, ``h`` the heads' distribution (``p``
    restricted to adults, few under 25) and ``m`` the mean household size, one person in
    ``m`` is a head, so the other members must follow ``q = (p - h / m) / (1 - 1 / m)`` for
    the whole population to follow ``p``. ``q`` is never negative here because
    ``h(a) / m < p(a)`` at every age (adults are more than 1/m of the population).
    """
    p = figures.single_year_age_shares(MAX_AGE)
    h = _normalised([share * _head_weight(age) for age, share in enumerate(p)])
    m = figures.average_household_size
    q = _normalised([max(0.0, (pa - ha / m) / (1 - 1 / m)) for pa, ha in zip(p, h, strict=True)])
    return p, h, q


def _male_share_for_others(figures, h, q):
    """P(male) of a non-head member by age, so that heads (mostly men) plus the others
    reproduce the published sex ratio of every age group."""
    m = figures.average_household_size
    male_heads = 1.0 - figures.female_head_share
    shares = [0.0] * (MAX_AGE + 1)
    for low, high, _ratio in figures.sex_ratio_by_age:
        ages = range(low, min(high, MAX_AGE) + 1)
        target = sum(
            (h[a] / m + q[a] * (1 - 1 / m)) * figures.male_share(a) for a in ages
        )  # males in the group, per person in the population
        heads = male_heads * sum(h[a] for a in ages) / m
        others = (1 - 1 / m) * sum(q[a] for a in ages)
        share = (target - heads) / others if others else 0.5
        for a in ages:
            shares[a] = min(0.98, max(0.02, share))
    return shares


def _size_cdf(mean, max_extra=40):
    """Cumulative probabilities of ``size - 1`` for ``size = 1 + Poisson(mean - 1)``."""
    lam = mean - 1.0
    term, total, cdf = math.exp(-lam), 0.0, []
    for k in range(max_extra + 1):
        if k:
            term *= lam / k
        total += term
        cdf.append(total)
    cdf[-1] = 1.0
    return cdf


def _years_before(day, years):
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _birth_windows(as_of):
    """For each age, the (first ordinal, number of days) of birthdates giving that age."""
    windows = []
    for age in range(MAX_AGE + 1):
        first = _years_before(as_of, age + 1) + timedelta(days=1)
        last = _years_before(as_of, age)
        windows.append((first.toordinal(), (last - first).days + 1))
    return windows


# ---------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------


def _pick(rng, pools):
    draw = rng.random()
    for threshold, pool in pools:
        if draw < threshold:
            return rng.choice(pool)
    return rng.choice(pools[-1][1])


def generate(households, seed=42, country="PH", as_of=None):
    """Generate ``households`` households and their members.

    ``as_of`` (a date, default today) is the day ages refer to: a person drawn at age 4 is
    4 on that day. The result depends only on ``(households, seed, country, as_of)``.
    """
    if households < 0:
        raise ValueError("households must be 0 or more")
    figures = get_figures(country)
    profile = _profile(country)
    as_of = as_of or date.today()
    rng = random.Random(seed)
    pools = profile.build_pools(seed)
    prefixes = profile.mobile_prefixes()
    cities = profile.cities()

    subdivisions = _subdivisions(profile.country)
    leaves = _leaf_areas(subdivisions)
    _p, head_ages, other_ages = _age_tables(figures)
    male_others = _male_share_for_others(figures, head_ages, other_ages)
    cum_head = list(accumulate(head_ages))
    cum_other = list(accumulate(other_ages))
    ages = range(MAX_AGE + 1)
    size_cdf = _size_cdf(figures.average_household_size)
    windows = _birth_windows(as_of)
    as_of_ordinal = as_of.toordinal()

    sizes = [1 + bisect_right(size_cdf, rng.random()) for _ in range(households)]
    area_index = rng.choices(
        range(len(leaves)),
        cum_weights=list(accumulate(_area_weights(leaves, subdivisions, figures))),
        k=households,
    )
    low = 10 ** (profile.id_digits - 1)
    id_numbers = rng.sample(range(low, low * 10), sum(sizes))

    female_head = figures.female_head_share
    disability_adult = figures.disability_prevalence_15plus
    disability_child = figures.disability_prevalence_under_15
    pregnancy = figures.pregnancy_probability
    phone_share = figures.phone_share_15plus
    phone_format = profile.phone_format
    random_ = rng.random
    randrange = rng.randrange
    choice = rng.choice

    result = []
    next_id = 0
    for index in range(households):
        number = index + 1
        size = sizes[index]
        area_code = leaves[area_index[index]]
        city_pool = cities.get(area_code)
        city = choice(city_pool) if city_pool else subdivisions[area_code].name
        street = choice(pools.streets)
        family = _pick(rng, pools.surnames)
        registered = as_of_ordinal - randrange(REGISTRATION_WINDOW_DAYS)

        head_age = rng.choices(ages, cum_weights=cum_head)[0]
        member_ages = [head_age] + rng.choices(ages, cum_weights=cum_other, k=size - 1)
        head_is_female = random_() < female_head
        head_middle = _pick(rng, pools.surnames)
        # The children's middle name is their mother's maiden name: the head's own middle
        # name when she heads the household, else the (absent from the data) wife's.
        mothers_maiden = head_middle if head_is_female else _pick(rng, pools.surnames)

        members = []
        for position, age in enumerate(member_ages):
            is_head = position == 0
            if is_head:
                female = head_is_female
                middle, last = head_middle, family
            else:
                female = random_() >= male_others[age]
                last = family if random_() < 0.85 else _pick(rng, pools.surnames)
                child_of_head = last == family and age <= head_age - 15
                middle = mothers_maiden if child_of_head else _pick(rng, pools.surnames)
            given = _pick(rng, pools.given_female if female else pools.given_male)
            if age < 15:
                disabled = random_() < disability_child
            else:
                disabled = random_() < disability_adult["female" if female else "male"]
            pregnant = female and 15 <= age <= 49 and random_() < pregnancy
            phone = ""
            if age >= 15 and random_() < phone_share:
                digits = randrange(10_000_000)
                phone = phone_format.format(
                    prefix=choice(prefixes), a=f"{digits // 10_000:03d}", b=f"{digits % 10_000:04d}"
                )
            first_day, span = windows[age]
            birth_ordinal = first_day + randrange(span)
            members.append(
                Individual(
                    xmlid="",
                    given_name=given,
                    middle_name=middle,
                    family_name=last,
                    id_number=str(id_numbers[next_id]),
                    birthdate=date.fromordinal(birth_ordinal),
                    age=age,
                    gender="female" if female else "male",
                    has_disability=disabled,
                    is_pregnant=pregnant,
                    phone=phone,
                    is_head=is_head,
                    is_principal_recipient=is_head,
                    start_date=date.fromordinal(max(registered, birth_ordinal)),
                )
            )
            next_id += 1
        # Listing order of a household roster: the head, then the others, oldest first.
        members[1:] = sorted(members[1:], key=lambda member: -member.age)
        for position, member in enumerate(members, start=1):
            member.xmlid = f"demo_ind_{number:06d}_{position:02d}"
        head = members[0]
        result.append(
            Household(
                xmlid=f"demo_hh_{number:06d}",
                name=f"Household of {head.given_name} {head.family_name}",
                street=street,
                city=city,
                area_code=area_code,
                members=members,
            )
        )

    areas = _areas_used({household.area_code for household in result}, subdivisions)
    return Registry(
        country=profile.country,
        country_xmlid=profile.country_xmlid,
        seed=seed,
        as_of=as_of,
        households=result,
        areas=areas,
    )


# ---------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------


def _bool(value):
    return "True" if value else "False"


def _write(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def area_xmlid(code):
    """External id of an area in the import files: ``area_PH_03`` for ``PH-03``."""
    return "area_" + code.replace("-", "_")


def write_csv(registry, out_dir):
    """Write the registry as CSV files in ``out_dir`` (created if missing).

    Returns ``{"groups", "individuals", "memberships", "areas", "household_areas"}`` →
    path. External ids have no module prefix: Odoo's ``load()`` files them, and resolves
    ``*/id`` columns, under ``__import__``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "groups": out / GROUPS_FILE,
        "individuals": out / INDIVIDUALS_FILE,
        "memberships": out / MEMBERSHIPS_FILE,
        "areas": out / AREAS_FILE,
        "household_areas": out / HOUSEHOLD_AREAS_FILE,
    }
    country = registry.country_xmlid
    households = registry.households
    _write(
        paths["groups"],
        GROUPS_HEADER,
        ((h.xmlid, h.name, "True", "True", h.street, h.city, country) for h in households),
    )
    _write(
        paths["individuals"],
        INDIVIDUALS_HEADER,
        (
            (
                m.xmlid,
                m.name,
                "True",
                "False",
                m.id_number,
                m.birthdate.isoformat(),
                m.gender,
                _bool(m.has_disability),
                _bool(m.is_pregnant),
                m.phone,
            )
            for m in registry.individuals
        ),
    )

    def memberships():
        for household in households:
            for member in household.members:
                kinds = []
                if member.is_head:
                    kinds.append(KIND_HEAD)
                if member.is_principal_recipient:
                    kinds.append(KIND_PRINCIPAL)
                yield (
                    "demo_mem_" + member.xmlid[len("demo_ind_") :],
                    household.xmlid,
                    member.xmlid,
                    ",".join(kinds),
                    member.start_date.isoformat(),
                )

    _write(paths["memberships"], MEMBERSHIPS_HEADER, memberships())
    _write(
        paths["areas"],
        AREAS_HEADER,
        (
            (
                area_xmlid(a.code),
                a.code,
                a.name,
                a.type,
                area_xmlid(a.parent_code) if a.parent_code else "",
                country,
            )
            for a in registry.areas
        ),
    )
    _write(
        paths["household_areas"],
        HOUSEHOLD_AREAS_HEADER,
        ((h.xmlid, area_xmlid(h.area_code)) for h in households),
    )
    return paths
