from . import g2p_entitlement_manager_inkind
from . import g2p_inkind_stock
from . import g2p_entitlement_inkind
from . import g2p_cycle
from . import g2p_program
from . import stock_move
from . import stock_picking
from . import stock_rule
