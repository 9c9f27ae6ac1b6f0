from . import g2p_entitlement_reject_wizard
from . import g2p_program_create_wizard
from . import g2p_registry_import_wizard
