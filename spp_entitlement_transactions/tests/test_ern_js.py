import json
import random

from odoo.addons.g2p_programs_ext import ern
from odoo.tests import HttpCase, tagged

MODULE = "@spp_entitlement_transactions/js/ern"


@tagged("post_install", "-at_install")
class TestErnJs(HttpCase):
    """The handout screen checks codes as they are typed with static/src/js/ern.js: it
    must agree with g2p_programs_ext/ern.py on every vector (valid codes, each with
    every single substitution and every adjacent swap, legacy MOD 37-2 codes, junk)."""

    def vectors(self):
        rng = random.Random(20)
        codes = [ern.generate() for _i in range(40)]
        vectors = set(codes)
        for code in codes[:8]:
            for pos in range(len(code)):
                for char in ern.ISO7064_CHARSET:
                    vectors.add(code[:pos] + char + code[pos + 1 :])
                if pos < len(code) - 1:
                    vectors.add(code[:pos] + code[pos + 1] + code[pos] + code[pos + 2 :])
        for _i in range(40):
            body = "".join(rng.choice(ern.ISO7064_CHARSET[:-1]) for _j in range(ern.BODY_LENGTH))
            vectors.add(body + ern.legacy_check_character(body))
        vectors |= {"", "7KQ2-MX4C-*", "7kq2 mx4p r", "ABC", "7KQ2MX4PRR"}
        return [[v, ern.is_valid(v), ern.is_legacy_valid(v), ern.display(v)] for v in sorted(vectors)]

    def test_js_and_python_agree(self):
        vectors = self.vectors()
        self.assertGreater(len(vectors), 2500)
        self.assertTrue(any(v[1] for v in vectors) and any(v[2] and not v[1] for v in vectors))
        code = """
            const ern = odoo.loader.modules.get("%s");
            const vectors = %s;
            const wrong = vectors.filter(([code, valid, legacy, shown]) =>
                ern.isValid(code) !== valid || ern.isLegacyValid(code) !== legacy || ern.display(code) !== shown);
            if (wrong.length) {
                console.error("ern.js disagrees with ern.py on " + JSON.stringify(wrong.slice(0, 5)));
            } else {
                console.log("test successful");
            }
        """ % (MODULE, json.dumps(vectors))
        # Odoo's ready check waits for exactly `true`: the module object itself never is
        self.browser_js("/web", code, ready="!!odoo.loader.modules.get('%s')" % MODULE, login="admin")
