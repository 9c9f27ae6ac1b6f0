from . import g2p_entitlement_reject_wizard
