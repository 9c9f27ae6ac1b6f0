from . import spp_distribution_list_wizard
