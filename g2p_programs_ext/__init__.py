from . import cel
from . import controllers
from . import ern
from . import models
from . import wizards


def uninstall_hook(env):
    """Drop the triggers that keep the household summary (g2p.household.member.facts):
    they live on res_partner, which outlives this addon, and would fail on every update
    of a partner once the summary's table is gone."""
    models.g2p_household_member_facts.drop_triggers(env.cr)
