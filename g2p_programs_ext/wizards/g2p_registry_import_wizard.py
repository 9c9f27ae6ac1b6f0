"""Fast registry import: households, individuals and their memberships from CSV files.

The files have the columns of the demo's files (``setup/demo_data/registry.py``), the
columns of Odoo's standard import (``load``): ``id`` (external id, module ``__import__``),
field names, ``<many2one>/id`` for references by external id, ``kind_ids/id`` as a
comma-separated list. What the import keeps, line by line, with a bracketed code:

* the header: every column known (``[unknown_column]``), the required ones present
  (``[missing_column]``);
* each line: external id and name given (``[missing_value]``), booleans
  (``[bad_boolean]``), selection values (``[bad_selection]``), dates read by
  :meth:`datetime.date.fromisoformat` (``[bad_date]``), references that exist
  (``[unknown_reference]``), a household file of households and an individual file of
  individuals (``[wrong_kind]``), a membership that does not end before it starts
  (``[dates_ordered]``);
* across lines and against the database: external ids unique and new
  (``[duplicate_xmlid]``, ``[xmlid_exists]``), the registry's ID numbers unique
  (``[duplicate_id_number]``), a membership's household and member found
  (``[unknown_household]``, ``[unknown_individual]``), one active household per
  individual (``[two_households]``), at most one active holder of a unique role per
  household (``[unique_role]``).

All or nothing: every line is read and checked first (per line in Python, across lines in
SQL on temporary tables), and the registry is written only when no line is bad, in the
caller's transaction. The write is ``INSERT ... SELECT`` from those temporary tables, with
every column the ORM's ``create`` fills (defaults from ``default_get``, stored computed
fields, ``create_uid``/``write_uid``/dates, external ids); the ORM's caches are then
invalidated. Like a ``create`` with ``tracking_disable``, no chatter message is written
per registrant.
"""

import base64
import binascii
import csv
import gzip
import io
import logging
import time
from datetime import date

from odoo import _, api, fields, models, tools
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

_logger = logging.getLogger(__name__)

#: Bad lines listed in a result (all are counted).
MAX_REPORTED_ERRORS = 1000
#: Lines sent to PostgreSQL per COPY.
COPY_BATCH = 20000
IMPORT_MODULE = "__import__"

TRUE_WORDS = {"true", "1", "yes", "t", "y"}
FALSE_WORDS = {"false", "0", "no", "f", "n"}

HOUSEHOLDS, INDIVIDUALS, MEMBERSHIPS, HOUSEHOLD_AREAS = FILES = (
    "households",
    "individuals",
    "memberships",
    "household_areas",
)

#: Stored computed fields of res.partner whose value the import computes itself (in SQL
#: or Python, as the ORM's compute would for a registrant without parent or company).
HANDLED_COMPUTED = {
    "complete_name",
    "commercial_partner_id",
    "commercial_company_name",
    "partner_share",
    "email_normalized",  # computed while reading (_derived_values)
    "phone_sanitized",  # idem
    "household_size",
    "user_id",
    "company_registry",
}
#: Columns never taken from a file (the import sets them).
MAGIC = {"id", "create_uid", "create_date", "write_uid", "write_date"}


def _raw(content):
    """Bytes of a file given as str (CSV text or base64), bytes (UTF-8, optionally gzip)
    or False, still compressed when gzip. Base64 is told apart from CSV text by its lack of
    commas and line breaks."""
    if not content:
        return b""
    if isinstance(content, str):
        if "," in content or "\n" in content:
            return content.encode("utf-8")
        try:
            return base64.b64decode(content, validate=True)
        except binascii.Error:
            return content.encode("utf-8")
    return content


class _FileStream(io.RawIOBase):
    """One file given in pieces, read as one byte stream: each piece is loaded when it is
    reached and decompressed as it is read (gzip or not), so that a file of millions of
    lines is never held whole in memory (a piece of a few MB at a time).

    :param pieces: list of (size in bytes as given, callable returning the piece's bytes).
    A piece continues the previous one byte for byte (the header only in the first).
    """

    def __init__(self, pieces):
        super().__init__()
        self.pieces = list(pieces)
        self.total = sum(size for size, _load in self.pieces) or 1
        self.index = -1
        self.current = None  # the reader of the current piece
        self.given = None  # the current piece's bytes as given (compressed)
        self.given_size = 1
        self.before = 0  # bytes as given of the pieces already read

    def readable(self):
        return True

    def readinto(self, buffer):
        while True:
            if self.current is None:
                if self.index + 1 >= len(self.pieces):
                    return 0
                if self.given is not None:
                    self.before += self.pieces[self.index][0]
                self.index += 1
                data = _raw(self.pieces[self.index][1]())
                self.given, self.given_size = io.BytesIO(data), max(len(data), 1)
                self.current = gzip.GzipFile(fileobj=self.given) if data[:2] == b"\x1f\x8b" else self.given
            count = self.current.readinto(buffer)
            if count:
                return count
            self.current = None

    def fraction(self):
        """How much of the file was read, 0..1, by the bytes as given."""
        if self.given is None:
            return 0.0
        size = self.pieces[self.index][0]
        done = self.given.tell() / self.given_size * size
        return min(1.0, (self.before + done) / self.total)

    def text(self):
        """The stream as text (UTF-8, a byte-order mark dropped), for csv.reader."""
        return io.TextIOWrapper(io.BufferedReader(self, 1 << 20), encoding="utf-8-sig", newline="")


def _pieces(content):
    """The pieces of a file given as one content (str, bytes, False) or already as a list
    of (size, loader) pairs."""
    if isinstance(content, list):
        return content
    return [(len(content), lambda: content)] if content else []


def _count_lines(pieces, stop=None):
    """Lines of a file given in pieces, read in 1 MB blocks (never held whole); counting
    ends past ``stop`` lines when given."""
    stream, lines = _FileStream(pieces), 0
    while block := stream.read(1 << 20):
        lines += block.count(b"\n")
        if stop is not None and lines > stop:
            break
    return lines


class _Staging:
    """Lines written to a temporary table through COPY, in batches."""

    def __init__(self, cr, table, columns):
        self.cr, self.table, self.columns = cr, table, columns
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\n")
        self.pending = 0
        self.count = 0

    def add(self, row):
        self.writer.writerow(row)
        self.pending += 1
        self.count += 1
        if self.pending >= COPY_BATCH:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        self.buffer.seek(0)
        # COPY: a temporary table of this transaction, not an Odoo model (no cache, no rules).
        self.cr._obj.copy_expert(
            "COPY %s (%s) FROM STDIN WITH (FORMAT csv)" % (self.table, ", ".join(self.columns)), self.buffer
        )
        self.buffer.seek(0)
        self.buffer.truncate()
        self.pending = 0


class RegistryImportRun:
    """One import: read and check the files, then write them or report the bad lines.

    :param env: the environment of the user who imports (rights checked by the caller).
    :param progress: callable(fraction 0..1, message) told how far the import is.
    """

    def __init__(self, env, partner_fields, progress=None):
        self.env = env
        self.cr = env.cr
        self.progress = progress or (lambda fraction, message: None)
        self.errors = []
        self.error_count = 0
        self.Partner = env["res.partner"]
        self._ref_cache = {}
        self._selection_keys = {}
        self._dates = {}
        # Stored fields the ORM computes from a line's own values: computed here while reading.
        self.derived = []
        if "email_normalized" in self.Partner._fields:
            self.derived.append("email_normalized")
        if "phone_sanitized" in self.Partner._fields and hasattr(self.Partner, "_phone_get_number_fields"):
            self.derived.append("phone_sanitized")
            self.number_fields = self.Partner._phone_get_number_fields()
            self.countries = {}
            self._country_codes = {}
        #: {file: [res.partner field names]} a file may set
        self.partner_fields = partner_fields

    # ------------------------------------------------------------------
    # Errors
    # ------------------------------------------------------------------
    def error(self, file, line, code, message):
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(
                {"file": file, "line": line, "code": code, "message": "[%s] %s" % (code, message)}
            )

    # ------------------------------------------------------------------
    # Columns
    # ------------------------------------------------------------------
    def _columns_of(self, file, header):
        """Check a header: {column: field name}, or None after reporting the bad columns."""
        allowed = {"id": "id", "is_registrant": "is_registrant", "is_group": "is_group"}
        for name in self.partner_fields[file]:
            field = self.Partner._fields[name]
            allowed[name + "/id" if field.type == "many2one" else name] = name
        result, bad = {}, False
        for column in header:
            if column not in allowed:
                self.error(file, 1, "unknown_column", _("Column %s is not one the import knows.", column))
                bad = True
            result[column] = allowed.get(column)
        for required in ("id", "name"):
            if required not in header:
                self.error(file, 1, "missing_column", _("Column %s is required.", required))
                bad = True
        return None if bad else result

    # ------------------------------------------------------------------
    # Values
    # ------------------------------------------------------------------
    def _bool(self, file, line, column, value):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS or not word:
            return False
        self.error(
            file,
            line,
            "bad_boolean",
            _("%(column)s: %(value)r is not True or False.", column=column, value=value),
        )
        return None

    def _date(self, file, line, column, value):
        if not value:
            return None
        # Registries repeat dates (birthdates, start dates): each text is read once.
        iso = self._dates.get(value)
        if iso is not None:
            return iso
        try:
            iso = self._dates[value] = date.fromisoformat(value.strip()).isoformat()
            return iso
        except ValueError:
            self.error(
                file,
                line,
                "bad_date",
                _("%(column)s: %(value)r is not a date (YYYY-MM-DD).", column=column, value=value),
            )
            return None

    def _ref(self, file, line, column, xmlid, model):
        """Database id of the record of ``model`` with external id ``xmlid`` (cached), or None."""
        key = (model, xmlid)
        if key not in self._ref_cache:
            full = xmlid if "." in xmlid else "%s.%s" % (IMPORT_MODULE, xmlid)
            found = self.env["ir.model.data"]._xmlid_to_res_model_res_id(full)
            res_id = None
            if found and found[0] == model and self.env[model].browse(found[1]).exists():
                res_id = found[1]
            self._ref_cache[key] = res_id
        res_id = self._ref_cache[key]
        if res_id is None:
            self.error(
                file,
                line,
                "unknown_reference",
                _(
                    "%(column)s: no %(model)s has the external id %(xmlid)s.",
                    column=column,
                    model=model,
                    xmlid=xmlid,
                ),
            )
        return res_id

    def _value(self, file, line, column, field, value):
        """The column value of ``field`` for the cell ``value`` (None for NULL), or raises
        nothing and reports the line."""
        kind = field.type
        if value == "":
            # as load(): an empty cell is False, which is NULL but for booleans
            return False if kind == "boolean" else None
        if kind == "boolean":
            return self._bool(file, line, column, value)
        if kind == "date":
            return self._date(file, line, column, value)
        if kind == "selection":
            if field.name not in self._selection_keys:
                self._selection_keys[field.name] = [
                    key for key, _label in field._description_selection(self.env)
                ]
            keys = self._selection_keys[field.name]
            if value not in keys:
                self.error(
                    file,
                    line,
                    "bad_selection",
                    _(
                        "%(column)s: %(value)r is not one of %(keys)s.",
                        column=column,
                        value=value,
                        keys=", ".join(keys),
                    ),
                )
            return value
        if kind == "many2one":
            return self._ref(file, line, column, value.strip(), field.comodel_name)
        if kind in ("integer", "float"):
            try:
                return int(value) if kind == "integer" else float(value)
            except ValueError:
                self.error(
                    file,
                    line,
                    "bad_number",
                    _("%(column)s: %(value)r is not a number.", column=column, value=value),
                )
                return None
        return value

    # ------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------
    def _rows(self, file, stream, share, start):
        """(line number, dict) for each line of ``stream`` (a :class:`_FileStream` of CSV
        with a header), telling progress from ``start`` over ``share`` of the whole."""
        reader = csv.reader(stream.text())
        header = next(reader, None)
        if header is None:
            return None, iter(())

        def rows():
            for number, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    self.error(
                        file,
                        number,
                        "bad_line",
                        _(
                            "%(found)s cells where the header has %(expected)s.",
                            found=len(row),
                            expected=len(header),
                        ),
                    )
                    continue
                if number % 20000 == 0:
                    self.progress(
                        start + share * stream.fraction(),
                        _("Reading %(file)s: line %(line)s", file=file, line=number),
                    )
                yield number, dict(zip(header, row, strict=True))

        return header, rows()

    def _read_partners(self, file, stream, staging, is_group, share, start):
        header, rows = self._rows(file, stream, share, start)
        if header is None:
            return
        columns = self._columns_of(file, header)
        if columns is None:
            return
        fields_ = self.Partner._fields
        cells = []  # (field name, column, field) of each field, the column None when absent
        for name in self.partner_fields[file]:
            column = name + "/id" if fields_[name].type == "many2one" else name
            cells.append((name, column if column in header else None, fields_[name]))
        value_of = self._value
        for line, row in rows:
            xmlid = row.get("id", "").strip()
            if not xmlid:
                self.error(file, line, "missing_value", _("The external id (column id) is required."))
            elif "." in xmlid:
                self.error(
                    file,
                    line,
                    "bad_xmlid",
                    _("External id %s: the file's own ids take no module prefix.", xmlid),
                )
            if not row.get("name", "").strip():
                self.error(file, line, "missing_value", _("The name is required."))
            if (
                row.get("is_registrant", "").strip()
                and self._bool(file, line, "is_registrant", row["is_registrant"]) is False
            ):
                self.error(
                    file,
                    line,
                    "wrong_kind",
                    _("A line of this file must be a registrant (is_registrant True)."),
                )
            if row.get("is_group", "").strip():
                group = self._bool(file, line, "is_group", row["is_group"])
                if group is not None and group != is_group:
                    self.error(
                        file,
                        line,
                        "wrong_kind",
                        _("This file holds households only.")
                        if is_group
                        else _("This file holds individuals only."),
                    )
            values = {
                name: value_of(file, line, column, field, row[column]) if column else None
                for name, column, field in cells
            }
            staging.add([line, xmlid, *values.values(), *self._derived_values(values)])

    def _derived_values(self, values):
        """The stored computed fields of a line, as the ORM computes them for a registrant:
        ``email_normalized`` (tools.email_normalize), ``phone_sanitized`` (the first number
        the ORM's ``_phone_format`` accepts, in the line's country else the company's)."""
        result = []
        if "email_normalized" in self.derived:
            result.append(tools.email_normalize(values["email"]) or None if values.get("email") else None)
        if "phone_sanitized" in self.derived:
            sanitized = None
            for fname in self.number_fields:
                if values.get(fname):
                    country_id = values.get("country_id")
                    if country_id not in self.countries:
                        self.countries[country_id] = (
                            self.env["res.country"].browse(country_id)
                            if country_id
                            else self.env.company.country_id
                        )
                    sanitized = self._phone_sanitized(values[fname], self.countries[country_id])
                    if sanitized:
                        break
            result.append(sanitized or None)
        return result

    def _phone_sanitized(self, number, country):
        """``res.partner._phone_format(number=..., country=...)`` (E164, False when the number
        does not parse), with the country's code and phone code read once per country
        instead of through the ORM for every line."""
        # phone_validation is not a dependency: imported only where res.partner has its field.
        from odoo.addons.phone_validation.tools import phone_validation  # noqa: PLC0415

        if not country:
            return number
        codes = self._country_codes.get(country.id)
        if codes is None:
            codes = self._country_codes[country.id] = (country.code, country.phone_code)
        try:
            return phone_validation.phone_format(number, *codes, force_format="E164", raise_exception=True)
        except UserError:
            return False

    def _read_memberships(self, stream, staging, share, start):
        file = MEMBERSHIPS
        header, rows = self._rows(file, stream, share, start)
        if header is None:
            return
        allowed = {"id", "group_id/id", "individual_id/id", "kind_ids/id", "start_date", "end_date"}
        bad = False
        for column in header:
            if column not in allowed:
                self.error(file, 1, "unknown_column", _("Column %s is not one the import knows.", column))
                bad = True
        for required in ("id", "group_id/id", "individual_id/id"):
            if required not in header:
                self.error(file, 1, "missing_column", _("Column %s is required.", required))
                bad = True
        if bad:
            return
        today = fields.Date.context_today(self.env["g2p.group.membership"]).isoformat()
        kind_model = "g2p.group.membership.kind"
        for line, row in rows:
            xmlid = row["id"].strip()
            group = row["group_id/id"].strip()
            individual = row["individual_id/id"].strip()
            for value, label in ((xmlid, "id"), (group, "group_id/id"), (individual, "individual_id/id")):
                if not value:
                    self.error(file, line, "missing_value", _("Column %s is required.", label))
            kinds = []
            for kind in (row.get("kind_ids/id") or "").split(","):
                if kind.strip():
                    kind_id = self._ref(file, line, "kind_ids/id", kind.strip(), kind_model)
                    if kind_id:
                        kinds.append(kind_id)
            start_date = (
                self._date(file, line, "start_date", row.get("start_date", ""))
                if row.get("start_date")
                else today
            )
            end_date = self._date(file, line, "end_date", row.get("end_date", ""))
            if start_date and end_date and end_date < start_date:
                self.error(
                    file,
                    line,
                    "dates_ordered",
                    _(
                        "The membership ends (%(end)s) before it starts (%(start)s).",
                        end=end_date,
                        start=start_date,
                    ),
                )
            staging.add(
                [
                    line,
                    xmlid,
                    group,
                    individual,
                    "{%s}" % ",".join(map(str, sorted(set(kinds)))),
                    start_date,
                    end_date,
                ]
            )

    def _read_household_areas(self, stream, share, start):
        """The demo's ``res.partner.areas.csv``: ``id`` (a household of the households file)
        and more household columns (e.g. ``area_id/id``), merged into that household."""
        file = HOUSEHOLD_AREAS
        header, rows = self._rows(file, stream, share, start)
        if header is None:
            return []
        columns = {}
        for column in header:
            if column == "id":
                continue
            name = column[:-3] if column.endswith("/id") else column
            if name not in self.partner_fields[HOUSEHOLDS] or name in (
                "name",
                "country_id",
                "phone",
                "mobile",
                "email",
            ):
                self.error(file, 1, "unknown_column", _("Column %s is not one the import knows.", column))
                return []
            columns[column] = name
        if "id" not in header:
            self.error(file, 1, "missing_column", _("Column %s is required.", "id"))
            return []
        names = list(columns.values())
        if not names:
            return []
        self._create_areas_staging(names)
        staging = _Staging(self.cr, "g2p_import_household_extra", ["line", "xmlid", *names])
        fields_ = self.Partner._fields
        for line, row in rows:
            values = {
                name: self._value(file, line, column, fields_[name], row[column])
                for column, name in columns.items()
            }
            staging.add([line, row["id"].strip(), *[values[name] for name in names]])
        staging.flush()
        return names

    # ------------------------------------------------------------------
    # The run
    # ------------------------------------------------------------------
    def run(self, households="", individuals="", memberships="", household_areas=""):
        """Import the files, each given as one content (CSV text, base64 of UTF-8 or gzip,
        bytes) or as a list of pieces ``(size in bytes, loader)`` read one after the other
        (see :class:`_FileStream`). Returns the summary dict of :meth:`summary`."""
        t0 = time.time()
        streams = {
            name: _FileStream(_pieces(content))
            for name, content in (
                (HOUSEHOLDS, households),
                (INDIVIDUALS, individuals),
                (MEMBERSHIPS, memberships),
                (HOUSEHOLD_AREAS, household_areas),
            )
        }
        total = sum(stream.total for stream in streams.values() if stream.pieces) or 1
        shares = {
            name: 0.5 * stream.total / total if stream.pieces else 0.0 for name, stream in streams.items()
        }
        cr = self.cr
        self.env.flush_all()
        # JIT compiles each big statement (about 1 s each, more than it saves here).
        cr.execute("SET LOCAL jit = off")
        # Hash joins and aggregates over the staged lines fit in memory (4 MB: spilled to disk).
        cr.execute("SET LOCAL work_mem = '128MB'")
        partner_columns = self._create_staging_tables()
        households_staging = _Staging(
            cr, "g2p_import_household", ["line", "xmlid", *self.partner_fields[HOUSEHOLDS], *self.derived]
        )
        individuals_staging = _Staging(
            cr, "g2p_import_individual", ["line", "xmlid", *self.partner_fields[INDIVIDUALS], *self.derived]
        )
        start = 0.0
        self._read_partners(
            HOUSEHOLDS, streams[HOUSEHOLDS], households_staging, True, shares[HOUSEHOLDS], start
        )
        households_staging.flush()
        start += shares[HOUSEHOLDS]
        self._read_partners(
            INDIVIDUALS, streams[INDIVIDUALS], individuals_staging, False, shares[INDIVIDUALS], start
        )
        individuals_staging.flush()
        start += shares[INDIVIDUALS]
        memberships_staging = _Staging(
            cr,
            "g2p_import_membership_line",
            ["line", "xmlid", "group_xmlid", "individual_xmlid", "kind_ids", "start_date", "end_date"],
        )
        self._read_memberships(streams[MEMBERSHIPS], memberships_staging, shares[MEMBERSHIPS], start)
        memberships_staging.flush()
        start += shares[MEMBERSHIPS]
        area_columns = []
        if streams[HOUSEHOLD_AREAS].pieces:
            area_columns = self._read_household_areas(
                streams[HOUSEHOLD_AREAS], shares[HOUSEHOLD_AREAS], start
            )
        self.progress(0.5, _("Checking across lines and against the registry"))
        counts = {
            HOUSEHOLDS: households_staging.count,
            INDIVIDUALS: individuals_staging.count,
            MEMBERSHIPS: memberships_staging.count,
        }
        # Run even after bad lines were found, so that every bad line is reported at once.
        self._check_in_sql(area_columns)
        if not self.error_count:
            self._write(partner_columns, area_columns)
        cr.execute("SET LOCAL jit TO DEFAULT; SET LOCAL work_mem TO DEFAULT")
        self.progress(1.0, _("Done") if not self.error_count else _("Refused: nothing imported"))
        return self.summary(counts, time.time() - t0)

    def summary(self, counts, seconds):
        """dict: ``ok`` (bool), ``households``/``individuals``/``memberships`` (lines read,
        imported when ok), ``error_count`` (all bad lines), ``errors`` (up to 1,000 dicts
        ``file``, ``line``, ``code``, ``message``), ``seconds``. No None: XML-RPC safe."""
        ok = not self.error_count
        return {
            "ok": ok,
            "households": counts[HOUSEHOLDS],
            "individuals": counts[INDIVIDUALS],
            "memberships": counts[MEMBERSHIPS],
            "imported": ok,
            "error_count": self.error_count,
            "errors": sorted(
                self.errors,
                key=lambda e: (
                    [HOUSEHOLDS, INDIVIDUALS, MEMBERSHIPS, HOUSEHOLD_AREAS].index(e["file"]),
                    e["line"],
                ),
            ),
            "seconds": round(seconds, 3),
        }

    # ------------------------------------------------------------------
    # SQL
    # ------------------------------------------------------------------
    def _create_staging_tables(self):
        """Temporary tables (dropped at commit) for the lines read; returns res.partner's columns.

        Each partner line gets its database id from ``res_partner_id_seq`` as it is copied in
        (a column default: no second pass over the lines), so that memberships and external
        ids can refer to it; a refused import leaves those sequence values unused, as a
        rolled-back ``create`` does."""
        cr = self.cr
        for table, file in (("g2p_import_household", HOUSEHOLDS), ("g2p_import_individual", INDIVIDUALS)):
            # Temporary tables of this transaction: staging only, no Odoo model behind them.
            cr.execute(
                SQL(
                    """DROP TABLE IF EXISTS %s;
                       CREATE TEMPORARY TABLE %s (line int, xmlid varchar,
                           id int DEFAULT nextval('res_partner_id_seq'), %s) ON COMMIT DROP""",
                    SQL.identifier(table),
                    SQL.identifier(table),
                    self._column_definitions(self.partner_fields[file] + self.derived),
                )
            )
        # The memberships as read; g2p_import_membership (references resolved) is made from it.
        cr.execute(
            """DROP TABLE IF EXISTS g2p_import_membership_line;
               CREATE TEMPORARY TABLE g2p_import_membership_line (line int, xmlid varchar, group_xmlid varchar,
               individual_xmlid varchar, kind_ids int[], start_date date, end_date date) ON COMMIT DROP"""
        )
        cr.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'res_partner'")
        return {row[0] for row in cr.fetchall()}

    def _column_definitions(self, names):
        """SQL: ``name type, ...`` for res.partner fields, with the ORM's column types."""
        return SQL(", ").join(
            SQL("%s %s", SQL.identifier(name), SQL(self.Partner._fields[name].column_type[1]))
            for name in names
        )

    def _create_areas_staging(self, names):
        self.cr.execute(
            SQL(
                """DROP TABLE IF EXISTS g2p_import_household_extra;
                   CREATE TEMPORARY TABLE g2p_import_household_extra (line int, xmlid varchar, %s) ON COMMIT DROP""",
                self._column_definitions(names),
            )
        )

    def _report(self, query, file, code, message):
        """Report each row (line, value, other) of ``query`` as a bad line of ``file``."""
        self.cr.execute(query)
        for line, value, other in self.cr.fetchall():
            self.error(file, line, code, message % {"value": value, "other": other})

    def _check_in_sql(self, area_columns):
        """The checks across lines and against the database (set-based, on the staging tables)."""
        cr = self.cr
        cr.execute(
            "CREATE INDEX ON g2p_import_household (xmlid); CREATE INDEX ON g2p_import_individual (xmlid)"
        )
        cr.execute(
            "ANALYZE g2p_import_household; ANALYZE g2p_import_individual; ANALYZE g2p_import_membership_line"
        )
        duplicates_before = self.error_count
        # External ids: unique across the three files, new in the database.
        for table, file in (
            ("g2p_import_household", HOUSEHOLDS),
            ("g2p_import_individual", INDIVIDUALS),
            ("g2p_import_membership_line", MEMBERSHIPS),
        ):
            self._report(
                SQL(
                    """SELECT line, xmlid, first FROM (
                         SELECT line, xmlid, min(line) OVER (PARTITION BY xmlid) AS first FROM %s WHERE xmlid <> '') t
                       WHERE line > first ORDER BY line""",
                    SQL.identifier(table),
                ),
                file,
                "duplicate_xmlid",
                _("External id %(value)s is also on line %(other)s of this file."),
            )
            self._report(
                SQL(
                    """SELECT s.line, s.xmlid, d.model FROM %s s
                       JOIN ir_model_data d ON d.module = %s AND d.name = s.xmlid ORDER BY s.line""",
                    SQL.identifier(table),
                    IMPORT_MODULE,
                ),
                file,
                "xmlid_exists",
                _(
                    "External id %(value)s is already used (by a %(other)s): this import only adds new records."
                ),
            )
        self._report(
            SQL(
                """SELECT i.line, i.xmlid, h.line FROM g2p_import_individual i
                   JOIN g2p_import_household h ON h.xmlid = i.xmlid ORDER BY i.line"""
            ),
            INDIVIDUALS,
            "duplicate_xmlid",
            _("External id %(value)s is also a household's (line %(other)s of the households file)."),
        )
        # ID numbers: unique among registrants (the partial unique index on res_partner).
        for table, file in (("g2p_import_household", HOUSEHOLDS), ("g2p_import_individual", INDIVIDUALS)):
            if "id_number" not in self.partner_fields[file]:
                continue
            self._report(
                SQL(
                    """SELECT line, id_number, first FROM (
                         SELECT line, id_number, min(line) OVER (PARTITION BY id_number) AS first
                         FROM %s WHERE id_number IS NOT NULL) t
                       WHERE line > first ORDER BY line""",
                    SQL.identifier(table),
                ),
                file,
                "duplicate_id_number",
                _(
                    "ID number %(value)s is also on line %(other)s: each registrant needs their own ID number."
                ),
            )
            self._report(
                SQL(
                    """SELECT s.line, s.id_number, p.id FROM %s s
                       JOIN res_partner p ON p.is_registrant AND p.id_number = s.id_number ORDER BY s.line""",
                    SQL.identifier(table),
                ),
                file,
                "duplicate_id_number",
                _(
                    "ID number %(value)s is already held by registrant #%(other)s: each registrant needs their own ID number."
                ),
            )
        if "id_number" in self.partner_fields[HOUSEHOLDS] and "id_number" in self.partner_fields[INDIVIDUALS]:
            self._report(
                SQL(
                    """SELECT i.line, i.id_number, h.line FROM g2p_import_individual i
                       JOIN g2p_import_household h ON h.id_number = i.id_number ORDER BY i.line"""
                ),
                INDIVIDUALS,
                "duplicate_id_number",
                _("ID number %(value)s is also a household's (line %(other)s of the households file)."),
            )
        if area_columns:
            self._report(
                SQL(
                    """SELECT e.line, e.xmlid, NULL FROM g2p_import_household_extra e
                       WHERE NOT EXISTS (SELECT 1 FROM g2p_import_household h WHERE h.xmlid = e.xmlid) ORDER BY e.line"""
                ),
                HOUSEHOLD_AREAS,
                "unknown_household",
                _("Household %(value)s is not in the households file."),
            )
            self._report(
                SQL(
                    """SELECT line, xmlid, first FROM (
                         SELECT line, xmlid, min(line) OVER (PARTITION BY xmlid) AS first
                         FROM g2p_import_household_extra) t
                       WHERE line > first ORDER BY line"""
                ),
                HOUSEHOLD_AREAS,
                "duplicate_xmlid",
                _("Household %(value)s is also on line %(other)s of this file."),
            )
        self._resolve_memberships(unique=self.error_count == duplicates_before)
        cr.execute("ANALYZE g2p_import_membership")
        # Memberships: households and members from the registry (those of the files are
        # resolved by _resolve_memberships).
        cr.execute(
            SQL(
                """UPDATE g2p_import_membership m SET group_id = p.id
                   FROM ir_model_data d JOIN res_partner p ON p.id = d.res_id AND p.is_group AND p.is_registrant
                   WHERE m.group_id IS NULL AND d.model = 'res.partner'
                     AND d.module = CASE WHEN position('.' in m.group_xmlid) > 0
                         THEN split_part(m.group_xmlid, '.', 1) ELSE %(module)s END
                     AND d.name = CASE WHEN position('.' in m.group_xmlid) > 0
                         THEN substr(m.group_xmlid, position('.' in m.group_xmlid) + 1) ELSE m.group_xmlid END;
                   UPDATE g2p_import_membership m SET individual_id = p.id
                   FROM ir_model_data d JOIN res_partner p ON p.id = d.res_id AND p.is_group IS NOT TRUE AND p.is_registrant
                   WHERE m.individual_id IS NULL AND d.model = 'res.partner'
                     AND d.module = CASE WHEN position('.' in m.individual_xmlid) > 0
                         THEN split_part(m.individual_xmlid, '.', 1) ELSE %(module)s END
                     AND d.name = CASE WHEN position('.' in m.individual_xmlid) > 0
                         THEN substr(m.individual_xmlid, position('.' in m.individual_xmlid) + 1)
                         ELSE m.individual_xmlid END""",
                module=IMPORT_MODULE,
            )
        )
        self._report(
            SQL(
                "SELECT line, group_xmlid, NULL FROM g2p_import_membership WHERE group_id IS NULL ORDER BY line"
            ),
            MEMBERSHIPS,
            "unknown_household",
            _("Household %(value)s is neither in the households file nor a household of the registry."),
        )
        self._report(
            SQL(
                "SELECT line, individual_xmlid, NULL FROM g2p_import_membership WHERE individual_id IS NULL ORDER BY line"
            ),
            MEMBERSHIPS,
            "unknown_individual",
            _("Member %(value)s is neither in the individuals file nor an individual of the registry."),
        )
        # One active household per individual (the partial unique index on g2p_group_membership).
        self._report(
            SQL(
                """SELECT line, individual_xmlid, first FROM (
                     SELECT line, individual_xmlid, min(line) OVER (PARTITION BY individual_id) AS first
                     FROM g2p_import_membership WHERE end_date IS NULL AND individual_id IS NOT NULL) t
                   WHERE line > first ORDER BY line"""
            ),
            MEMBERSHIPS,
            "two_households",
            _(
                "%(value)s would join a second household (also on line %(other)s): an individual belongs to one household at a time."
            ),
        )
        self._report(
            SQL(
                """SELECT m.line, m.individual_xmlid, g.group_id FROM g2p_import_membership m
                   JOIN g2p_group_membership g ON g.individual_id = m.individual_id AND g.end_date IS NULL
                   WHERE m.end_date IS NULL AND NOT m.individual_new ORDER BY m.line"""
            ),
            MEMBERSHIPS,
            "two_households",
            _("%(value)s is already an active member of household #%(other)s: end that membership first."),
        )
        # Unique roles (e.g. Head): at most one active holder per household.
        self._report(
            SQL(
                """WITH roles AS (
                     SELECT m.line, m.group_id, m.group_new, m.group_xmlid, k.id AS kind_id, k.name->>'en_US' AS kind
                     FROM g2p_import_membership m, unnest(m.kind_ids) AS r(kind_id)
                     JOIN g2p_group_membership_kind k ON k.id = r.kind_id AND k.is_unique
                     WHERE m.end_date IS NULL AND m.group_id IS NOT NULL)
                   SELECT line, group_xmlid, kind FROM (
                     SELECT line, group_xmlid, kind, min(line) OVER (PARTITION BY group_id, kind_id) AS first FROM roles) t
                   WHERE line > first
                   UNION ALL
                   SELECT r.line, r.group_xmlid, r.kind FROM roles r
                   JOIN g2p_group_membership g ON g.group_id = r.group_id AND g.end_date IS NULL
                   JOIN g2p_group_membership_g2p_group_membership_kind_rel rel
                     ON rel.g2p_group_membership_id = g.id AND rel.g2p_group_membership_kind_id = r.kind_id
                   WHERE NOT r.group_new
                   ORDER BY 1"""
            ),
            MEMBERSHIPS,
            "unique_role",
            _("Household %(value)s would have two active members with the role %(other)s."),
        )

    def _resolve_memberships(self, unique=True):
        """g2p_import_membership: the memberships read, with the ids of their households and
        members of the files (``group_new`` / ``individual_new`` true; NULL when not in the
        files: looked up in the registry by the checks) and their own new id. One pass, no
        UPDATE of the lines. ``unique``: no external id is twice in the partner files (else
        each resolves to its first line; the import is refused then anyway)."""
        households, individuals = (
            SQL("g2p_import_household"),
            SQL("g2p_import_individual"),
        )
        if not unique:
            households, individuals = (
                SQL("(SELECT DISTINCT ON (xmlid) xmlid, id FROM %s ORDER BY xmlid, line)", table)
                for table in (households, individuals)
            )
        # Temporary tables of this transaction: staging only, no Odoo model behind them.
        self.cr.execute(
            SQL(
                """DROP TABLE IF EXISTS g2p_import_membership;
                   CREATE TEMPORARY TABLE g2p_import_membership ON COMMIT DROP AS
                   SELECT m.*, h.id AS group_id, h.id IS NOT NULL AS group_new,
                          i.id AS individual_id, i.id IS NOT NULL AS individual_new,
                          nextval('g2p_group_membership_id_seq') AS id
                   FROM g2p_import_membership_line m
                   LEFT JOIN %s h ON h.xmlid = m.group_xmlid
                   LEFT JOIN %s i ON i.xmlid = m.individual_xmlid""",
                households,
                individuals,
            )
        )

    def _partner_defaults(self):
        """{column: value} for the stored fields of res.partner a registrant gets from the ORM's
        defaults (``default_get`` once, in the user's context), as column values."""
        Partner = self.Partner
        names = [
            name
            for name, field in Partner._fields.items()
            if field.store and field.column_type and name not in MAGIC and not field.compute
        ]
        defaults = Partner.default_get(names)
        return {
            name: Partner._fields[name].convert_to_column(value, Partner)
            for name, value in defaults.items()
            if Partner._fields[name].column_type
        }

    def _write(self, partner_columns, area_columns):
        """Write the checked lines: res.partner, external ids, memberships and their roles."""
        cr = self.cr
        Partner = self.Partner
        self.progress(0.55, _("Writing households and individuals"))
        # Households of the registry that gain members (resolved to their ids, > 0; the file's are < 0).
        cr.execute("SELECT DISTINCT group_id FROM g2p_import_membership WHERE NOT group_new")
        existing_households = [row[0] for row in cr.fetchall()]
        defaults = self._partner_defaults()
        computed = [
            name
            for name, field in Partner._fields.items()
            if field.store and field.column_type and field.compute and name not in HANDLED_COMPUTED
        ]
        # The households' sizes and their extra columns are joined in their INSERT (hash
        # joins on small tables; no UPDATE pass over the staged lines).
        household_joins = SQL(
            """LEFT JOIN (SELECT group_id, count(*) AS size FROM g2p_import_membership
                          WHERE end_date IS NULL GROUP BY group_id) c ON c.group_id = s.id"""
        )
        if area_columns:
            household_joins = SQL(
                "%s LEFT JOIN g2p_import_household_extra e ON e.xmlid = s.xmlid", household_joins
            )
        # The foreign-key checks of the INSERTs use plans PostgreSQL caches for the whole
        # statement: planned on a small res_partner they scan it sequentially per row while it
        # grows (quadratic; seen in setup/bench.py). Fresh statistics and no sequential scans;
        cr.execute("ANALYZE res_partner; ANALYZE g2p_group_membership; SET LOCAL enable_seqscan = off")
        for table, file, is_group in (
            ("g2p_import_household", HOUSEHOLDS, True),
            ("g2p_import_individual", INDIVIDUALS, False),
        ):
            values = dict(defaults)
            values.update(
                {
                    "is_registrant": SQL("TRUE"),
                    "is_group": SQL("%s", is_group),
                    "commercial_partner_id": SQL("s.id"),
                    "complete_name": SQL("btrim(s.name)"),
                    "commercial_company_name": SQL("NULL"),
                    "partner_share": SQL("TRUE"),
                    # both computed from the parent only: none for a registrant
                    "user_id": SQL("NULL"),
                    "company_registry": SQL("NULL"),
                    "household_size": SQL("COALESCE(c.size, 0)") if is_group else SQL("0"),
                    "create_uid": SQL("%s", self.env.uid),
                    "write_uid": SQL("%s", self.env.uid),
                    "create_date": SQL("(now() AT TIME ZONE 'UTC')"),
                    "write_date": SQL("(now() AT TIME ZONE 'UTC')"),
                }
            )
            for name in self.partner_fields[file] + self.derived:
                values[name] = SQL("s.%s", SQL.identifier(name))
            for name in area_columns if is_group else ():
                values[name] = SQL("COALESCE(e.%s, s.%s)", SQL.identifier(name), SQL.identifier(name))
            values = {
                k: v if isinstance(v, SQL) else SQL("%s", v)
                for k, v in values.items()
                if k in partner_columns
            }
            # Raw SQL: millions of rows, where create() runs ~250 rows/s through load; every column
            # the ORM fills is filled here, and the caches are invalidated below (invalidate_all).
            # No ORDER BY: the ids were given in line order as the lines were copied in, and a
            # scan of the staged lines (probe side of the small hash joins) returns them so.
            cr.execute(
                SQL(
                    "INSERT INTO res_partner (id, %s) SELECT s.id, %s FROM %s s %s",
                    SQL(", ").join(SQL.identifier(k) for k in values),
                    SQL(", ").join(values.values()),
                    SQL.identifier(table),
                    household_joins if is_group else SQL(),
                )
            )
            self.progress(0.7 if is_group else 0.85, _("Writing external ids"))
            cr.execute(
                SQL(
                    """INSERT INTO ir_model_data (module, name, model, res_id, noupdate,
                                                  create_uid, write_uid, create_date, write_date)
                       SELECT %s, s.xmlid, 'res.partner', s.id, FALSE, %s, %s,
                              now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' FROM %s s""",
                    IMPORT_MODULE,
                    self.env.uid,
                    self.env.uid,
                    SQL.identifier(table),
                )
            )
        self.progress(0.9, _("Writing memberships"))
        # Raw SQL as above; memberships have no computed stored column but their dates and roles.
        cr.execute(
            SQL(
                """INSERT INTO g2p_group_membership (id, group_id, individual_id, start_date, end_date,
                                                     create_uid, write_uid, create_date, write_date)
                   SELECT id, group_id, individual_id, start_date, end_date, %s, %s,
                          now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
                   FROM g2p_import_membership""",
                self.env.uid,
                self.env.uid,
            )
        )
        cr.execute(
            SQL(
                """INSERT INTO g2p_group_membership_g2p_group_membership_kind_rel
                          (g2p_group_membership_id, g2p_group_membership_kind_id)
                   SELECT m.id, k FROM g2p_import_membership m, unnest(m.kind_ids) AS k"""
            )
        )
        cr.execute(
            SQL(
                """INSERT INTO ir_model_data (module, name, model, res_id, noupdate,
                                              create_uid, write_uid, create_date, write_date)
                   SELECT %s, xmlid, 'g2p.group.membership', id, FALSE, %s, %s,
                          now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' FROM g2p_import_membership""",
                IMPORT_MODULE,
                self.env.uid,
                self.env.uid,
            )
        )
        cr.execute("SET LOCAL enable_seqscan TO DEFAULT")
        # Statistics of the tables just filled: the ANALYZE above saw them before the rows
        # arrived, and where autovacuum is off or slow the next enrollment over a "small"
        # res_partner planned nested loops (10,000 households: 217 s instead of 2 s).
        cr.execute("ANALYZE res_partner; ANALYZE g2p_group_membership")
        # The ORM's caches know nothing of these rows: drop them; registry caches keyed on
        # partners (e.g. xmlid lookups) too.
        self.env.invalidate_all()
        self.env.registry.clear_cache()
        self._after_write(computed, existing_households)

    def _after_write(self, computed, existing_households):
        """Fields left to the ORM: any stored computed field of another module (none in the
        suite), and the size of registry households that gained members."""
        cr = self.cr
        Partner = self.Partner
        if computed:
            cr.execute("SELECT id FROM g2p_import_household UNION ALL SELECT id FROM g2p_import_individual")
            new = Partner.browse([row[0] for row in cr.fetchall()])
            for name in computed:
                _logger.info("Registry import: %s computed by the ORM for %s partners", name, len(new))
                self.env.add_to_compute(Partner._fields[name], new)
        existing = Partner.browse(existing_households)
        if existing:
            self.env.add_to_compute(Partner._fields["household_size"], existing)
        self.env.flush_all()


class G2PRegistryImport(models.TransientModel):
    _name = "g2p.registry.import"
    _description = "Registry import (households, individuals, memberships)"

    # ------------------------------------------------------------------
    # Files
    # ------------------------------------------------------------------
    households_file = fields.Binary(string="Households (CSV)", attachment=True)
    households_filename = fields.Char()
    individuals_file = fields.Binary(string="Individuals (CSV)", attachment=True)
    individuals_filename = fields.Char()
    memberships_file = fields.Binary(string="Memberships (CSV)", attachment=True)
    memberships_filename = fields.Char()
    household_areas_file = fields.Binary(
        string="Household columns (CSV, optional)",
        attachment=True,
        help="More columns for the households of the households file, by their id (e.g. area_id/id).",
    )
    household_areas_filename = fields.Char()
    part_ids = fields.One2many(
        "g2p.registry.import.part",
        "import_id",
        string="More parts",
        help="Files too large for one upload, sent in parts over the API: each part continues "
        "the file of its kind (after the file above, if any) byte for byte.",
    )

    # ------------------------------------------------------------------
    # Progress and result
    # ------------------------------------------------------------------
    state = fields.Selection(
        [("draft", "To import"), ("running", "Running"), ("done", "Imported"), ("failed", "Refused")],
        default="draft",
        required=True,
    )
    progress = fields.Float(
        compute="_compute_progress", help="Percentage done, updated while the import runs."
    )
    progress_message = fields.Char(compute="_compute_progress")
    job_uuid = fields.Char(readonly=True)
    households_count = fields.Integer(string="Households", readonly=True)
    individuals_count = fields.Integer(string="Individuals", readonly=True)
    memberships_count = fields.Integer(string="Memberships", readonly=True)
    error_count = fields.Integer(string="Bad lines", readonly=True)
    result_text = fields.Text(string="Bad lines (file, line, reason)", readonly=True)
    seconds = fields.Float(readonly=True)

    def _compute_progress(self):
        # The running job tells its progress on rows of their own (see _job_import).
        rows = self.env["g2p.registry.import.progress"].search([("import_id", "in", self.ids)])
        by_import = {row.import_id.id: row for row in rows}
        for wizard in self:
            row = by_import.get(wizard.id)
            if wizard.state in ("done", "failed"):
                wizard.progress = 100.0
                wizard.progress_message = (
                    _("Imported") if wizard.state == "done" else _("Refused: nothing imported")
                )
            else:
                wizard.progress = row.progress if row else 0.0
                wizard.progress_message = row.message if row else False
            if wizard.state == "running" and wizard.job_uuid:
                # sudo: officers have no access to queue.job; only the state of this wizard's own job is read.
                job = self.env["queue.job"].sudo().search([("uuid", "=", wizard.job_uuid)], limit=1)
                if job.state == "failed":
                    wizard.progress_message = _(
                        "The import job failed, nothing was imported: %s", (job.exc_message or "")[:300]
                    )

    # ------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------
    def action_import(self):
        """Button: import the files now, or as a queue_job job when they hold more lines than
        the system parameter ``g2p_programs_ext.async_threshold`` (the form then shows the
        progress). Refused with ``[missing_file]`` when no households nor individuals file is
        given. Returns the action that shows this wizard again."""
        self.ensure_one()
        self._check_import_rights()
        pieces = self._file_pieces()
        if not (pieces[HOUSEHOLDS] or pieces[INDIVIDUALS] or pieces[MEMBERSHIPS]):
            message = "[%s] %s" % ("missing_file", _("Choose at least one file to import."))
            raise UserError(message)
        if self.state == "running":
            message = "[%s] %s" % ("running", _("This import is already running: wait for it to end."))
            raise UserError(message)
        threshold = int(
            self.env["ir.config_parameter"].sudo().get_param("g2p_programs_ext.async_threshold", 1000)
        )
        lines = 0
        for name in (HOUSEHOLDS, INDIVIDUALS, MEMBERSHIPS):
            lines += _count_lines(pieces[name], stop=threshold - lines)
        if lines > threshold:
            self.write({"state": "running", "result_text": False})
            self.env["g2p.registry.import.progress"].create({"import_id": self.id, "message": _("Queued")})
            job = self.with_delay(description=_("Registry import (over %s lines)", threshold))._job_import()
            self.job_uuid = job.uuid
        else:
            self._job_import()
        return self._reopen()

    def _reopen(self):
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
            "name": _("Import the registry"),
        }

    # ------------------------------------------------------------------
    # Public API (XML-RPC)
    # ------------------------------------------------------------------
    @api.model
    def import_registry(self, households="", individuals="", memberships="", household_areas=""):
        """Import households, individuals and memberships from CSV files, all or nothing.

        :param households: the households file (``res.partner``, ``is_group`` True), as CSV
            text, base64 (of UTF-8 or gzip) or bytes; columns of the demo's
            ``res.partner.groups.csv``: ``id``, ``name``, ``is_registrant``, ``is_group``,
            ``street``, ``city``, ``country_id/id``, ...
        :param individuals: the individuals file, columns of ``res.partner.individuals.csv``
            (``id_number``, ``birthdate`` ISO, ``gender`` female|male|other, ``has_disability``,
            ``is_pregnant``, ``phone``, ...).
        :param memberships: ``g2p.group.membership.csv``: ``id``, ``group_id/id``,
            ``individual_id/id`` (external ids in the files or the registry), ``kind_ids/id``
            (comma-separated), ``start_date`` (default today), ``end_date``.
        :param household_areas: optional, more columns of the file's households by ``id``
            (the demo's ``res.partner.areas.csv``: ``area_id/id``).
        :return: dict ``ok``, ``imported`` (bool), ``households``, ``individuals``,
            ``memberships`` (lines), ``error_count``, ``errors`` (up to 1,000 dicts ``file``,
            ``line``, ``code``, ``message``; the message starts with the bracketed code),
            ``seconds``. When a line is bad nothing is written.
        :raise AccessError: ``[not_allowed]`` for a user who may not create registrants
            (program officers and managers may).
        """
        self._check_import_rights()
        run = RegistryImportRun(self.env, self._registry_import_fields())
        return run.run(households, individuals, memberships, household_areas)

    # ------------------------------------------------------------------
    # Jobs and helpers
    # ------------------------------------------------------------------
    def _job_import(self):
        """Run the import of this wizard's files (job or direct) and store its result."""
        self.ensure_one()
        self._check_import_rights()
        wizard_id = self.id
        registry = self.env.registry
        last = [0.0]

        def progress(fraction, message):
            # Raw SQL on its own short transaction, so that the form sees the progress while
            # this one runs; on a progress row of its own, which this transaction never
            # writes (two writers of one row would fail this one at commit).
            now = time.time()
            if now - last[0] < 1.0 and fraction < 1.0:
                return
            last[0] = now
            with registry.cursor() as cr:
                cr.execute(
                    SQL(
                        "UPDATE g2p_registry_import_progress SET progress = %s, message = %s WHERE import_id = %s",
                        round(100.0 * fraction, 1),
                        message,
                        wizard_id,
                    )
                )

        files = self._file_pieces()
        run = RegistryImportRun(
            self.env, self._registry_import_fields(), progress=progress if self.state == "running" else None
        )
        result = run.run(files[HOUSEHOLDS], files[INDIVIDUALS], files[MEMBERSHIPS], files[HOUSEHOLD_AREAS])
        lines = [
            "%s, line %s: %s" % (error["file"], error["line"], error["message"]) for error in result["errors"]
        ]
        if result["error_count"] > len(lines):
            lines.append(_("... and %s more bad lines.", result["error_count"] - len(lines)))
        self.invalidate_recordset()
        self.write(
            {
                "state": "done" if result["ok"] else "failed",
                "households_count": result["households"],
                "individuals_count": result["individuals"],
                "memberships_count": result["memberships"],
                "error_count": result["error_count"],
                "result_text": "\n".join(lines) or False,
                "seconds": result["seconds"],
            }
        )
        return result

    def _file_pieces(self):
        """{file: [(size in bytes, loader)]}: each file of this wizard, its field's content
        then its parts by sequence, read from the filestore only when the import reaches
        them (the attachments of this wizard and its parts; never all in memory at once)."""
        self.ensure_one()
        # sudo: the attachments of this wizard's own binary fields (and its parts'), which
        # the user could read through the fields; read one at a time, by id.
        Attachment = self.env["ir.attachment"].sudo()
        attachments = Attachment.search(
            [
                "|",
                "&",
                "&",
                ("res_model", "=", self._name),
                ("res_id", "=", self.id),
                ("res_field", "in", [name + "_file" for name in FILES]),
                "&",
                "&",
                ("res_model", "=", "g2p.registry.import.part"),
                ("res_id", "in", self.part_ids.ids),
                ("res_field", "=", "data"),
            ]
        )
        by_owner = {(a.res_model, a.res_id, a.res_field): a for a in attachments}

        def piece(attachment):
            # As ir.attachment's raw, without keeping the bytes in the record cache.
            def load():
                if attachment.store_fname:
                    return attachment._file_read(attachment.store_fname)
                return attachment.db_datas or b""

            return (attachment.file_size, load)

        files = {}
        for name in FILES:
            files[name] = []
            own = by_owner.get((self._name, self.id, name + "_file"))
            if own:
                files[name].append(piece(own))
            for part in self.part_ids.filtered(lambda p, name=name: p.file == name).sorted(
                lambda p: (p.sequence, p.id)
            ):
                attachment = by_owner.get((part._name, part.id, "data"))
                if attachment:
                    files[name].append(piece(attachment))
        return files

    def _check_import_rights(self):
        """Registry officers (and managers) may import: they may create registrants and memberships."""
        if not self.env.user.has_group("g2p_programs_ext.group_program_officer"):
            message = "[%s] %s" % (
                "not_allowed",
                _("Only program officers and managers may import the registry."),
            )
            raise AccessError(message)
        self.env["res.partner"].check_access_rights("create")
        self.env["g2p.group.membership"].check_access_rights("create")

    @api.model
    def _registry_import_fields(self):
        """Hook: the res.partner fields each file may set, {file: [field names]}; other
        addons extend it (``spp_service_points`` adds ``area_id``)."""
        Partner = self.env["res.partner"]
        common = ["name", "street", "street2", "zip", "city", "country_id", "phone", "mobile", "email"]
        individual = common + ["id_number", "birthdate", "gender", "has_disability", "is_pregnant"]
        return {
            HOUSEHOLDS: [n for n in common + ["id_number"] if n in Partner._fields],
            INDIVIDUALS: [n for n in individual if n in Partner._fields],
        }


class G2PRegistryImportProgress(models.TransientModel):
    _name = "g2p.registry.import.progress"
    _description = "Progress of a registry import"

    import_id = fields.Many2one("g2p.registry.import", required=True, ondelete="cascade", index=True)
    progress = fields.Float(help="Percentage done.")
    message = fields.Char()


class G2PRegistryImportPart(models.TransientModel):
    _name = "g2p.registry.import.part"
    _description = "Part of a registry import's file"
    _order = "import_id, file, sequence, id"

    import_id = fields.Many2one("g2p.registry.import", required=True, ondelete="cascade", index=True)
    file = fields.Selection(
        [
            (HOUSEHOLDS, "Households"),
            (INDIVIDUALS, "Individuals"),
            (MEMBERSHIPS, "Memberships"),
            (HOUSEHOLD_AREAS, "Household columns"),
        ],
        required=True,
    )
    sequence = fields.Integer(default=10, help="Parts of one file are read by sequence, then by creation.")
    data = fields.Binary(
        string="Part",
        attachment=True,
        required=True,
        help="Bytes of the file (gzip or not) continuing the previous part; the CSV header only in the first.",
    )

    @api.model_create_multi
    def create(self, vals_list):
        """Parts are added to an import that has not started: refused with ``[running]``
        otherwise (a running import would not see them, or would see half of them)."""
        parts = super().create(vals_list)
        for wizard in parts.import_id:
            if wizard.state != "draft":
                message = "[%s] %s" % ("running", _("This import has started: its files cannot change."))
                raise UserError(message)
        return parts
