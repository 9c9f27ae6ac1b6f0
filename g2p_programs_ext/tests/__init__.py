from . import test_roles
from . import test_registry
from . import test_programs
from . import test_entitlements
from . import test_back_office
from . import test_program_wizard
from . import test_registry_import
