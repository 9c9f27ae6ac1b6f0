from . import test_agent_group
from . import test_agent_users
from . import test_assign_wizard
from . import test_registrant_access
from . import test_service_point
from . import test_service_point_access
from . import test_views
from . import test_entitlement_service_point
