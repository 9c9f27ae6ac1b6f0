"""The benchmark (setup/bench.py) at a tiny size, so that it cannot rot: every phase
on a real server (2 workers, cron worker, job runner, no --db-filter), each role over
XML-RPC, the counts checked against the registry computed in Python. The async threshold
is lowered to 30 so that enrollment, new cycle, generation and closing run as queue_job jobs
here too (the real benchmark keeps the default). The figures are not judged: at 100
households fixed costs dominate; what is checked is that every row measured something
and that no count was wrong (the bench exits 1 then)."""

import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

from bench_probe import expected

REPO = Path(__file__).resolve().parent.parent

ROWS = (
    "import (fast, as officer, a job)",
    "enrollment (officer; CEL on members)",
    "new cycle (officer; beneficiaries copied)",
    "generation (officer; formulas, cash + WFP basket)",
    "cycle approval (approver)",
    "entitlement approval (validator; cash + in-kind with stock)",
    "redemption (8 clients, agents' API keys; successful only)",
    "redeem_batch (one device, offline day)",
    "posting deliveries to stock (approver)",
    "closing (approver; jobs above the threshold)",
    "whole cycle, enrollment to closing (import, redemptions aside)",
    "peak RSS of every Odoo process, all phases",
)


def test_bench_runs_every_phase_at_a_tiny_size(test_db, tmp_path):
    out = tmp_path / "RESULTS.md"
    cmd = [
        sys.executable,
        str(REPO / "setup" / "bench.py"),
        "--sizes", "100",
        "--template", test_db,
        "--db", f"{test_db}_bench",
        "--async-threshold", "30",
        "--redemptions", "60",
        "--baseline", "20",
        "--load-households", "20",
        "--single-calls", "20",
        "--out", str(out),
    ]  # fmt: skip
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = out.read_text()
    assert "FAILED" not in text
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 8 and cells[0] in ROWS:
            rows[cells[0]] = cells
    assert set(rows) == set(ROWS), f"missing rows: {set(ROWS) - set(rows)}"
    for name, cells in rows.items():
        if name.startswith("peak RSS"):
            assert re.match(r"\d[\d,]* MB", cells[5]), cells
            assert cells[7] in ("met", "NOT MET")
            continue
        assert float(cells[3]) > 0, cells  # seconds
    enrolled = int(rows["enrollment (officer; CEL on members)"][2].replace(",", ""))
    assert 0 < enrolled < 100
    # the jobs path ran: the log names the jobs of enrollment, new cycle, generation and closing
    for phase in ("enrollment", "new cycle", "generation", "closing"):
        match = re.search(rf"\[bench\]   {phase}: [\d.]+ s, (\d+) job", run.stdout)
        assert match and int(match.group(1)) >= 2, f"{phase}: no jobs ran"


def _person(age, pregnant=False, disabled=False, today=date(2026, 6, 1)):
    return SimpleNamespace(
        birthdate=date(today.year - age, 1, 1), is_pregnant=pregnant, has_disability=disabled
    )


def test_expected_counts_are_computed_from_the_registry_alone():
    """The independent count the bench checks enrollment and generation against."""
    today = date(2026, 6, 1)
    registry = SimpleNamespace(
        households=[
            SimpleNamespace(members=[_person(30), _person(3)]),  # child under 5: eligible, vulnerable
            SimpleNamespace(members=[_person(40), _person(61), _person(62)]),  # 60+: eligible
            SimpleNamespace(members=[_person(25, pregnant=True)]),  # pregnant: eligible, vulnerable
            SimpleNamespace(members=[_person(35, disabled=True)]),  # disability: eligible
            SimpleNamespace(members=[_person(20), _person(45)]),  # none: not eligible
        ]
    )
    ration = [
        SimpleNamespace(default_code="A", vulnerable_only=False, qty=2.0),
        SimpleNamespace(default_code="B", vulnerable_only=True, qty=1.0),
    ]
    exp = expected(registry, ration, lambda item: item.qty, cap=2, today=today)
    assert exp.eligible == 4
    assert exp.cash == 4
    assert exp.cash_total == 40 + 40 + 30 + 30  # 30 + 10 per child under 5 + 5 per member 60+
    assert exp.inkind == 4 + 2  # A for all four, B for the two vulnerable households
    assert exp.inkind_by_product == {"A": 2.0 * (2 + 2 + 1 + 1), "B": 1.0 * (2 + 1)}
