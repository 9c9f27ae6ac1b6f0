"""Reliability under load (issue 12): 20 concurrent XML-RPC clients (threads, each with
its own connection, loopback only) for a bounded time (about 15 s; 60 s with
``G2P_LONG_TESTS=1``, i.e. ``setup/run_tests.py --long``) against a real server with 2
workers, over 1,000 in-kind entitlements (500 households x 2 products, 4 service points,
5 devices each), mixing lookups, redemptions (some above the balance), reversals and
retries of earlier requests.

Afterwards: no entitlement above its quantity, Σ transactions = quantity redeemed for
every entitlement, every redemption the clients were told succeeded is there exactly
once (and none other), and the stock invariants of
spp_entitlement_in_kind/readme/DESCRIPTION.md hold once deliveries are posted. Requests/s and p95 latency are printed (``-s``) for the README.
"""

import os
import random
import threading
import time
import xmlrpc.client
from collections import Counter, defaultdict

from g2p_client import percentile

from tests.scenario import ROUNDING, World, run_threads

LONG = os.environ.get("G2P_LONG_TESTS") == "1"
DURATION = 60 if LONG else 15
CLIENTS = 20
HOUSEHOLDS = 500  # x 2 products = 1,000 entitlements
POINTS = 4
EXPECTED_REFUSALS = ("[over_balance]", "[fully_redeemed]")


def test_20_clients_mixing_lookups_redemptions_reversals_and_retries(odoo_server, test_db):
    world = World(odoo_server.url, test_db, households=HOUSEHOLDS, points=POINTS)
    cycle = world.approved_cycle()
    rows = world.entitlements(cycle)
    assert len(rows) == HOUSEHOLDS * len(world.products)
    point_index = {p["id"]: n for n, p in enumerate(world.points)}
    codes_by_point = defaultdict(list)
    for row in rows:
        codes_by_point[point_index[row["service_point_id"][0]]].append((row["code"], row["quantity"]))

    lock = threading.Lock()
    latencies = defaultdict(list)  # operation -> seconds
    refusals = Counter()
    unexpected = []
    redeemed = {}  # (point, reference) -> (code, quantity) the client was told succeeded
    reversed_refs = set()  # (point, reference) reversed (answer received)
    stop_at = time.time() + DURATION + 5  # + the clients' first authentication

    def client(i):
        rng = random.Random(i)
        n = i % POINTS
        point_id = world.points[n]["id"]
        call = world.device(n)
        codes = codes_by_point[n]
        mine = []  # (reference, code, quantity, answer) of this client's successful redemptions
        counter = 0
        call("lookup", codes[0][0])  # the first call pays the key check (PBKDF2) once per worker
        while time.time() < stop_at:
            draw = rng.random()
            # half of the requests go to 10 entitlements of the point: clients compete for them
            code, quantity = rng.choice(codes[:10] if rng.random() < 0.5 else codes)
            if draw < 0.35:
                op, args = "lookup", (code,)
            elif draw < 0.75 or not mine:
                counter += 1
                # a quarter of the entitlement, sometimes more than is left
                qty = round(quantity * rng.choice((0.25, 0.25, 0.5, 0.6)), 2)
                op, args = "redeem", (code, qty, point_id, f"L{world.tag}-{i}-{counter}")
            elif draw < 0.85:
                ref, code, qty, _answer = rng.choice(mine)
                op, args = "reverse", (ref, point_id, "Load test: handed to the wrong person")
            else:
                ref, code, qty, answer = rng.choice(mine)
                op, args = "retry", (code, qty, point_id, ref)
            t0 = time.time()
            try:
                answer = call("redeem" if op == "retry" else op, *args)
            except xmlrpc.client.Fault as fault:
                elapsed = time.time() - t0
                with lock:
                    latencies[op].append(elapsed)
                    if (
                        fault.faultCode == 2
                        and fault.faultString.startswith(EXPECTED_REFUSALS)
                        and op == "redeem"
                    ):
                        refusals[fault.faultString.split("]")[0] + "]"] += 1
                    else:
                        unexpected.append((op, args, fault.faultCode, fault.faultString[:300]))
                continue
            except (OSError, xmlrpc.client.ProtocolError) as exc:
                with lock:
                    unexpected.append((op, args, "transport", repr(exc)[:300]))
                continue
            elapsed = time.time() - t0
            with lock:
                latencies[op].append(elapsed)
                if op == "redeem":
                    redeemed[(point_id, args[3])] = (args[0], args[1])
                    mine.append((args[3], args[0], args[1], answer))
                elif op == "reverse":
                    reversed_refs.add((point_id, args[0]))
                elif op == "retry":
                    first = next(a for r, _c, _q, a in mine if r == args[3])
                    if answer != first:
                        unexpected.append((op, args, "retry answered differently", answer, first))

    t_start = time.time()
    run_threads(client, CLIENTS, timeout=DURATION + 120)
    elapsed = time.time() - t_start
    assert unexpected == [], unexpected[:5]
    rows, redemptions, reversals, figures = check_after_load(world, cycle, redeemed, reversed_refs)

    total = sum(len(v) for v in latencies.values())
    every = [s for v in latencies.values() for s in v]
    per_op = {op: f"{len(v)} p95 {percentile(v, 0.95) * 1000:.0f} ms" for op, v in sorted(latencies.items())}
    print(
        f"\n[reliability] load: {CLIENTS} clients, {elapsed:.0f} s, {len(rows)} entitlements, "
        f"{total} requests, {total / elapsed:.1f} requests/s, p95 {percentile(every, 0.95) * 1000:.0f} ms, "
        f"p50 {percentile(every, 0.5) * 1000:.0f} ms; {per_op}; refusals {dict(refusals)}; "
        f"redemptions {len(redemptions)}, reversals {len(reversals)}, "
        f"fully redeemed {sum(1 for r in rows if r['state'] == 'redeemed')}, over-redeemed 0, "
        f"handed out (kg) {[round(f['handed_out'], 2) for f in figures.values()]}",
        flush=True,
    )
    assert latencies["redeem"] and latencies["lookup"] and latencies["retry"] and latencies["reverse"]


def check_after_load(world, cycle, redeemed, reversed_refs):
    """What must hold after the load: the server's ledger, the clients' ledger and stock.
    :return: (entitlements, redemptions by (point, reference), reversals, stock figures)."""

    # every entitlement: Σ transactions = quantity redeemed <= quantity, state agrees
    rows, txs = world.check_ledger(cycle)
    redemptions = {
        (tx["service_point_id"][0], tx["reference"]): tx
        for tx in txs
        if tx["transaction_type"] == "redemption"
    }
    assert set(redemptions) == set(redeemed), "every redemption a client was told about, and no other"
    reversals = [tx for tx in txs if tx["transaction_type"] == "reversal"]
    assert len(reversals) == len(reversed_refs), "each reversal once, however often it was sent"
    # the clients' own ledger agrees with the server's, entitlement by entitlement
    expected = defaultdict(float)
    for key, (code, qty) in redeemed.items():
        if key not in reversed_refs:
            expected[code] += qty
    for row in rows:
        assert abs(row["quantity_redeemed"] - expected[row["code"]]) < ROUNDING, row
    over = [r for r in rows if r["quantity_redeemed"] > r["quantity"] + ROUNDING]
    assert over == []

    # stock, once the handed-out quantities are posted
    world.as_role("approver").call("g2p.cycle", "action_post_deliveries", [cycle])
    figures = world.check_stock(cycle)

    return rows, redemptions, reversals, figures
