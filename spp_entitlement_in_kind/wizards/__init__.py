from . import g2p_program_create_wizard
