from odoo import api, models


class G2PRegistryImport(models.TransientModel):
    _inherit = "g2p.registry.import"

    @api.model
    def _registry_import_fields(self):
        """Households and individuals may name their area (``area_id/id``, an existing
        ``spp.area``; an unknown one is a bad line)."""
        result = super()._registry_import_fields()
        for names in result.values():
            names.append("area_id")
        return result
