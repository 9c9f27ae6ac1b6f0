from . import spp_area
from . import spp_service_point
from . import res_partner
from . import res_users
from . import g2p_entitlement
