"""What setup/bench.py measures with, apart from the calls it times: the end of a
phase's jobs (``queue.job`` rows read with SQL), the memory of the server's process tree,
raw SQL inserts of the same rows (rolled back), the eligible count computed
independently of Odoo, and the table.

Standard library, psycopg2 and (when installed) psutil; no Odoo import.
"""

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import date

import psycopg2
from dateutil.relativedelta import relativedelta

try:
    import psutil
except ImportError:  # /proc is read instead
    psutil = None


class BenchFailure(RuntimeError):
    """A count is wrong, a job failed or a phase measured nothing: the bench fails."""


def connect(db):
    """An autocommit connection for the bench's own reads (not a role's call)."""
    conn = psycopg2.connect(dbname=db)
    conn.autocommit = True
    return conn


# ----------------------------------------------------------------------------------
# Jobs: a phase ends when every job created since its call is done
# ----------------------------------------------------------------------------------
OPEN_JOB_STATES = ("wait_dependencies", "pending", "enqueued", "started")


class Jobs:
    """Reads ``queue_job`` so that a phase is timed from its call to the end of its last
    job, whether the step ran inline (no job) or as jobs (any number, chained or not)."""

    def __init__(self, db):
        self.conn = connect(db)

    def query(self, sql, params=()):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def mark(self):
        """The last job id so far: the jobs of the next call have higher ids."""
        return self.query("SELECT COALESCE(max(id), 0) FROM queue_job")[0][0]

    def wait(self, since, done, timeout, what):
        """Wait until no job with id > ``since`` is open and ``done()`` is true.

        :return: {state: count} of those jobs
        :raise BenchFailure: a job failed (its exception quoted) or ``timeout`` passed
        """
        deadline = time.perf_counter() + timeout
        while True:
            states = dict(
                self.query("SELECT state, count(*) FROM queue_job WHERE id > %s GROUP BY state", [since])
            )
            if states.get("failed"):
                rows = self.query(
                    "SELECT name, exc_name, exc_message FROM queue_job WHERE id > %s AND state = 'failed' LIMIT 3",
                    [since],
                )
                raise BenchFailure(f"{what}: {states['failed']} job(s) failed, e.g. {rows}")
            if not any(states.get(s) for s in OPEN_JOB_STATES) and done():
                return states
            if time.perf_counter() > deadline:
                raise BenchFailure(f"{what}: not done after {timeout} s (jobs: {states})")
            time.sleep(0.1)

    def unlocked(self, table, record_id):
        return lambda: not self.query(f"SELECT locked FROM {table} WHERE id = %s", [record_id])[0][0]

    def close(self):
        self.conn.close()


# ----------------------------------------------------------------------------------
# Memory: the peak RSS of every process of the server's tree, per phase
# ----------------------------------------------------------------------------------
def _tree(root):
    """[(pid, label)] of the server's processes: the master (HTTP, the queue_job
    runner's thread) and its descendants (HTTP workers running jobs, the cron worker,
    the gevent server)."""
    if psutil:
        try:
            master = psutil.Process(root)
            procs = [master, *master.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        out = []
        for proc in procs:
            try:
                cmd = proc.cmdline()
                nice = proc.nice()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if proc.pid == root:
                label = "master + job runner"
            elif "gevent" in cmd:  # odoo-bin gevent ...: the websocket server
                label = "gevent"
            elif nice >= 10:  # Odoo's cron worker renices itself (os.nice(10))
                label = "cron worker"
            else:
                label = "HTTP worker (runs the jobs)"
            out.append((proc.pid, label))
        return out
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    children.setdefault(int(fh.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append((pid, "master + job runner" if pid == root else "worker"))
        todo += children.get(pid, [])
    return out


def _cpu_seconds(pid):
    """User + system CPU seconds of a process of this machine, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields_ = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def _status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class MemorySampler(threading.Thread):
    """Samples every ``interval`` s the resident memory of each process of the server's
    tree, and keeps its peak per phase. At each phase start the kernel's high-water mark
    (``VmHWM``) is reset (``/proc/PID/clear_refs``, 5) so that peaks between two samples
    count too; where that is refused the sampled ``VmRSS`` alone is kept."""

    def __init__(self, root_pid, interval=0.2, pg_pids=None):
        super().__init__(daemon=True)
        self.pg_pids = pg_pids  # callable: the PostgreSQL backends' pids of the database
        self.cpu = {}  # phase -> (Odoo processes' CPU s, PostgreSQL backends' CPU s)
        self._cpu0 = None
        self.root = root_pid
        self.interval = interval
        self.phase = None
        self.peaks = {}  # phase -> {pid: (kB, label)}
        self.lock = threading.Lock()
        self._stop_event = threading.Event()
        self.hwm_reset = True

    def begin(self, phase):
        with self.lock:
            for pid, _label in _tree(self.root):
                try:
                    with open(f"/proc/{pid}/clear_refs", "w") as fh:
                        fh.write("5")
                except OSError:
                    self.hwm_reset = False
            self.phase = phase
            self.peaks.setdefault(phase, {})
            self._cpu0 = self._cpu_now()
        self.sample()

    def end(self):
        self.sample()
        with self.lock:
            if self._cpu0 is not None:
                odoo1, pg1 = self._cpu_now()
                odoo0, pg0 = self._cpu0
                # processes that ended during the phase are lost (their CPU is not counted)
                self.cpu[self.phase] = (
                    sum(v - odoo0.get(k, 0.0) for k, v in odoo1.items()),
                    sum(v - pg0.get(k, 0.0) for k, v in pg1.items()),
                )
            self.phase = None

    def _cpu_now(self):
        """({pid: CPU s} of the server's tree, {pid: CPU s} of the database's backends)."""
        odoo = {pid: _cpu_seconds(pid) for pid, _label in _tree(self.root)}
        pg = {pid: _cpu_seconds(pid) for pid in (self.pg_pids() if self.pg_pids else [])}
        return {k: v for k, v in odoo.items() if v is not None}, {
            k: v for k, v in pg.items() if v is not None
        }

    def sample(self):
        with self.lock:
            if self.phase is None:
                return
            peaks = self.peaks[self.phase]
            for pid, label in _tree(self.root):
                kb = _status_kb(pid, "VmRSS:")
                if kb is None:
                    continue
                if self.hwm_reset:
                    kb = max(kb, _status_kb(pid, "VmHWM:") or 0)
                if kb > peaks.get(pid, (0, label))[0]:
                    peaks[pid] = (kb, label)

    def run(self):
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join()

    def peak_mb(self, phase):
        """(peak MB of the largest process, its label, {label: peak MB}, processes seen)."""
        peaks = self.peaks.get(phase, {})
        if not peaks:
            return 0.0, "", {}, 0
        by_label = {}
        for kb, label in peaks.values():
            by_label[label] = max(by_label.get(label, 0), kb / 1024)
        kb, label = max(peaks.values())
        return kb / 1024, label, by_label, len(peaks)


# ----------------------------------------------------------------------------------
# Raw SQL: INSERT ... SELECT of the same rows, rolled back
# ----------------------------------------------------------------------------------
def raw_insert_seconds(db, table, where, params):
    """Time a raw ``INSERT INTO table (...) SELECT ...`` of exactly the rows of ``table``
    matching ``where`` (all columns but ``id``, which comes from the sequence as for any
    insert): the rows are copied aside, deleted, then inserted back in one statement;
    everything is rolled back. :return: (rows, seconds of the INSERT)"""
    conn = psycopg2.connect(dbname=db)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND column_name <> 'id' "
                "ORDER BY ordinal_position",
                [table],
            )
            cols = ", ".join(f'"{row[0]}"' for row in cur.fetchall())
            cur.execute(f"CREATE TEMP TABLE bench_rows AS SELECT {cols} FROM {table} WHERE {where}", params)
            cur.execute(f"DELETE FROM {table} WHERE {where}", params)
            t0 = time.perf_counter()
            cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM bench_rows")
            seconds = time.perf_counter() - t0
            rows = cur.rowcount
        conn.rollback()
    finally:
        conn.close()
    return rows, seconds


# ----------------------------------------------------------------------------------
# What the demo's program should select, computed from the generated registry
# ----------------------------------------------------------------------------------
@dataclass
class Expected:
    eligible: int = 0
    cash: int = 0
    cash_total: float = 0.0
    inkind: int = 0
    inkind_by_product: dict = field(default_factory=dict)


def expected(registry, ration, quantity_per_person, cap, today=None):
    """The demo program's outcome computed in Python from the generated registry, not by
    Odoo: eligible = a member under 5 or aged 60+, pregnant or with a disability (the
    rule of setup/demo.py); cash = min(100, 30 + 10 per child under 5 + 5 per member
    60+); in-kind = one entitlement per basket item (the vulnerable-only items for
    households with a pregnant member or a child under 5), quantity per person times the
    household size capped at ``cap``."""
    today = today or date.today()
    out = Expected()
    for hh in registry.households:
        ages = [relativedelta(today, m.birthdate).years for m in hh.members]
        if not (
            any(a < 5 or a >= 60 for a in ages) or any(m.is_pregnant or m.has_disability for m in hh.members)
        ):
            continue
        out.eligible += 1
        amount = min(100.0, 30.0 + 10.0 * sum(a < 5 for a in ages) + 5.0 * sum(a >= 60 for a in ages))
        out.cash += 1
        out.cash_total += amount
        vulnerable = any(m.is_pregnant or a < 5 for m, a in zip(hh.members, ages, strict=True))
        size = min(len(hh.members), cap)
        for item in ration:
            if item.vulnerable_only and not vulnerable:
                continue
            qty = quantity_per_person(item) * size
            if qty > 0:
                out.inkind += 1
                out.inkind_by_product[item.default_code] = (
                    out.inkind_by_product.get(item.default_code, 0) + qty
                )
    return out


# ----------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------
def _met(met):
    """None: no target; a bool; or [(part, bool)]: "met", or "NOT MET: part, part"."""
    if met is None:
        return ""
    if isinstance(met, list):
        missed = [part for part, ok in met if not ok]
        return "met" if not missed else "NOT MET: " + ", ".join(missed)
    return "met" if met else "NOT MET"


class Table:
    """Rows: phase, size (households), count (what was processed), seconds, per second,
    the ratio measured in the same run, the target of issue 24 and whether it is met."""

    def __init__(self):
        self.rows = []

    def add(self, phase, size, count="", seconds=None, ratio="", target="", met=None, rate=None):
        if rate is None and seconds and count not in ("", None):
            rate = count / seconds
        row = {
            "phase": phase,
            "size": size,
            "count": count,
            "seconds": "" if seconds is None else f"{seconds:.2f}",
            "rate": f"{rate:,.0f}" if isinstance(rate, (int, float)) else "",
            "ratio": ratio,
            "target": target,
            "met": _met(met),
        }
        self.rows.append(row)
        count_text = f"{count:,}" if isinstance(count, int) else str(count)
        print(
            f"[bench] {phase:44} {size:>9,} {count_text:>9} {row['seconds']:>9} s {row['rate']:>9}/s  "
            f"{ratio}  | {target} {row['met']}",
            flush=True,
        )
        return row

    def markdown(self):
        lines = [
            "| phase | households | count | seconds | per second | ratio (same run) | target (issue 24) | met |",
            "|---|---:|---:|---:|---:|---|---|---|",
        ]
        for r in self.rows:
            count = f"{r['count']:,}" if isinstance(r["count"], int) else r["count"]
            lines.append(
                f"| {r['phase']} | {r['size']:,} | {count} | {r['seconds']} | {r['rate']} | {r['ratio']} | "
                f"{r['target']} | {r['met']} |"
            )
        return "\n".join(lines)
