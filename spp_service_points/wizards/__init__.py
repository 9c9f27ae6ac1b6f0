from . import spp_assign_service_point_wizard
from . import spp_service_point_agent_wizard
from . import g2p_registry_import_wizard
