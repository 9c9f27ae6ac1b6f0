"""The test command itself: it must fail on a failed test, an ERROR line, or no test."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "run_tests", Path(__file__).resolve().parent.parent / "setup" / "run_tests.py"
)
run_tests = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_tests)

OK = "2026-11-23 15:39:36,697 12431 INFO db odoo.tests.result: 0 failed, 0 error(s) of 6 tests when loading database 'db'"
INFO = "2026-11-23 15:39:35,237 12431 INFO db odoo.modules.loading: 5 modules loaded"


def test_green_log_passes():
    assert run_tests.scan_log([INFO, OK]) == (0, 6, [])


def test_failed_and_errored_tests_are_counted():
    line = OK.replace("0 failed, 0 error(s) of 6", "1 failed, 2 error(s) of 6")
    failed, total, problems = run_tests.scan_log([line])
    assert (failed, total) == (3, 6)


def test_error_line_at_install_fails_even_when_tests_pass():
    err = "2026-11-23 15:39:30,001 12431 ERROR db odoo.modules.registry: Failed to load registry"
    failed, total, problems = run_tests.scan_log([INFO, err, OK])
    assert failed == 0 and total == 6
    assert len(problems) == 1 and "ERROR/CRITICAL" in problems[0]


def test_critical_line_fails():
    crit = "2026-11-23 15:39:30,001 12431 CRITICAL db odoo.service.server: Failed to initialize database"
    assert run_tests.scan_log([crit, OK])[2]


def test_no_result_line_means_nothing_ran():
    failed, total, problems = run_tests.scan_log([INFO])
    assert total == 0 and problems and "no test result line" in problems[0]


def test_zero_tests_is_a_failure():
    line = OK.replace("of 6 tests", "of 0 tests")
    assert run_tests.scan_log([line])[2] == ["no Odoo test ran"]


def test_an_error_in_a_server_log_fails_but_not_in_a_fault_test_log(tmp_path):
    err = "2026-12-07 18:50:59,280 18094 ERROR db odoo.sql_db: bad query: SELECT 1"
    (tmp_path / "db.server-1.log").write_text(INFO + "\n")
    assert run_tests.scan_server_logs(tmp_path) == []
    (tmp_path / "db.server-2.faults.log").write_text(err + "\n")
    assert run_tests.scan_server_logs(tmp_path) == [], "fault tests' servers are not scanned"
    (tmp_path / "db.server-3.log").write_text(INFO + "\n" + err + "\n")
    problems = run_tests.scan_server_logs(tmp_path)
    assert len(problems) == 1 and "db.server-3.log" in problems[0] and "bad query" in problems[0]


# The pytest-odoo run repeats one addon's tests that Odoo's runner already counted.
ODOO_RUN = (120, 0, [], False)


def test_a_repeated_runs_passes_are_not_counted_twice():
    passed, failed, problems = run_tests.final_counts([ODOO_RUN, (41, 0, [], True), (25, 0, [], False)])
    assert (passed, failed, problems) == (145, 0, [])


def test_a_repeated_runs_failures_count():
    passed, failed, problems = run_tests.final_counts(
        [ODOO_RUN, (40, 1, ["pytest-odoo exited with 1"], True)]
    )
    assert (passed, failed) == (120, 1) and problems


def test_a_problem_without_a_failed_test_still_fails():
    collected_nothing = (0, 0, ["pytest-odoo collected no test in spp_service_points/tests"], True)
    assert run_tests.final_counts([ODOO_RUN, collected_nothing])[1] == 1
    assert run_tests.final_counts([]) == (0, 1, ["no test ran"])


def test_junit_counts_skip_neither_passed_nor_failed(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite tests="10" failures="1" errors="2" skipped="3"/>'
        '<testsuite tests="4" failures="0" errors="0" skipped="0"/></testsuites>'
    )
    assert run_tests.junit_counts(report) == (8, 3)
    assert run_tests.junit_counts(tmp_path / "missing.xml") == (0, 0)


def test_pytest_odoo_runs_the_addons_tests_in_the_database():
    cmd = run_tests.pytest_odoo_command("g2p_dev", "spp_service_points", ["-q"])
    assert cmd[1:3] == ["-m", "pytest"]
    assert "--odoo-database=g2p_dev" in cmd and any(a.startswith("--odoo-config=") for a in cmd)
    assert "no:odoo" not in cmd and cmd[-2:] == ["spp_service_points/tests", "-q"]
    one = run_tests.pytest_odoo_command(
        "g2p_dev", "spp_service_points", ["spp_service_points/tests/test_views.py"]
    )
    assert "spp_service_points/tests" not in one and one[-1].endswith("test_views.py")
