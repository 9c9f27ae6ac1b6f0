from . import test_install
from . import test_close_cycles
