from . import test_install
from . import test_generation
from . import test_stock
from . import test_invariants
from . import test_program_wizard
from . import test_voucher
from . import test_tour
from . import test_workflow
