"""Published national figures that shape the generated registry.

Every figure is a module constant with its source written next to it (title, publisher,
year, address as text). Each source says how it was checked:

* "verified": the figure was read in the publisher's own release (or an official
  regional office of the publisher) while this module was written;
* "secondary": the figure was read only in a copy or a press report of the release,
  not on the publisher's site; it is consistent with the verified figures around it;
* "assumption": no published figure was found; the value is a modelling choice and
  says so.

Only the Philippines (``PH``) has figures now. Another country is added by writing a
:class:`CountryFigures` for it and registering it in :data:`FIGURES`; the generator
(``registry.py``) reads nothing country-specific from anywhere else except name pools,
phone and address formats (its ``COUNTRY_PROFILES``).
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    title: str
    publisher: str
    year: int
    url: str
    status: str  # verified | secondary | assumption
    note: str = ""


# ---------------------------------------------------------------------------------------
# Philippines
# ---------------------------------------------------------------------------------------

SRC_PH_CPH2020_HOUSEHOLDS = Source(
    title="Household Population, Number of Households, and Average Household Size of the "
    "Philippines (2020 Census of Population and Housing), Reference No. 2022-111",
    publisher="Philippine Statistics Authority (PSA)",
    year=2022,
    url="https://psa.gov.ph/population-and-housing/node/166426",
    status="verified",
    note="Total population 109,035,343 and household population 108,667,043 on 1 May 2020; "
    "26,393,906 households; average household size 4.1 (4.4 in 2015, 4.6 in 2010).",
)

#: Average household size, persons per household, 2020 census (PSA release 2022-111,
#: https://psa.gov.ph/population-and-housing/node/166426). Verified.
#: (108,667,043 / 26,393,906 = 4.117; the release rounds to 4.1, which we use.)
PH_AVERAGE_HOUSEHOLD_SIZE = 4.1

#: Total population on 1 May 2020 (same PSA release 2022-111). Verified.
PH_TOTAL_POPULATION_2020 = 109_035_343

SRC_PH_HOUSEHOLD_SIZE_DISTRIBUTION = Source(
    title="Shifted Poisson fitted to the 2020 census mean (no published distribution used)",
    publisher="this project",
    year=2020,
    url="https://psa.gov.ph/population-and-housing/node/166426 (mean only)",
    status="assumption",
    note="We could not find a published 2020 table of households by size while writing "
    "this; only the published mean is used.",
)

#: Distribution of household sizes: ``size = 1 + Poisson(lambda)`` with
#: ``lambda = PH_AVERAGE_HOUSEHOLD_SIZE - 1 = 3.1``, so that the mean is exactly the
#: census mean (4.1) and every household has at least one person. This is a shape we
#: fitted to the published mean, not a published distribution (see
#: SRC_PH_HOUSEHOLD_SIZE_DISTRIBUTION). It gives about 4.5% one-person households and
#: about 9% with 7 or more persons.
PH_HOUSEHOLD_SIZE_MODEL = "shifted_poisson"

SRC_PH_CPH2020_AGE_SEX = Source(
    title="Age and Sex Distribution in the Philippine Population (2020 Census of Population and Housing)",
    publisher="Philippine Statistics Authority (PSA)",
    year=2022,
    url="https://psa.gov.ph/population-and-housing (release on the 2020 CPH age and sex distribution)",
    status="secondary",
    note="Read only in copies of the release, not on psa.gov.ph: of the household population "
    "30.7% were under 15, 63.9% were 15-64 and 5.4% were 65 and over; 50.6% male, 49.4% "
    "female; sex ratio 107 males per 100 females under 15, 103 at 15-64, 73 at 65 and over. "
    "The copies quote an overall ratio of 103, which the 50.6/49.4 shares (ratio 102.4) do "
    "not quite match; we use the shares by age group, which reproduce the 50.6% male share.",
)

SRC_PH_POPCOM_2022 = Source(
    title="POPCOM: declining children's population pushes up median age (citing PSA 2020 CPH)",
    publisher="Commission on Population and Development (POPCOM), reported by Xinhua / The Star / Vietnam+",
    year=2022,
    url="https://thestar.com.my/aseanplus/aseanplus-news/2022/08/14/declining-children039s-"
    "population-pushes-up-median-age-in-philippines",
    status="secondary",
    note="Children under 5: 10.2% of the population in 2020 (10.8% in 2015); under 15: 30.7%; "
    "median age 25.3; women aged 15-49: 27.8 million in 2020.",
)

#: Broad age groups (inclusive lower and upper age, share of the household population),
#: 2020 census. 0-4: 10.2% (POPCOM citing PSA, secondary); 5-14: 30.7% - 10.2% = 20.5%;
#: 15-64: 63.9%; 65+: 5.4% (PSA age-and-sex release, read in copies: secondary).
PH_BROAD_AGE_SHARES = (
    (0, 4, 0.102),
    (5, 14, 0.205),
    (15, 64, 0.639),
    (65, 99, 0.054),
)

#: How each broad group is split into 5-year groups: relative weights, scaled so that the
#: groups add up to the broad share above. ASSUMPTION: a smooth decline with age that we
#: chose (we could not read the 2020 table by 5-year group). It implies a 60+ share of
#: about 8.4%, close to the roughly 8.5% "senior citizens" share commonly quoted for 2020
#: (not verified). Ages within a 5-year group are uniform; 95-99 is the last group.
PH_AGE_SHAPE_WITHIN_BROAD_GROUPS = {
    (0, 4): ((0, 4, 1.0),),
    (5, 14): ((5, 9, 10.4), (10, 14, 10.1)),
    (15, 64): (
        (15, 19, 10.0),
        (20, 24, 9.4),
        (25, 29, 8.6),
        (30, 34, 7.8),
        (35, 39, 7.0),
        (40, 44, 6.3),
        (45, 49, 5.6),
        (50, 54, 4.9),
        (55, 59, 4.0),
        (60, 64, 3.1),
    ),
    (65, 99): (
        (65, 69, 2.2),
        (70, 74, 1.5),
        (75, 79, 0.9),
        (80, 84, 0.5),
        (85, 89, 0.25),
        (90, 94, 0.1),
        (95, 99, 0.03),
    ),
}

#: Males per 100 females by broad age group, 2020 census (PSA age-and-sex release, read
#: in copies: secondary). Together with PH_BROAD_AGE_SHARES they give 50.6% males.
PH_SEX_RATIO_BY_AGE = (
    (0, 14, 107.0),
    (15, 64, 103.0),
    (65, 99, 73.0),
)

SRC_PH_FIES2009_FEMALE_HEAD = Source(
    title="Female-Headed Families Have More Income Than Male-Headed Families (Based From the "
    "Final Results of the 2009 Family Income and Expenditure Survey), Reference No. 2011-02",
    publisher="National Statistics Office / Philippine Statistics Authority",
    year=2011,
    url="https://psa.gov.ph/content/female-headed-families-have-more-income-male-headed-"
    "families-based-final-results-2009-family",
    status="verified",
    note="'Of the estimated 18.5 million families in 2009, one in every five was female-headed.'",
)

#: Share of households whose head is a woman: one in five (2009 FIES, families; verified).
#: Families are not households, and 2009 is old; good enough for who heads a demo household.
PH_FEMALE_HEAD_SHARE = 0.20

SRC_PH_NDPS2016 = Source(
    title="2016 National Disability Prevalence Survey / Model Functioning Survey (NDPS/MFS): "
    "results conveyed by PSA regional offices (e.g. PSA-RSSO I and RSSO VII, 2019)",
    publisher="Philippine Statistics Authority (PSA), with DOH, WHO, NCDA and UP Manila",
    year=2019,
    url="https://rsso01.psa.gov.ph/content/psa-rsso-i-holds-first-national-disability-"
    "prevalence-survey-forum",
    status="verified",
    note="Filipinos aged 15 and over in 2016: 12% severe disability, 47% moderate, 23% mild, "
    "19% none; severe disability 15% of women and 9% of men. The survey used the WHO/World "
    "Bank Model Disability Survey and covered ages 15+ only.",
)

SRC_PH_CPH2010_DISABILITY = Source(
    title="Persons with Disability in the Philippines (Results from the 2010 Census), Reference No. 2013-05",
    publisher="Philippine Statistics Authority / National Statistics Office",
    year=2013,
    url="https://psa.gov.ph/content/persons-disability-philippines-results-2010-census",
    status="verified",
    note="1.57% of the 92.1 million household population had a disability (1,443 thousand). "
    "By age (table reproduced from the release, read in a copy: secondary): 272 thousand "
    "aged 0-14, of about 30.8 million children under 15 (33.4% of 92.1 million), i.e. 0.9%.",
)

#: ``has_disability`` means *severe disability* as measured by the 2016 NDPS (PSA), which
#: is the survey the brief prefers, for persons aged 15 and over, by sex: women 15%, men
#: 9% (overall 12%). Verified. The NDPS did not cover children; for ages 0-14 we use the
#: 2010 census prevalence of 0.9% (272 thousand of about 30.8 million), a different,
#: narrower (impairment-based) definition; the 2020 census figure was not used.
PH_DISABILITY_PREVALENCE_15PLUS = {"female": 0.15, "male": 0.09}
PH_DISABILITY_PREVALENCE_UNDER_15 = 0.009

SRC_PH_BIRTHS2020 = Source(
    title="Registered Live Births in the Philippines, 2020, Reference No. 2022-36",
    publisher="Philippine Statistics Authority (PSA)",
    year=2022,
    url="https://psa.gov.ph/content/registered-live-births-philippines-2020",
    status="verified",
    note="1,528,684 registered live births in 2020, a crude birth rate of 14.1 per 1,000 "
    "population (not adjusted for under-registration).",
)

#: Crude birth rate, live births per person per year, 2020 (PSA 2022-36). Verified.
PH_CRUDE_BIRTH_RATE = 14.1 / 1000

#: Women aged 15-49 in 2020: 27.8 million (POPCOM citing PSA, secondary), i.e. a share of
#: 27.8 M / 109.0 M = 25.5% of the population.
PH_WOMEN_15_49 = 27_800_000
PH_SHARE_WOMEN_15_49 = PH_WOMEN_15_49 / PH_TOTAL_POPULATION_2020

#: Length of a pregnancy ending in a live birth, in years: about 39 weeks = 0.75 year.
GESTATION_YEARS = 0.75

#: Probability that a woman aged 15-49 is pregnant on a given day. Derivation: in a
#: steady state the number of women pregnant on a given day = births per year x years a
#: pregnancy lasts = CBR x population x 0.75. Dividing by the number of women 15-49
#: (share x population) gives CBR x 0.75 / share = 0.0141 x 0.75 / 0.255 = 0.0415, i.e.
#: about 4.1%. It slightly understates the truth: it ignores pregnancies that do not end
#: in a live birth and births that were never registered, and it spreads pregnancies
#: evenly over ages 15-49 (fertility actually peaks at 25-34).
PH_PREGNANCY_PROBABILITY = PH_CRUDE_BIRTH_RATE * GESTATION_YEARS / PH_SHARE_WOMEN_15_49

SRC_PH_POPCEN2015_REGIONS = Source(
    title="Table 1. Household Population, Number of Households, and Average Household Size "
    "by Region: Philippines, 2015 (2015 Census of Population)",
    publisher="Philippine Statistics Authority (PSA)",
    year=2016,
    url="https://www.scribd.com/document/516795691/Table-1-5 (copy of the PSA table); "
    "highlights: http://psa.gov.ph/content/highlights-household-population-number-"
    "households-and-average-household-size-philippines",
    status="secondary",
    note="Read in a copy of the PSA table; its total (22,975,630 households) and the NCR, "
    "CALABARZON, Central Luzon and CAR figures match PSA's own highlights. 2015 is used "
    "because we could not read the 2020 table by region.",
)

#: Households by region, 2015 census (secondary, see SRC_PH_POPCEN2015_REGIONS), keyed by
#: the ISO 3166-2 region codes that pycountry uses. Used only to weight where households
#: live. In 2015 the Negros Island Region (NIR: Negros Occidental and Negros Oriental)
#: stood apart; pycountry puts those provinces in regions VI and VII, so the NIR count
#: goes to them directly (PH_AREA_HOUSEHOLDS_OVERRIDES).
PH_REGION_HOUSEHOLDS_2015 = {
    "PH-00": 3_095_766,  # National Capital Region
    "PH-15": 395_881,  # Cordillera Administrative Region
    "PH-01": 1_151_629,  # I - Ilocos
    "PH-02": 804_524,  # II - Cagayan Valley
    "PH-03": 2_566_558,  # III - Central Luzon
    "PH-40": 3_395_383,  # IV-A - CALABARZON
    "PH-41": 682_668,  # MIMAROPA
    "PH-05": 1_216_421,  # V - Bicol
    "PH-06": 1_014_987,  # VI - Western Visayas (without Negros Occidental in 2015)
    "PH-07": 1_388_475,  # VII - Central Visayas (without Negros Oriental in 2015)
    "PH-08": 986_003,  # VIII - Eastern Visayas
    "PH-09": 799_219,  # IX - Zamboanga Peninsula
    "PH-10": 1_042_929,  # X - Northern Mindanao
    "PH-11": 1_177_461,  # XI - Davao
    "PH-12": 1_050_680,  # XII - SOCCSKSARGEN
    "PH-13": 574_338,  # XIII - Caraga
    "PH-14": 620_385,  # ARMM
}
PH_NIR_HOUSEHOLDS_2015 = 1_012_323

#: Households of single areas (leaf subdivisions) given directly instead of an equal part
#: of their region. The 70/30 split of the NIR between Negros Occidental and Negros
#: Oriental is an ASSUMPTION (roughly their population ratio, not checked).
PH_AREA_HOUSEHOLDS_OVERRIDES = {
    "PH-NEC": round(PH_NIR_HOUSEHOLDS_2015 * 0.7),
    "PH-NER": round(PH_NIR_HOUSEHOLDS_2015 * 0.3),
}

#: Share of persons aged 15+ with a mobile number on record. ASSUMPTION (no figure
#: checked): registries rarely have a number for everyone.
PH_PHONE_SHARE_15PLUS = 0.7


# ---------------------------------------------------------------------------------------
# Per-country bundle
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountryFigures:
    country: str
    average_household_size: float
    household_size_model: str
    broad_age_shares: tuple
    age_shape_within_broad_groups: dict
    sex_ratio_by_age: tuple
    female_head_share: float
    disability_prevalence_15plus: dict
    disability_prevalence_under_15: float
    pregnancy_probability: float
    phone_share_15plus: float
    region_households: dict = field(default_factory=dict)
    area_households_overrides: dict = field(default_factory=dict)
    sources: tuple = ()

    def age_group_shares(self):
        """5-year groups ``(low, high, share)`` whose shares add up to 1."""
        groups = []
        for low, high, share in self.broad_age_shares:
            shape = self.age_shape_within_broad_groups[(low, high)]
            total = sum(weight for _, _, weight in shape)
            groups.extend((lo, hi, share * weight / total) for lo, hi, weight in shape)
        norm = sum(share for _, _, share in groups)
        return [(lo, hi, share / norm) for lo, hi, share in groups]

    def single_year_age_shares(self, max_age=99):
        """Share of the population at each age 0..max_age (uniform within a 5-year group)."""
        shares = [0.0] * (max_age + 1)
        for low, high, share in self.age_group_shares():
            high = min(high, max_age)
            width = high - low + 1
            for age in range(low, high + 1):
                shares[age] += share / width
        return shares

    def male_share(self, age):
        for low, high, ratio in self.sex_ratio_by_age:
            if low <= age <= high:
                return ratio / (100.0 + ratio)
        return self.sex_ratio_by_age[-1][2] / (100.0 + self.sex_ratio_by_age[-1][2])


FIGURES = {
    "PH": CountryFigures(
        country="PH",
        average_household_size=PH_AVERAGE_HOUSEHOLD_SIZE,
        household_size_model=PH_HOUSEHOLD_SIZE_MODEL,
        broad_age_shares=PH_BROAD_AGE_SHARES,
        age_shape_within_broad_groups=PH_AGE_SHAPE_WITHIN_BROAD_GROUPS,
        sex_ratio_by_age=PH_SEX_RATIO_BY_AGE,
        female_head_share=PH_FEMALE_HEAD_SHARE,
        disability_prevalence_15plus=PH_DISABILITY_PREVALENCE_15PLUS,
        disability_prevalence_under_15=PH_DISABILITY_PREVALENCE_UNDER_15,
        pregnancy_probability=PH_PREGNANCY_PROBABILITY,
        phone_share_15plus=PH_PHONE_SHARE_15PLUS,
        region_households=PH_REGION_HOUSEHOLDS_2015,
        area_households_overrides=PH_AREA_HOUSEHOLDS_OVERRIDES,
        sources=(
            SRC_PH_CPH2020_HOUSEHOLDS,
            SRC_PH_HOUSEHOLD_SIZE_DISTRIBUTION,
            SRC_PH_CPH2020_AGE_SEX,
            SRC_PH_POPCOM_2022,
            SRC_PH_FIES2009_FEMALE_HEAD,
            SRC_PH_NDPS2016,
            SRC_PH_CPH2010_DISABILITY,
            SRC_PH_BIRTHS2020,
            SRC_PH_POPCEN2015_REGIONS,
        ),
    ),
}


def get_figures(country):
    """The figures for an ISO 3166-1 alpha-2 country code; ValueError when there are none."""
    code = (country or "").upper()
    if code not in FIGURES:
        raise ValueError(
            f"No published figures for country {country!r}: add a CountryFigures for it in "
            f"setup/demo_data/figures.py (available: {', '.join(sorted(FIGURES))})."
        )
    return FIGURES[code]
