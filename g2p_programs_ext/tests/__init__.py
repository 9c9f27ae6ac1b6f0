from . import test_programs, test_registry, test_roles
