from . import g2p_cycle
from . import g2p_entitlement
