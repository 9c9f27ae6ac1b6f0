"""Real-input generator for the demo: a seeded, realistic registry (households and their
members) for a country with published figures (the Philippines by default), written as
CSV files for Odoo's standard import, and the in-kind basket (a WFP ration) as plain data.

    from demo_data import generate, write_csv            # with setup/ on sys.path
    registry = generate(2000, seed=42, country="PH")
    paths = write_csv(registry, "var/demo-input")

See README.md beside this file for the figures and their sources.
"""

from .goods import HOUSEHOLD_SIZE_CAP, RATION, basket_per_person, household_basket, quantity_per_person
from .registry import Registry, generate, write_csv

__all__ = [
    "HOUSEHOLD_SIZE_CAP",
    "RATION",
    "Registry",
    "basket_per_person",
    "generate",
    "household_basket",
    "quantity_per_person",
    "write_csv",
]
