from . import test_roles
from . import test_registry
from . import test_programs
from . import test_entitlements
