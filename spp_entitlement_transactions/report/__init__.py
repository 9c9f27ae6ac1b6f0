from . import spp_entitlement_receipt_report
