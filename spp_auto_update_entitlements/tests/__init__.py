from . import test_install
from . import test_close_cycles
from . import test_end_cycle
