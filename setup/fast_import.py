"""Client side of the fast registry import (``g2p.registry.import``), for setup/demo.py.

The demo's CSV files are sent gzipped (base64) to the import wizard, which runs as a
queue_job job above the async threshold; its progress is polled and drawn by the caller.
A file larger than ``PART_BYTES`` is sent in parts (``g2p.registry.import.part``), each
one request well under Odoo's 128 MiB request limit and read by the import one at a time.
"""

import base64
import gzip
import time

MODEL = "g2p.registry.import"
#: Bytes of a file per part sent (before gzip): about 8 MB gzipped, 11 MB in base64.
PART_BYTES = 32 * 1024 * 1024
FILES = {  # wizard's field: key of demo_data.write_csv's paths
    "households": "groups",
    "individuals": "individuals",
    "memberships": "memberships",
    "household_areas": "household_areas",
}


def _pieces(path):
    """The file's bytes in pieces of PART_BYTES, each gzipped and in base64 (never the
    whole file in memory)."""
    with open(path, "rb") as handle:
        while piece := handle.read(PART_BYTES):
            yield base64.b64encode(gzip.compress(piece, compresslevel=5)).decode()


def fast_import(client, paths, progress=None, poll=1.0, timeout=3600):
    """Import the demo's households, individuals, memberships and households' areas.

    :param client: an XML-RPC client with ``call(model, method, *args)`` (a registry officer).
    :param paths: the dict of ``demo_data.write_csv``.
    :param progress: callable(percent done 0..100, message) called while the import runs.
    :return: the wizard's result (dict with ``state``, counts, ``error_count``, ``result_text``).
    :raise RuntimeError: when the import is refused (its bad lines in the message) or
        does not end within ``timeout`` seconds.
    """
    wizard = client.call(MODEL, "create", {})
    for field, key in FILES.items():
        for sequence, piece in enumerate(_pieces(paths[key])):
            if sequence == 0:
                client.call(
                    MODEL, "write", [wizard], {f"{field}_file": piece, f"{field}_filename": f"{field}.csv.gz"}
                )
            else:
                client.call(
                    MODEL + ".part",
                    "create",
                    {"import_id": wizard, "file": field, "sequence": sequence, "data": piece},
                )
    client.call(MODEL, "action_import", [wizard])
    fields = ["state", "progress", "progress_message", "households_count", "individuals_count",
              "memberships_count", "error_count", "result_text", "seconds"]  # fmt: skip
    started = time.time()
    while True:
        row = client.call(MODEL, "read", [wizard], fields)[0]
        ended = row["state"] in ("done", "failed")
        if progress:
            progress(100.0 if ended else min(row["progress"], 99.0), row["progress_message"] or "")
        if ended:
            break
        if time.time() - started > timeout:
            raise RuntimeError(f"the registry import did not end within {timeout} s: see the server log")
        time.sleep(poll)
    if row["state"] != "done":
        raise RuntimeError(f"registry import refused ({row['error_count']} bad lines):\n{row['result_text']}")
    return row
