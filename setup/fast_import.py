"""Client side of the fast registry import (``g2p.registry.import``), for setup/demo.py.

The demo's CSV files are sent gzipped (base64) to the import wizard, which runs as a
queue_job job above the async threshold; its progress is polled and drawn by the caller.
"""

import base64
import gzip
import time
from pathlib import Path

MODEL = "g2p.registry.import"


def _file(path):
    return base64.b64encode(gzip.compress(Path(path).read_bytes(), compresslevel=5)).decode()


def fast_import(client, paths, progress=None, poll=1.0, timeout=3600):
    """Import the demo's households, individuals, memberships and households' areas.

    :param client: an XML-RPC client with ``call(model, method, *args)`` (a registry officer).
    :param paths: the dict of ``demo_data.write_csv``.
    :param progress: callable(percent done 0..100, message) called while the import runs.
    :return: the wizard's result (dict with ``state``, counts, ``error_count``, ``result_text``).
    :raise RuntimeError: when the import is refused (its bad lines in the message) or
        does not end within ``timeout`` seconds.
    """
    wizard = client.call(
        MODEL,
        "create",
        {
            "households_file": _file(paths["groups"]),
            "households_filename": "households.csv.gz",
            "individuals_file": _file(paths["individuals"]),
            "individuals_filename": "individuals.csv.gz",
            "memberships_file": _file(paths["memberships"]),
            "memberships_filename": "memberships.csv.gz",
            "household_areas_file": _file(paths["household_areas"]),
            "household_areas_filename": "household_areas.csv.gz",
        },
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
