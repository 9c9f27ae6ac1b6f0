from . import test_install
from . import test_redeem
from . import test_reverse
from . import test_batch
from . import test_access
from . import test_access_matrix
from . import test_back_office
from . import test_bad_input
