from . import (
    g2p_cycle,
    g2p_cycle_membership,
    g2p_group_membership,
    g2p_program,
    g2p_program_membership,
    queue_job,
    res_partner,
)
