"""`setup/demo.py` stopped with SIGTERM (as `kill` or a service manager does) stops its
Odoo server and the server's workers: nothing of it keeps running."""

import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

import psutil

from tests.odoo_server import free_port

REPO = Path(__file__).resolve().parent.parent


def test_sigterm_stops_the_demo_server_and_its_workers(test_db):
    port = free_port()
    # an existing database is served as it is: the demo starts its server (2 workers) and waits
    demo = subprocess.Popen(
        [sys.executable, str(REPO / "setup" / "demo.py"), "--db", test_db, "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 180
        while True:
            assert demo.poll() is None, demo.stdout.read()
            try:
                xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/xmlrpc/2/common").version()
                break
            except OSError:
                assert time.time() < deadline, "the demo's server did not answer"
                time.sleep(0.5)
        server_pids = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] and "--http-port" in p.info["cmdline"] and str(port) in p.info["cmdline"]
        ]
        assert server_pids, "the demo started an Odoo server"
        family = set()
        for pid in server_pids:
            proc = psutil.Process(pid)
            family |= {pid} | {c.pid for c in proc.children(recursive=True)}
        assert len(family) >= 3, f"the server runs with its workers: {family}"

        os.kill(demo.pid, signal.SIGTERM)
        demo.wait(60)
        time.sleep(1)
        alive = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        assert alive == [], f"processes of the demo's server still running after SIGTERM: {alive}"
        assert demo.returncode != 0
    finally:
        if demo.poll() is None:
            demo.kill()
