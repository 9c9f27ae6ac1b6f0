import base64
import json
import logging
import os
import shutil
import threading
import time
import urllib.parse
from unittest.mock import patch

from odoo import api
from odoo.addons.g2p_programs_ext import ern
from odoo.tests import HttpCase, common, tagged

from .common import InkindRedemptionCase

_logger = logging.getLogger(__name__)

PHONE = (360, 740)
HANDOUT = "/web#action=spp_entitlement_transactions.spp_handout_action"


class PhoneBrowser(common.ChromeBrowser):
    """Odoo's test Chromium as a phone (360 x 740 CSS pixels, mobile, touch: Chrome's
    window size alone gave a desktop-wide viewport here), remembered so that a test can
    drive it over the DevTools protocol while a tour runs (cut the network, take a
    screenshot)."""

    instances = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._websocket_request(
            "Emulation.setDeviceMetricsOverride",
            params={"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 2, "mobile": True},
        )
        self._websocket_request("Emulation.setTouchEmulationEnabled", params={"enabled": True})
        PhoneBrowser.instances.append(self)


@tagged("post_install", "-at_install")
class TestHandoutTour(HttpCase, InkindRedemptionCase):
    """The handout screen in headless Chromium at a phone's size, as agent A (one
    service point: Point A). House A1 has 100.00 cash and 10 kg of rice at Point A; its
    head has ID number PH-1234-5678, Ben A1 is its alternate collector."""

    browser_size = "360x740"
    touch_enabled = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        head = cls.env.ref("g2p_programs_ext.membership_kind_head")
        alternate = cls.env.ref("g2p_programs_ext.membership_kind_alternate_collector")
        cls.ind_a1.id_number = "PH-1234-5678"
        cls.house_a1.group_membership_ids.filtered(lambda m: m.individual_id == cls.ind_a1).kind_ids = head
        cls.ben = cls.env["res.partner"].create({"name": "Ben A1", "is_registrant": True})
        cls.env["g2p.group.membership"].create(
            {"group_id": cls.house_a1.id, "individual_id": cls.ben.id, "kind_ids": [(6, 0, alternate.ids)]}
        )

    def setUp(self):
        super().setUp()
        self.assertTrue(
            shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome"),
            "Chromium is needed for the browser tour (setup/setup.sh installs Debian's chromium)",
        )

    def tour_cookie(self):
        rice = self.ink_a1.code
        body = ern.normalize(rice)
        pos = next(i for i in range(len(body) - 1) if body[i] != body[i + 1])
        swapped = ern.display(body[:pos] + body[pos + 1] + body[pos] + body[pos + 2 :])
        self.assertFalse(ern.is_valid(swapped))
        data = {"rice": rice, "swapped": swapped, "cash_a1": self.ent_a1.code, "cash_a2": self.ent_a2.code}
        return {"spp_tour": urllib.parse.quote(json.dumps(data))}

    def test_agent_lands_on_the_handout_screen(self):
        action = self.env.ref("spp_entitlement_transactions.spp_handout_action")
        self.assertEqual(self.agent_a.action_id.id, action.id, "an agent's home action is the handout screen")
        self.assertFalse(self.officer.action_id, "back-office users keep theirs")

    def test_handout_tour(self):
        with patch.object(common, "ChromeBrowser", PhoneBrowser):
            self.start_tour(HANDOUT, "spp_handout_tour", login=self.agent_a.login, cookies=self.tour_cookie())
        self.env.invalidate_all()
        Transaction = self.env["spp.entitlement.transaction"].sudo()
        redemptions = Transaction.search([("transaction_type", "=", "redemption")])
        self.assertEqual(len(redemptions), 2, "the double tap and the retry added nothing")
        rice = redemptions.filtered("inkind_entitlement_id")
        cash = redemptions - rice
        self.assertEqual((rice.quantity, rice.code), (4.0, self.ink_a1.code))
        self.assertEqual((cash.amount, cash.code), (30.0, self.ent_a1.code))
        self.assertEqual((self.ink_a1.quantity_balance, self.ink_a1.state), (6.0, "approved"))
        self.assertEqual(self.ent_a1.balance, 100.0, "the cash line was undone")
        reversal = Transaction.search([("transaction_type", "=", "reversal")])
        self.assertEqual((reversal.reversed_transaction_id, reversal.reason), (cash, "Wrong amount"))
        for transaction in redemptions:
            self.assertEqual(
                (transaction.collected_by, transaction.collector_name, transaction.id_checked),
                ("alternate", "Ben A1", True),
            )
            self.assertEqual(transaction.user_id, self.agent_a)
            self.assertEqual(len(transaction.reference), 36, "a device-made UUID")
        self.assertEqual(self.env["spp.entitlement.receipt"].search_count([]), 1)

    def test_network_cut(self):
        """Chromium's network is cut (DevTools Network.emulateNetworkConditions) after the
        screen loaded; meanwhile House A2's cash is redeemed at another device; two
        handouts are made offline, then the network comes back: House A1's arrive once,
        House A2's is listed as refused."""
        state = {"errors": [], "shot": None}
        stop = threading.Event()

        def elsewhere():
            # The test cursor is shared with the server's requests under its lock:
            # registry.cursor() waits for it as a request would.
            with self.registry.cursor() as cr:
                env = api.Environment(cr, self.agent_ab.id, {})
                env["spp.entitlement.transaction"].redeem(
                    self.ent_a2.code, 100, self.point_a.id, "ELSEWHERE-1"
                )

        def drive():
            try:
                while not stop.is_set():
                    browser = PhoneBrowser.instances[-1] if PhoneBrowser.instances else None
                    if browser is None or browser.ws is None:
                        time.sleep(0.2)
                        continue
                    answer = browser._websocket_request(
                        "Runtime.evaluate",
                        params={
                            "expression": "JSON.stringify([document.body.dataset.sppNetwork || '', "
                            "document.body.dataset.sppShot || ''])",
                            "returnByValue": True,
                        },
                    )
                    value = (answer or {}).get("result", {}).get("value")
                    if not isinstance(value, str):  # the page is still loading
                        time.sleep(0.2)
                        continue
                    net, shot = json.loads(value)
                    if shot == "please":
                        state["shot"] = browser._websocket_request(
                            "Page.captureScreenshot", params={"format": "png"}
                        )["data"]
                        browser._websocket_request(
                            "Runtime.evaluate",
                            params={"expression": "document.body.dataset.sppShot = 'done'"},
                        )
                    if net in ("cut-please", "restore-please"):
                        offline = net == "cut-please"
                        browser._websocket_request("Network.enable")
                        browser._websocket_request(
                            "Network.emulateNetworkConditions",
                            params={
                                "offline": offline,
                                "latency": 0,
                                "downloadThroughput": -1,
                                "uploadThroughput": -1,
                            },
                        )
                        if offline:
                            elsewhere()
                        done = "cut" if offline else "restored"
                        browser._websocket_request(
                            "Runtime.evaluate",
                            params={"expression": f"document.body.dataset.sppNetwork = '{done}'"},
                        )
                        if not offline:
                            return  # nothing more to drive
                    time.sleep(0.2)
            except Exception as error:  # reported by the test's thread
                _logger.exception("The test's browser driver failed")
                state["errors"].append(error)

        PhoneBrowser.instances = []
        driver = threading.Thread(target=drive, daemon=True)
        with patch.object(common, "ChromeBrowser", PhoneBrowser):
            driver.start()
            try:
                self.start_tour(
                    HANDOUT, "spp_handout_offline_tour", login=self.agent_a.login, cookies=self.tour_cookie()
                )
            finally:
                stop.set()
                driver.join(10)
        self.assertFalse(state["errors"], state["errors"])
        self.env.invalidate_all()
        Transaction = self.env["spp.entitlement.transaction"].sudo()

        def redemptions(entitlement):
            link = (
                "inkind_entitlement_id" if entitlement._name == "g2p.entitlement.inkind" else "entitlement_id"
            )
            return Transaction.search([(link, "=", entitlement.id), ("transaction_type", "=", "redemption")])

        self.assertEqual(redemptions(self.ink_a1).quantity, 10.0, "House A1's rice arrived once")
        self.assertEqual(redemptions(self.ent_a1).amount, 100.0, "House A1's cash arrived once")
        self.assertTrue(redemptions(self.ink_a1).device_time, "sent with the device's time")
        self.assertEqual(
            redemptions(self.ent_a2).reference, "ELSEWHERE-1", "only the redemption made elsewhere"
        )
        self.assertEqual((self.ink_a1.state, self.ent_a1.state), ("redeemed", "redeemed"))
        receipt = self.env["spp.entitlement.receipt"].search([])
        self.assertEqual(receipt.household_id, self.house_a1, "House A1's receipt was recorded on upload")
        self.assertTrue(state["shot"], "a screenshot was taken at 360 px")
        target = os.environ.get("SPP_HANDOUT_SCREENSHOT")
        if target:
            with open(target, "wb") as file:
                file.write(base64.b64decode(state["shot"]))
