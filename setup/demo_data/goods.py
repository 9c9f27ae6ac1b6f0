"""The in-kind basket of the demo: a WFP general food distribution ration, per person.

Sources (grams per person per day):

* WFP, "The WFP food basket" (World Food Programme, web page, www.wfp.org/nutrition/
  wfp-foodbasket, read in an archived copy while writing this; status: verified). For
  people totally dependent on food aid it gives an example daily ration of 2,100 kcal
  (protein 58 g, fat 43 g): 400 g cereal flour/rice/bulgur, 60 g pulses, 25 g oil
  (vitamin A fortified), 50 g fortified blended food (Corn Soya Blend), 15 g sugar and
  5 g iodized salt.
* UNHCR, UNICEF, WFP and WHO, "Food and Nutrition Needs in Emergencies" (Geneva, 2002;
  read in the WHO Humanity Development Library copy at http://www.nzdl.org, "Food and
  Nutrition Needs in Emergencies (WHO - OMS, 55 p.)"; the official WHO address was not
  checked), and the WFP/UNHCR "Guidelines for Estimating Food and Nutritional Needs in
  Emergencies" (1997) it builds on: 2,100 kcal per person per day as the planning figure
  for a general ration, at least 10-12% of the energy from protein and at least 17% from
  fat (verified in the 1997 guidelines' copy). We could not read the 2002 document's table
  of example rations, so the grams come from the WFP page above; they lie within the
  commonly quoted ranges of 400-450 g cereal, 50-60 g pulses, 25-30 g oil and 40-60 g
  blended food (those ranges themselves were not checked).

Choices made here (not from the sources):

* The cereal is rice, the staple in the Philippines; the pulses are mung beans (monggo).
* Fortified blended food (Super Cereal) goes only to households with a pregnant member or
  a child under 5 (the WFP page gives blended food in "supplementary rations" to vulnerable
  groups such as small children; a household-level condition is simpler to configure, and
  the quantity is still per household member).
* Oil is handed out by volume, in litres, at 0.92 kg per litre (typical density of
  vegetable oil at room temperature, 0.91-0.93; a physical property, not a WFP figure).
* One cycle covers 30 days; quantities are rounded to 0.01, the default rounding of
  Odoo's ``kg`` and ``L`` units, half up as Odoo rounds.
* Households are counted up to 8 persons (:data:`HOUSEHOLD_SIZE_CAP`): a program design
  choice for the demo, not a WFP norm.
"""

from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal

#: Days one distribution cycle covers.
CYCLE_DAYS = 30

#: Rounding of Odoo's ``kg`` and ``L`` units of measure (``uom.uom.rounding`` default).
UOM_ROUNDING = 0.01

#: Households are counted up to this many persons (``max_multiplier`` of the items).
HOUSEHOLD_SIZE_CAP = 8

#: Vegetable oil, kg per litre.
OIL_DENSITY_KG_PER_L = 0.92

#: WFP's example ration, kcal per person per day, when all items are given.
RATION_KCAL_PER_DAY = 2100


@dataclass(frozen=True)
class RationItem:
    product_name: str
    default_code: str
    uom_name: str  # "kg" or "L"
    grams_per_person_per_day: float
    vulnerable_only: bool  # only households with a pregnant member or a child under 5
    source: str
    kg_per_litre: float = 1.0  # for items handed out by volume


_WFP = "WFP, The WFP food basket (example 2,100 kcal daily ration)"

#: The ration, per person per day.
RATION = (
    RationItem("Rice (milled)", "GFD-RICE", "kg", 400, False, _WFP + ": 400 g cereal"),
    RationItem("Mung beans (monggo)", "GFD-PULSE", "kg", 60, False, _WFP + ": 60 g pulses"),
    RationItem(
        "Vegetable oil, vitamin A fortified",
        "GFD-OIL",
        "L",
        25,
        False,
        _WFP + ": 25 g oil",
        OIL_DENSITY_KG_PER_L,
    ),
    RationItem("Sugar", "GFD-SUGAR", "kg", 15, False, _WFP + ": 15 g sugar"),
    RationItem("Iodized salt", "GFD-SALT", "kg", 5, False, _WFP + ": 5 g iodized salt"),
    RationItem(
        "Super Cereal (fortified blended food)",
        "GFD-SCEREAL",
        "kg",
        50,
        True,
        _WFP + ": 50 g fortified blended food (Corn Soya Blend)",
    ),
)


def round_to_uom(quantity, rounding=UOM_ROUNDING):
    """Round half up to a multiple of ``rounding``, as Odoo's ``float_round`` does."""
    step = Decimal(str(rounding))
    units = (Decimal(repr(float(quantity))) / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return float(units * step)


def quantity_per_person(item, days=CYCLE_DAYS):
    """Quantity of ``item`` for one person for ``days`` days, in the item's unit, rounded."""
    kilograms = item.grams_per_person_per_day * days / 1000.0
    return round_to_uom(kilograms / item.kg_per_litre)


def basket_per_person(days=CYCLE_DAYS):
    """The basket as plain data: one dict per product, quantities per person per ``days``."""
    rows = []
    for item in RATION:
        row = asdict(item)
        row["days"] = days
        row["quantity_per_person"] = quantity_per_person(item, days)
        row["max_household_size"] = HOUSEHOLD_SIZE_CAP
        rows.append(row)
    return rows


def household_basket(household_size, vulnerable=False, days=CYCLE_DAYS, cap=HOUSEHOLD_SIZE_CAP):
    """What one household receives per cycle: ``{default_code: quantity}``.

    ``vulnerable``: the household has a pregnant member or a child under 5. Persons beyond
    ``cap`` are not counted (0 = no cap). As the entitlement managers compute it: the
    item's quantity (the rounded per-person figure) times the persons counted, rounded to
    the unit's rounding.
    """
    persons = max(0, int(household_size))
    if cap:
        persons = min(persons, cap)
    basket = {}
    for item in RATION:
        if item.vulnerable_only and not vulnerable:
            continue
        basket[item.default_code] = round_to_uom(quantity_per_person(item, days) * persons)
    return basket
