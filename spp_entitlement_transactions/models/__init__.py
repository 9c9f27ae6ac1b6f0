from . import spp_entitlement_transaction
from . import spp_entitlement_transaction_api
from . import g2p_entitlement_base
from . import g2p_entitlement
from . import spp_service_point
from . import g2p_cycle
