"""Start and stop a real Odoo server (with workers and the queue_job runner) on a
free localhost port, against a database the test command prepared."""

import os
import signal
import socket
import subprocess
import time
import xmlrpc.client
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


# The suite's addons, in dependency order (setup scripts and tests share this list).
ADDONS = [
    "g2p_programs_ext",
    "spp_service_points",
    "spp_entitlement_transactions",
    "spp_entitlement_in_kind",
    "spp_auto_update_entitlements",
]
# What a cash-only deployment installs: no stock (tests/test_cash_only.py).
CASH_ONLY_ADDONS = [a for a in ADDONS if a != "spp_entitlement_in_kind"]


def odoo_bin():
    """The command that runs this checkout's Odoo with its generated odoo.conf."""
    src = (REPO / ".odoo-src-path").read_text().strip()
    return [
        str(REPO / ".venv" / "bin" / "python"),
        os.path.join(src, "odoo-bin"),
        "-c",
        str(REPO / "odoo.conf"),
    ]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OdooServer:
    """One ``odoo-bin`` process group on ``127.0.0.1:port``, serving ``db``.

    ``db_filter``: also pass ``--db-filter ^db$`` (default False: ``--database`` alone,
    as the README's "Scaling out" recommends); ``max_cron_threads``: 1 for the one host
    that runs the scheduled actions, 0 for the others; ``load``: the server-wide modules
    (``--load``; None: odoo.conf's ``base,web,queue_job``, which starts the queue_job
    runner; ``base,web`` starts none, while ``/queue_job/runjob`` is still served
    because queue_job is installed); ``env``: extra environment variables (queue_job's
    ``ODOO_QUEUE_JOB_HOST``/``_PORT``, ...).

    Under the test command (``G2P_SERVER_LOG_DIR`` set by setup/run_tests.py) the log
    goes to that folder whatever ``log_path`` says, and the test command fails on any
    ``ERROR``/``CRITICAL`` line in it, except for servers started with
    ``expect_errors=True`` (fault tests that kill workers or PostgreSQL on purpose:
    their log ends in ``.faults.log`` and the test asserts the outcome itself)."""

    def __init__(
        self,
        db,
        workers=2,
        log_path=None,
        port=None,
        extra_args=(),
        db_filter=False,
        max_cron_threads=1,
        load=None,
        env=None,
        expect_errors=False,
    ):
        self.db = db
        # --db-filter: Odoo then lists the databases (a new connection to PostgreSQL's
        # "postgres" database) on every call without a session, such as XML-RPC; with
        # --database alone it takes that name as the list (see README, Scaling out).
        self.db_filter = db_filter
        self.workers = workers
        self.max_cron_threads = max_cron_threads
        self.load = load
        self.env = dict(env or {})
        self.extra_args = list(extra_args)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        suffix = ".faults.log" if expect_errors else ".log"
        if os.environ.get("G2P_SERVER_LOG_DIR"):
            self.log_path = Path(os.environ["G2P_SERVER_LOG_DIR"]) / f"{db}.server-{self.port}{suffix}"
        else:
            self.log_path = log_path or REPO / "var" / "test-logs" / f"{db}.server-{self.port}{suffix}"
        self.proc = None

    def command(self):
        return [
            *odoo_bin(),
            "-d",
            self.db,
            *(["--db-filter", f"^{self.db}$"] if self.db_filter else []),
            "--http-interface",
            "127.0.0.1",
            "--http-port",
            str(self.port),
            "--gevent-port",
            str(free_port()),
            f"--workers={self.workers}",
            f"--max-cron-threads={self.max_cron_threads}",
            "--no-database-list",
            *([f"--load={self.load}"] if self.load else []),
            *self.extra_args,
        ]

    def start(self, timeout=90):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
            env={**os.environ, **self.env},
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Odoo exited with {self.proc.returncode}; see {self.log_path}")
            try:
                xmlrpc.client.ServerProxy(f"{self.url}/xmlrpc/2/common").version()
                return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"Odoo did not answer on {self.url} within {timeout} s; see {self.log_path}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def proxy(self, endpoint):
        return xmlrpc.client.ServerProxy(f"{self.url}/xmlrpc/2/{endpoint}", allow_none=False)
