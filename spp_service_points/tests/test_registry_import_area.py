from .common import ServicePointCase

HOUSEHOLDS = "id,name,is_registrant,is_group\nt_area_hh1,Household in Alpha,True,True\nt_area_hh2,Household in South,True,True\n"
INDIVIDUALS = "id,name,id_number,area_id/id\nt_area_i1,Ana in Alpha,AREA-1,t_area_alpha\n"


class TestRegistryImportArea(ServicePointCase):
    """The registry import takes the households' and individuals' areas (``area_id/id``),
    from the households file, the individuals file or the extra households file, and
    refuses an area that does not exist."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for name, area in (("t_area_alpha", cls.alpha), ("t_area_south", cls.south)):
            cls.env["ir.model.data"].create(
                {"module": "__import__", "name": name, "model": "spp.area", "res_id": area.id}
            )
        cls.Import = cls.env["g2p.registry.import"].with_user(cls.officer)

    def test_areas_set_from_the_files(self):
        result = self.Import.import_registry(
            HOUSEHOLDS,
            INDIVIDUALS,
            "",
            "id,area_id/id\nt_area_hh1,t_area_alpha\nt_area_hh2,t_area_south\n",
        )
        self.assertTrue(result["ok"], result["errors"])
        self.assertEqual(self.env.ref("__import__.t_area_hh1").area_id, self.alpha)
        self.assertEqual(self.env.ref("__import__.t_area_hh2").area_id, self.south)
        self.assertEqual(self.env.ref("__import__.t_area_i1").area_id, self.alpha)

    def test_unknown_area_refused(self):
        result = self.Import.import_registry(
            HOUSEHOLDS,
            INDIVIDUALS.replace("t_area_alpha", "t_area_nowhere"),
            "",
            "id,area_id/id\nt_area_hh9,t_area_south\n",
        )
        self.assertFalse(result["ok"])
        self.assertEqual(
            [(e["file"], e["line"], e["code"]) for e in result["errors"]],
            [("individuals", 2, "unknown_reference"), ("household_areas", 2, "unknown_household")],
        )
        self.assertFalse(
            self.env["res.partner"].search([("name", "in", ("Household in Alpha", "Ana in Alpha"))])
        )
