from . import test_install
from . import test_generation
from . import test_stock
from . import test_invariants
