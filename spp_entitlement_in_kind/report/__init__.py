from . import g2p_voucher_report
