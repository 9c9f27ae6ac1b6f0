"""The one XML-RPC client of the suite's scripts and tests (setup/demo.py,
setup/bench.py, tests/): a user's session with Odoo's external API, and the
percentile of the latencies they report.

    from g2p_client import Client, Refusal, percentile

    admin = Client("http://127.0.0.1:8069", "g2p_demo", "admin", "admin")
    admin.call("res.partner", "search_read", [("is_registrant", "=", True)], fields=["name"])
    admin("res.partner", "search_count", [])            # the same, shorter
    device = Client(url, db, "agent_1", api_key)         # an API key is a password here
    try:
        device.call("spp.entitlement.transaction", "redeem", code, 10.0, point_id, "REF-1")
    except Refusal as refusal:
        refusal.faultCode      # 2 UserError/ValidationError, 3 AccessDenied, 4 AccessError, 1 a defect
        refusal.error_code     # "over_balance": the bracketed code the refusal starts with

setup/ is not an importable package under the Odoo virtualenv (Odoo's own setup.py
shadows it): scripts and tests put setup/ itself on ``sys.path`` (tests/conftest.py
does it for the tests). Standard library only.
"""

import math
import os
import re
import threading
import time
import xmlrpc.client

__all__ = ["Client", "Refusal", "percentile", "proxy"]

# "[over_balance] Entitlement ... has 10.00 left" -> "over_balance"
_ERROR_CODE_RE = re.compile(r"\[([a-z][a-z0-9_]*)\]")


def proxy(url, endpoint):
    """A new ``ServerProxy`` on ``{url}/xmlrpc/2/{endpoint}`` (``common`` or ``object``),
    without ``allow_none`` (Odoo 17 answers with ``allow_none=False``)."""
    return xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/{endpoint}", allow_none=False)


class Refusal(xmlrpc.client.Fault):
    """An XML-RPC fault from Odoo, with its parts parsed. It is still an
    ``xmlrpc.client.Fault`` (``faultCode``, ``faultString``), so callers that catch
    ``Fault`` are unchanged.

    - ``faultCode``: Odoo's fault code: 2 ``UserError``/``ValidationError`` (a business
      refusal), 3 ``AccessDenied`` (bad login or key), 4 ``AccessError``, 1 anything else
      (a traceback: a defect, or an Odoo method returning ``None``).
    - ``message``: the refusal's text; for code 1, the traceback's last line.
    - ``error_code``: the bracketed code the message carries (``"over_balance"`` for
      ``"[over_balance] ..."``), ``None`` when there is none.
    """

    def __init__(self, fault_code, fault_string):
        super().__init__(fault_code, fault_string)
        text = (fault_string or "").strip()
        self.message = text.splitlines()[-1] if fault_code == 1 and text else text
        match = _ERROR_CODE_RE.search(self.message)
        self.error_code = match.group(1) if match else None


# One ServerProxy per process, thread and URL: a ServerProxy holds one HTTP connection
# and is not thread-safe; a process forked from this one must not share its socket.
_local = threading.local()


def _object_proxy(url):
    if getattr(_local, "pid", None) != os.getpid():
        _local.pid, _local.proxies = os.getpid(), {}
    if url not in _local.proxies:
        _local.proxies[url] = proxy(url, "object")
    return _local.proxies[url]


class Client:
    """One user's XML-RPC session: thread-safe (each thread, and each process, calls
    through its own connection), so concurrent devices can share one Client.

    :param url: the server's root URL, e.g. ``http://127.0.0.1:8069``
    :param db: the database name
    :param login: the user's login
    :param password: the user's password or one of their API keys (``res.users.apikeys``)
    :param uid: the user's id when already known: no login is made (the server checks
        the password or key on every call anyway). Otherwise the client logs in once
        (a password check costs about 0.4 s, then each worker caches it).
    :raises RuntimeError: when the login is refused
    """

    def __init__(self, url, db, login, password, uid=None):
        self.url, self.db, self.login, self.password = url, db, login, password
        self.uid = uid or proxy(url, "common").authenticate(db, login, password, {})
        if not self.uid:
            raise RuntimeError(f"{login} could not log in")

    @property
    def models(self):
        """This thread's ``ServerProxy`` on ``/xmlrpc/2/object``."""
        return _object_proxy(self.url)

    def call(self, model, method, *args, **kwargs):
        """``execute_kw(model, method, args, kwargs)`` as this user.

        :return: the method's answer, unmarshalled
        :raises Refusal: on any fault (an ``xmlrpc.client.Fault`` with the bracketed
            code parsed)
        :raises OSError, xmlrpc.client.ProtocolError: when the server cannot be reached
            or answers with an HTTP error
        """
        try:
            return self.models.execute_kw(self.db, self.uid, self.password, model, method, list(args), kwargs)
        except xmlrpc.client.Fault as fault:
            raise Refusal(fault.faultCode, fault.faultString) from None

    __call__ = call

    def outcome(self, model, method, *args, **kwargs):
        """Like :meth:`call`, never raising a fault. :return: ``(0, answer)`` or
        ``(fault code, fault string)``."""
        try:
            return 0, self.call(model, method, *args, **kwargs)
        except Refusal as refusal:
            return refusal.faultCode, refusal.faultString

    def call_void(self, model, method, *args, **kwargs):
        """For Odoo's own methods that return None: Odoo 17's XML-RPC cannot marshal it
        and answers a fault after the work is committed. :return: the answer, or True."""
        try:
            return self.call(model, method, *args, **kwargs)
        except Refusal as refusal:
            if "cannot marshal None" not in refusal.faultString:
                raise
            return True

    def ref(self, xmlid):
        """The database id of the record with external id ``xmlid`` (``module.name``)."""
        module, name = xmlid.split(".")
        rows = self.call(
            "ir.model.data", "search_read", [("module", "=", module), ("name", "=", name)], fields=["res_id"]
        )
        return rows[0]["res_id"]

    def wait_unlocked(self, model, record_id, timeout=1800):
        """Wait until the record's jobs end (its ``locked`` flag drops: programs and cycles).

        :raises RuntimeError: when still locked after ``timeout`` seconds
        """
        t0 = time.time()
        while time.time() - t0 < timeout:
            row = self.call(model, "read", [record_id], ["locked"])[0]
            if not row["locked"]:
                return
            time.sleep(0.5)
        raise RuntimeError(f"{model} {record_id} still locked after {timeout} s: see the server log")


def percentile(values, share):
    """The ``share`` (0 to 1) percentile of ``values`` by nearest rank: a value that was
    observed, not an interpolation (``statistics.quantiles`` interpolates, and needs two
    values). :return: 0.0 when ``values`` is empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
