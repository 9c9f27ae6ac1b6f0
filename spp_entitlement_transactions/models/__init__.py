from . import spp_entitlement_transaction
from . import g2p_entitlement_base
from . import g2p_entitlement
from . import g2p_entitlement_inkind
from . import spp_service_point
from . import g2p_cycle
