"""Re-export of setup/odoo_server.py for the tests (one implementation for tests and demo)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "g2p_odoo_server", Path(__file__).resolve().parent.parent / "setup" / "odoo_server.py"
)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

OdooServer = _module.OdooServer
free_port = _module.free_port
odoo_bin = _module.odoo_bin
CASH_ONLY_ADDONS = _module.CASH_ONLY_ADDONS
