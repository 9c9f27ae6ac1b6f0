"""The scripts' XML-RPC client (setup/g2p_client.py), the parts that need no server:
fault parsing, one connection per thread, the percentile. Its calls to a server are
exercised by every XML-RPC test (test_server.py, test_xmlrpc_*.py, test_access_xmlrpc.py).

Run alone with: .venv/bin/python -m pytest -p no:odoo -p no:cacheprovider -q tests/test_g2p_client.py
"""

import os
import sys
import threading
import xmlrpc.client
from pathlib import Path

SETUP_DIR = str(Path(__file__).resolve().parent.parent / "setup")
if SETUP_DIR not in sys.path:
    sys.path.insert(0, SETUP_DIR)

from g2p_client import Client, Refusal, percentile  # noqa: E402

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/opt/odoo/odoo/http.py", line 1, in dispatch\n'
    "    result = ...\n"
    "KeyError: 'x'\n"
)


def test_a_business_refusal_gives_its_bracketed_code():
    refusal = Refusal(2, "[over_balance] Entitlement ERN-1 has 10.00 left; 12.00 asked.")
    assert isinstance(refusal, xmlrpc.client.Fault)
    assert (refusal.faultCode, refusal.error_code) == (2, "over_balance")
    assert refusal.message == "[over_balance] Entitlement ERN-1 has 10.00 left; 12.00 asked."


def test_a_refusal_without_a_code_has_none():
    refusal = Refusal(4, "You are not allowed to access 'Program' (g2p.program) records.")
    assert refusal.error_code is None
    assert refusal.message.startswith("You are not allowed")


def test_a_defect_gives_the_tracebacks_last_line():
    refusal = Refusal(1, TRACEBACK)
    assert refusal.message == "KeyError: 'x'" and refusal.error_code is None
    coded = Refusal(1, TRACEBACK.replace("KeyError: 'x'", "ValueError: [bad_time] not ISO 8601"))
    assert coded.error_code == "bad_time"


def test_each_thread_has_its_own_connection_and_keeps_it():
    client = Client("http://127.0.0.1:9", "db", "agent", "key", uid=7)  # uid given: no login
    other = Client("http://127.0.0.1:9", "db", "agent2", "key2", uid=8)
    mine = client.models
    assert client.models is mine and other.models is mine  # one per thread and URL
    seen = []
    thread = threading.Thread(target=lambda: seen.append(client.models))
    thread.start()
    thread.join()
    assert seen and seen[0] is not mine


def test_a_forked_process_does_not_reuse_the_parents_connection():
    client = Client("http://127.0.0.1:9", "db", "agent", "key", uid=7)
    parent = client.models
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answers whether it got a connection of its own
        os.write(write, b"own" if client.models is not parent else b"shared")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 10)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"own"
    assert client.models is parent


def test_percentile_is_the_nearest_rank():
    values = [0.05, 0.01, 0.04, 0.02, 0.03]
    assert percentile(values, 0.5) == 0.03
    assert percentile(values, 0.95) == 0.05
    assert percentile(values, 0.2) == 0.01
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile([], 0.95) == 0.0
