"""Building blocks for the reliability tests: an in-kind distribution set up over
XML-RPC the way setup/demo.py does it (a warehouse with stock, service points with an
agent and a device API key each, users of each role, a program with an in-kind manager,
a cycle run through preparation and approval), and the checks that every test repeats
(the ledger of each entitlement, the stock invariants of
spp_entitlement_in_kind/readme/DESCRIPTION.md).

Everything is created with a unique tag, in its own warehouse and with its own
products, so that several worlds live in one database without touching each other's
figures.
"""

import math
import threading
import time
import uuid
from collections import defaultdict
from datetime import date, timedelta

import psycopg2
from g2p_client import Client

PASSWORD = "reliability-pass"
ROLE_GROUPS = {
    "officer": "g2p_programs_ext.group_program_officer",
    "approver": "g2p_programs_ext.group_cycle_approver",
    "validator": "g2p_programs_ext.group_program_validator",
    "validator2": "g2p_programs_ext.group_program_validator",
}
ROUNDING = 0.005  # half of the kg's rounding (0.01): two figures this close are equal


class World:
    """An in-kind distribution made over XML-RPC as admin, then run by role users.

    ``items``: [(label, quantity per household in kg)]; ``points``: number of service
    points (households are spread over them in turn); ``stock_factor``: initial on-hand
    of each product as a multiple of what all households would get.
    """

    def __init__(
        self,
        url,
        db,
        households,
        items=(("Rice", 10.0), ("Beans", 2.5)),
        points=1,
        stock_factor=1.2,
        start_date=None,
    ):
        self.url, self.db = url, db
        self.tag = uuid.uuid4().hex[:6].upper()
        self.admin = Client(url, db, "admin", "admin")
        admin = self.admin
        kg = admin.ref("uom.product_uom_kgm")
        company = admin.call("res.users", "read", [admin.uid], ["company_id"])[0]["company_id"][0]
        self.warehouse_id = admin.call(
            "stock.warehouse",
            "create",
            {"name": f"Warehouse {self.tag}", "code": "W" + self.tag[:4], "company_id": company},
        )
        self.location_id = admin.call("stock.warehouse", "read", [self.warehouse_id], ["lot_stock_id"])[0][
            "lot_stock_id"
        ][0]
        self.products = []  # [(product id, kg per household)]
        for label, quantity in items:
            pid = admin.call(
                "product.product",
                "create",
                {
                    "name": f"{label} {self.tag}",
                    "detailed_type": "product",
                    "uom_id": kg,
                    "uom_po_id": kg,
                    "standard_price": 1.0,
                },
            )
            self.products.append((pid, quantity))

        # service points, each with an agent and a device key
        agent_group = admin.ref("spp_service_points.group_service_point_agent")
        self.points = []  # [{"id", "agent_id", "login", "key"}]
        for n in range(points):
            sp = admin.call(
                "spp.service.point",
                "create",
                {
                    "name": f"Point {self.tag}-{n}",
                    "code": f"R{self.tag}-{n}",
                    "warehouse_id": self.warehouse_id,
                },
            )
            login = f"agent_{self.tag.lower()}_{n}"
            agent_id = admin.call(
                "res.users",
                "create",
                {
                    "name": f"Agent {self.tag}-{n}",
                    "login": login,
                    "groups_id": [(6, 0, [agent_group])],
                    "service_point_ids": [(6, 0, [sp])],
                },
            )
            key = admin.call(
                "res.users", "action_generate_api_key_for_device", [agent_id], f"Tablet {self.tag}-{n}"
            )
            self.points.append({"id": sp, "agent_id": agent_id, "login": login, "key": key})

        # households, spread over the points
        vals = [
            {
                "name": f"Household {self.tag} {i:05d}",
                "ref": self.tag,
                "is_registrant": True,
                "is_group": True,
                "service_point_id": self.points[i % points]["id"],
            }
            for i in range(households)
        ]
        self.household_ids = admin.call("res.partner", "create", vals)

        # initial stock, by inventory adjustment
        quants = [
            admin.call(
                "stock.quant",
                "create",
                {
                    "product_id": pid,
                    "location_id": self.location_id,
                    "inventory_quantity": math.ceil(quantity * households * stock_factor),
                },
                context={"inventory_mode": True},
            )
            for pid, quantity in self.products
        ]
        admin.call_void("stock.quant", "action_apply_inventory", quants, context={"inventory_mode": True})
        self.initial = self.stock()

        # role users
        self.users = {}
        for role, group in ROLE_GROUPS.items():
            login = f"{role}_{self.tag.lower()}"
            admin.call(
                "res.users",
                "create",
                {
                    "name": f"{role.title()} {self.tag}",
                    "login": login,
                    "password": PASSWORD,
                    "groups_id": [(6, 0, [admin.ref(group)])],
                },
            )
            self.users[role] = login
        validators = admin.call(
            "res.users", "search", [("login", "in", [self.users["validator"], self.users["validator2"]])]
        )
        validation_group = admin.call(
            "res.groups", "create", {"name": f"Validators {self.tag}", "users": [(6, 0, validators)]}
        )

        # the program and its in-kind manager
        self.program_id = admin.call(
            "g2p.program",
            "create",
            {
                "name": f"Reliability {self.tag}",
                "target_type": "group",
                "eligibility_domain": f"[('ref', '=', '{self.tag}')]",
                "cycle_duration": 30,
                # the first cycle runs until today by default: it can be closed tomorrow
                "start_date": (start_date or date.today() - timedelta(days=29)).isoformat(),
            },
        )
        admin.call(
            "g2p.program.entitlement.manager.inkind",
            "create",
            {
                "program_id": self.program_id,
                "name": f"Ration {self.tag}",
                "validation_group_id": validation_group,
                "manage_inventory": True,
                "warehouse_id": self.warehouse_id,
                "item_ids": [
                    (0, 0, {"product_id": pid, "quantity": q, "uom_id": kg}) for pid, q in self.products
                ],
            },
        )
        self._clients = {}

    # ------------------------------------------------------------------
    # Users
    # ------------------------------------------------------------------
    def as_role(self, role):
        """The XML-RPC session of the world's user of ``role`` (officer, approver,
        validator, validator2), authenticated once."""
        if role not in self._clients:
            self._clients[role] = Client(self.url, self.db, self.users[role], PASSWORD)
        return self._clients[role]

    def device(self, point_index=0):
        """A device at service point ``point_index``: an XML-RPC client calling the
        redemption API as the point's agent with the device key. Returns call(method, *args)."""
        point = self.points[point_index]
        device = Client(self.url, self.db, point["login"], point["key"], uid=point["agent_id"])

        def call(method, *args):
            return device.call("spp.entitlement.transaction", method, *args)

        return call

    # ------------------------------------------------------------------
    # The cycle
    # ------------------------------------------------------------------
    def new_cycle(self):
        """Enroll, create the next cycle. :return: cycle id (draft)."""
        officer = self.as_role("officer")
        officer.call("g2p.program", "enroll_eligible_registrants", [self.program_id])
        officer.wait_unlocked("g2p.program", self.program_id, timeout=300)
        cycle = officer.call("g2p.program", "create_new_cycle", [self.program_id])
        officer.wait_unlocked("g2p.cycle", cycle, timeout=300)
        return cycle

    def approved_cycle(self, validate=True):
        """A cycle prepared, submitted, approved and (``validate``) its entitlements
        approved, stock reserved. :return: cycle id."""
        cycle = self.new_cycle()
        officer = self.as_role("officer")
        officer.call("g2p.cycle", "prepare_entitlement", [cycle])
        officer.wait_unlocked("g2p.cycle", cycle, timeout=300)
        officer.call("g2p.cycle", "to_approve", [cycle])
        officer.wait_unlocked("g2p.cycle", cycle, timeout=300)  # above the threshold: jobs
        self.as_role("approver").call("g2p.cycle", "approve", [cycle])
        if validate:
            validator = self.as_role("validator")
            validator.call("g2p.cycle", "validate_entitlement", [cycle])
            validator.wait_unlocked("g2p.cycle", cycle, timeout=300)  # above the threshold: jobs
        return cycle

    def entitlements(self, cycle):
        """The cycle's in-kind entitlements, ordered by beneficiary then product."""
        rows = self.admin.call(
            "g2p.entitlement.inkind",
            "search_read",
            [("cycle_id", "=", cycle)],
            fields=[
                "code",
                "partner_id",
                "product_id",
                "quantity",
                "quantity_redeemed",
                "quantity_balance",
                "state",
                "service_point_id",
                "date_approved",
            ],
            order="partner_id, product_id, id",
        )
        return rows

    # ------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------
    def transactions(self, cycle):
        return self.admin.call(
            "spp.entitlement.transaction",
            "search_read",
            [("inkind_entitlement_id.cycle_id", "=", cycle)],
            fields=[
                "inkind_entitlement_id",
                "transaction_type",
                "net_quantity",
                "reference",
                "service_point_id",
            ],
        )

    def check_ledger(self, cycle):
        """Per entitlement of ``cycle``: Σ net quantities of its transactions = quantity
        redeemed, never above its quantity, and its state agrees with its balance.
        :return: (entitlements, transactions), after asserting."""
        rows = self.entitlements(cycle)
        txs = self.transactions(cycle)
        net = defaultdict(float)
        for tx in txs:
            net[tx["inkind_entitlement_id"][0]] += tx["net_quantity"]
        for row in rows:
            where = f"entitlement {row['code']} (id {row['id']})"
            assert abs(net[row["id"]] - row["quantity_redeemed"]) < ROUNDING, (where, net[row["id"]], row)
            assert row["quantity_redeemed"] <= row["quantity"] + ROUNDING, ("over-redeemed", where, row)
            if row["state"] == "redeemed":
                assert abs(row["quantity_redeemed"] - row["quantity"]) < ROUNDING, (where, row)
            if row["state"] == "approved":
                assert row["quantity_balance"] > ROUNDING, (where, row)
        # no reference counted twice at a point
        keys = [
            (tx["service_point_id"][0], tx["reference"])
            for tx in txs
            if tx["transaction_type"] == "redemption"
        ]
        assert len(keys) == len(set(keys)), "a reference was counted twice"
        return rows, txs

    def stock(self):
        """{product id: {"on_hand", "free", "forecast"}} in the warehouse's stock location (kg)."""
        rows = self.admin.call(
            "product.product",
            "read",
            [pid for pid, _q in self.products],
            ["qty_available", "free_qty", "virtual_available"],
            context={"location": self.location_id},
        )
        return {
            r["id"]: {
                "on_hand": r["qty_available"],
                "free": r["free_qty"],
                "forecast": r["virtual_available"],
            }
            for r in rows
        }

    def check_stock(self, cycle, posted=True):
        """The stock invariants (spp_entitlement_in_kind/readme/DESCRIPTION.md) for the
        world's (only) cycle, per product: reserved (on hand − free) and the forecast
        drop = what approved open entitlements still hold; once deliveries are posted
        (``posted``), on hand dropped by exactly what was handed out. :return: {product id: figures}."""
        rows = self.entitlements(cycle)
        stock = self.stock()
        figures = {}
        for pid, _q in self.products:
            mine = [r for r in rows if r["product_id"][0] == pid and r["date_approved"]]
            holding = sum(r["quantity_balance"] for r in mine if r["state"] in ("approved", "transferred"))
            handed_out = sum(r["quantity_redeemed"] for r in mine)
            s, s0 = stock[pid], self.initial[pid]
            figures[pid] = {"holding": holding, "handed_out": handed_out, **s}
            assert abs((s["on_hand"] - s["free"]) - holding) < ROUNDING, ("reserved", pid, figures[pid])
            assert abs((s["on_hand"] - s["forecast"]) - holding) < ROUNDING, ("forecast", pid, figures[pid])
            if posted:
                assert abs((s0["on_hand"] - s["on_hand"]) - handed_out) < ROUNDING, (
                    "on hand",
                    pid,
                    figures[pid],
                )
        return figures


def run_threads(target, count, timeout=300):
    """Run ``target(i)`` in ``count`` threads at once; assert they all ended."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.time() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.time()))
    assert not any(thread.is_alive() for thread in threads), "every client got an answer"


def backends_waiting_on_lock(test_db, query_like):
    """How many backends of ``test_db`` wait for a lock in a statement whose text
    matches ``query_like`` (an ILIKE pattern): read from ``pg_stat_activity`` on a
    connection of its own. :return: int"""
    cnx = psycopg2.connect(dbname=test_db)
    try:
        cur = cnx.cursor()
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
            "AND query ILIKE %s",
            [test_db, query_like],
        )
        return cur.fetchone()[0]
    finally:
        cnx.close()
