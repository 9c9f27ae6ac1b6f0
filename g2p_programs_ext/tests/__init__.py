from . import test_roles
