#!/usr/bin/env python3
"""The suite's test command (README command 2).

Creates fresh, uniquely named databases and runs two lanes at once (the machine has
two cores and each lane leaves one mostly idle while it waits on PostgreSQL, servers
and jobs):
- lane 1: installs the five addons with Odoo's test runner (``--test-enable``: every
  addon's tests), checks the committed translation templates against Odoo's export
  (setup/i18n.py), runs one addon's tests again with pytest-odoo in that database (the
  developer's loop of ``make pytest-odoo``, kept working);
- lane 2: installs the five addons without tests in a second database and runs the
  top-level ``tests/`` with pytest against it (its output is kept in a log and printed
  when it ends).
``--serial`` runs them one after the other in one database, as before. The databases
are dropped at the end, pass or fail.

Fails (exit 1) on a failed or erroring test, an addon that does not install, any
``ERROR`` or ``CRITICAL`` line in Odoo's log, or when no test ran. Ends with one line
``N passed, N failed`` that counts each test once: the pytest-odoo run repeats tests
that Odoo's runner counted, so its failures are added and its passes are not.

Usage: .venv/bin/python setup/run_tests.py [--keep-db] [--long] [--serial] [--test-tags TAGS]
       [--addons-only | --pytest-only] [--pytest-odoo ADDON] [pytest args...]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))

from dev_db import pytest_odoo_command  # noqa: E402
from odoo_server import ADDONS, free_port, odoo_bin  # noqa: E402

LOG_DIR = REPO / "var" / "test-logs"
# The addon whose tests run a second time with pytest-odoo (``--pytest-odoo`` changes it).
PYTEST_ODOO_ADDON = "spp_service_points"
# Odoo 17 prints, once the tests of a run are done:
#   odoo.tests.result: 0 failed, 0 error(s) of 42 tests when loading database 'x'
RESULT_RE = re.compile(r"odoo\.tests\.result: (\d+) failed, (\d+) error\(s\) of (\d+) tests")
BAD_LINE_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \d+ (ERROR|CRITICAL) ")


def drop_db(db):
    subprocess.run(["dropdb", "--if-exists", "--force", db], check=False)
    # Odoo's filestore for that database, wherever data_dir points.
    for base in (REPO / "var" / "filestore", Path.home() / ".local/share/Odoo/filestore"):
        shutil.rmtree(base / db, ignore_errors=True)


def scan_log(lines):
    """Read Odoo's log lines. Returns (failed + errored tests, tests run, problems)."""
    failed = total = 0
    seen_result = False
    bad_lines = []
    problems = []
    for line in lines:
        m = RESULT_RE.search(line)
        if m:
            seen_result = True
            failed, errors, total = (int(g) for g in m.groups())
            failed += errors
        if BAD_LINE_RE.match(line):
            bad_lines.append(line.rstrip())
    if not seen_result:
        problems.append("Odoo's log has no test result line: the addons did not install or no test ran")
    elif total == 0:
        problems.append("no Odoo test ran")
    if bad_lines:
        problems.append(f"{len(bad_lines)} ERROR/CRITICAL line(s) in Odoo's log, first: {bad_lines[0][:300]}")
    return failed, total, problems


def run_odoo_tests(db, test_tags, log_path):
    """Install the addons with --test-enable. Returns (passed, failed, problems)."""
    cmd = odoo_bin() + [
        "-d",
        db,
        "-i",
        ",".join(ADDONS),
        "--test-enable",
        "--stop-after-init",
        "--log-level=test",
        "--http-port",
        str(free_port()),
        "--gevent-port",
        str(free_port()),
        "--workers=0",
        "--max-cron-threads=0",
    ]
    # Only the suite's tests, not those of every Odoo module that gets installed.
    cmd += ["--test-tags", test_tags or ",".join("/" + a for a in ADDONS)]
    print("[test] " + " ".join(cmd), flush=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)

        def lines():
            for line in proc.stdout:
                log.write(line)
                # Echo progress and every problem; the full log is kept in the file.
                if any(
                    k in line
                    for k in (" ERROR ", " CRITICAL ", "FAIL:", "odoo.tests.stats", "odoo.tests.result")
                ):
                    sys.stdout.write(line)
                yield line

        failed, total, problems = scan_log(lines())
        rc = proc.wait()
    if rc != 0:
        problems.append(f"odoo-bin exited with {rc}")
    installed = subprocess.run(
        [
            "psql",
            "-d",
            db,
            "-Atc",
            "select name from ir_module_module where state='installed' and name in (%s)"
            % ",".join("'%s'" % a for a in ADDONS),
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    missing = sorted(set(ADDONS) - set(installed))
    if missing:
        problems.append("addons not installed: " + ", ".join(missing))
    return max(total - failed, 0), failed, problems


def scan_server_logs(log_dir):
    """Problems found in the logs of the Odoo servers the tests started (``log_dir``):
    one per log with an ``ERROR``/``CRITICAL`` line. Logs of servers started with
    ``expect_errors=True`` (``*.faults.log``: fault tests) are not scanned."""
    problems = []
    for path in sorted(log_dir.glob("*.log")):
        if path.name.endswith(".faults.log"):
            continue
        with open(path, errors="replace") as fh:
            bad = [line.rstrip() for line in fh if BAD_LINE_RE.match(line)]
        if bad:
            problems.append(
                f"{len(bad)} ERROR/CRITICAL line(s) in the server log {path}, first: {bad[0][:300]}"
            )
    return problems


def install_addons(db):
    """Install the addons in ``db`` without running tests (for the top-level tests);
    Odoo's log goes to ``var/test-logs/<db>.install.log``. Raises CalledProcessError
    when the install fails."""
    cmd = odoo_bin() + [
        "-d",
        db,
        "-i",
        ",".join(ADDONS),
        "--stop-after-init",
        "--workers=0",
        "--max-cron-threads=0",
        "--http-port",
        str(free_port()),
        "--gevent-port",
        str(free_port()),
    ]
    log_path = LOG_DIR / f"{db}.install.log"
    print(f"[test] installing the addons in {db} for the top-level tests (log: {log_path})", flush=True)
    with open(log_path, "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def run_pytest(db, extra, junit_path, output=None):
    """Run the top-level tests/ against the database. Returns (passed, failed, problems).

    ``output``: a path to write pytest's output to (a parallel lane), or None for the
    terminal. Every Odoo server the tests start logs into
    ``var/test-logs/<db>-servers/`` (``G2P_SERVER_LOG_DIR``); an ``ERROR``/``CRITICAL``
    line there fails the run."""
    server_logs = LOG_DIR / f"{db}-servers"
    server_logs.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ, G2P_TEST_DB=db, G2P_ODOO_CONF=str(REPO / "odoo.conf"), G2P_SERVER_LOG_DIR=str(server_logs)
    )
    cmd = [
        str(REPO / ".venv" / "bin" / "python"),
        "-m",
        "pytest",
        "-p",
        "no:odoo",
        "-p",
        "no:cacheprovider",
        "-q",
        f"--junitxml={junit_path}",
    ]
    # Test files or node ids given (tests/test_x.py, tests/test_x.py::test_y): only those.
    paths = [a for a in extra if a.startswith("tests/") or a.endswith(".py") or "::" in a]
    cmd += extra if paths else ["tests", *extra]
    print("[test] " + " ".join(cmd), flush=True)
    if output is None:
        rc = subprocess.run(cmd, cwd=REPO, env=env).returncode
    else:
        with open(output, "w") as out:
            rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    passed, failed = junit_counts(junit_path)
    problems = []
    if rc == 5:
        problems.append("pytest collected no test in tests/")
    elif rc != 0:
        problems.append(f"pytest exited with {rc}")
    problems += scan_server_logs(server_logs)
    return passed, failed, problems


def run_pytest_odoo(db, addon, junit_path):
    """``addon``'s tests with pytest-odoo in ``db`` (installed by the Odoo tests), as
    ``make pytest-odoo`` runs them. Returns (passed, failed, problems)."""
    cmd = pytest_odoo_command(db, addon, ["-q", f"--junitxml={junit_path}"])
    print("[test] " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, cwd=REPO).returncode
    passed, failed = junit_counts(junit_path)
    problems = []
    if rc == 5:
        problems.append(f"pytest-odoo collected no test in {addon}/tests")
    elif rc != 0:
        problems.append(f"pytest-odoo exited with {rc} on {addon}/tests")
    print(
        f"[test] pytest-odoo, {addon}: {passed} passed, {failed} failed (passes already counted by Odoo's runner)"
    )
    return passed, failed, problems


def check_translation_templates(db):
    """The committed ``<addon>/i18n/<addon>.pot`` against Odoo's export from ``db``
    (setup/i18n.py --check). Returns (0, 0, problems): a check, not a test."""
    cmd = [
        str(REPO / ".venv" / "bin" / "python"),
        str(REPO / "setup" / "i18n.py"),
        "--db",
        db,
        "--check",
        *ADDONS,
    ]
    print("[test] " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, cwd=REPO).returncode
    problems = [] if rc == 0 else ["translation templates out of date (or not exported): run `make i18n`"]
    return 0, 0, problems


def junit_counts(junit_path):
    """(passed, failed + errored) in pytest's JUnit XML report; skipped tests are neither.
    (0, 0) when there is no report."""
    passed = failed = 0
    if junit_path.exists():
        root = ET.parse(junit_path).getroot()
        for suite in root.iter("testsuite"):
            n = int(suite.get("tests", 0))
            f = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            s = int(suite.get("skipped", 0))
            passed += n - f - s
            failed += f
    return passed, failed


def final_counts(runs):
    """The final line's figures from ``runs``: [(passed, failed, problems, repeated)],
    ``repeated`` True for a run of tests another run already counted (pytest-odoo after
    Odoo's runner): its failures are added, its passes are not. A problem outside a test
    (install error, ERROR line, nothing collected) still fails the run: at least 1 failed.
    Returns (passed, failed, problems)."""
    passed = failed = 0
    problems = []
    for run_passed, run_failed, run_problems, repeated in runs:
        passed += 0 if repeated else run_passed
        failed += run_failed
        problems += run_problems
    if passed + failed == 0:
        problems.append("no test ran")
    if problems and failed == 0:
        failed = 1
    return passed, failed, problems


def top_level_lane(db, pytest_args, result, t0):
    """Lane 2: install the addons in ``db``, then run the top-level tests with their
    output in a log. Fills ``result`` with ``run`` (passed, failed, problems),
    ``seconds`` and ``output`` (the log's path); never raises."""
    output = LOG_DIR / f"{db}.pytest.log"
    try:
        install_addons(db)
        result["run"] = run_pytest(db, pytest_args, LOG_DIR / f"{db}.junit.xml", output)
    except Exception as exc:  # an install that fails is a failed run, said once at the end
        result["run"] = (0, 0, [f"top-level tests: {type(exc).__name__}: {exc}"])
    finally:
        result["seconds"] = time.time() - t0
        result["output"] = output


def run_lanes(args, db, whole, pytest_odoo, t0):
    """Run what ``args`` asks for in ``db`` (and ``<db>_top`` for the top-level tests
    when the two lanes run at once); drop the databases at the end unless --keep-db.
    Returns [(passed, failed, problems, repeated)] for ``final_counts``."""
    # Two lanes at once when both Odoo's tests and the top-level tests run.
    parallel = not args.serial and not args.pytest_only and not args.addons_only
    top_db = f"{db}_top" if parallel else db
    runs = []
    lane2 = {}
    thread = None
    try:
        print(
            f"[test] database {db}" + (f", top-level tests in {top_db} at the same time" if parallel else ""),
            flush=True,
        )
        if parallel:
            thread = threading.Thread(
                target=top_level_lane, args=(top_db, args.pytest_args, lane2, t0), daemon=True
            )
            thread.start()
        if not args.pytest_only:
            runs.append((*run_odoo_tests(db, args.test_tags, LOG_DIR / f"{db}.log"), False))
        else:
            install_addons(db)  # top-level tests still need the addons installed
        if whole:
            runs.append((*check_translation_templates(db), False))
        if pytest_odoo != "none":
            junit = LOG_DIR / f"{db}.pytest-odoo.junit.xml"
            # repeated: Odoo's runner counted these tests (unless --pytest-only skipped it)
            runs.append((*run_pytest_odoo(db, pytest_odoo, junit), not args.pytest_only))
        if thread:
            print(f"[test] lane 1 (Odoo's runner) done after {time.time() - t0:.0f} s", flush=True)
            thread.join()
            print(
                f"[test] lane 2 (top-level tests) done after {lane2['seconds']:.0f} s; its output:",
                flush=True,
            )
            if lane2["output"].exists():
                sys.stdout.write(lane2["output"].read_text(errors="replace"))
            runs.append((*lane2["run"], False))
        elif not args.addons_only:
            runs.append((*run_pytest(db, args.pytest_args, LOG_DIR / f"{db}.junit.xml"), False))
    finally:
        if thread and thread.is_alive():  # lane 1 raised: let lane 2 end before dropping its database
            thread.join()
        if not args.keep_db:
            drop_db(db)
            if parallel:
                drop_db(top_db)
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    ap.add_argument("--long", action="store_true", help="also run the long forms of load and fault tests")
    ap.add_argument("--test-tags", default="", help="Odoo --test-tags filter")
    ap.add_argument("--addons", help="comma-separated addons to install (default: the five)")
    ap.add_argument(
        "--serial", action="store_true", help="one lane: top-level tests after Odoo's, in the same database"
    )
    ap.add_argument("--addons-only", action="store_true")
    ap.add_argument("--pytest-only", action="store_true")
    ap.add_argument(
        "--pytest-odoo",
        metavar="ADDON",
        help=f"run ADDON's tests again with pytest-odoo after Odoo's runner (default: {PYTEST_ODOO_ADDON} "
        "when Odoo's tests run whole, none when --test-tags narrows them; 'none' skips)",
    )
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args()
    if args.addons:
        ADDONS[:] = args.addons.split(",")
    if args.long:
        os.environ["G2P_LONG_TESTS"] = "1"
    whole = not args.test_tags and not args.pytest_only  # every addon's Odoo tests run
    pytest_odoo = args.pytest_odoo
    if pytest_odoo is None:
        pytest_odoo = PYTEST_ODOO_ADDON if whole and PYTEST_ODOO_ADDON in ADDONS else "none"
    elif pytest_odoo != "none" and pytest_odoo not in ADDONS:
        ap.error(f"--pytest-odoo {pytest_odoo}: not among the installed addons ({', '.join(ADDONS)})")

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    db = f"g2p_test_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"
    t0 = time.time()
    runs = run_lanes(args, db, whole, pytest_odoo, t0)
    passed, failed, problems = final_counts(runs)
    print(f"[test] {time.time() - t0:.0f} s; full Odoo log in {LOG_DIR / (db + '.log')}")
    for pr in problems:
        print(f"[test] FAILED: {pr}")
    print(f"{passed} passed, {failed} failed")
    return 1 if (problems or failed) else 0


if __name__ == "__main__":
    sys.exit(main())
