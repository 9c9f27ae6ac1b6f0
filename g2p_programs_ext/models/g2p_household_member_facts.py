import logging

from odoo import api, fields, models, sql_db
from odoo.tools import SQL

_logger = logging.getLogger(__name__)

# The facts of a household's active members, aggregated (one row per household with at
# least one active member; none: no member). Birthdates, never ages: an age changes with
# the date, a birthdate does not, so the summary never goes stale. Besides the earliest and
# latest, every birthdate, sorted (``birthdates``, a date[] without NULLs: the members who
# have one): how many members are born on or before a date is then one binary search
# (``width_bucket(date, birthdates)``), which answers ``size(members.filter(m, m.age < 5))``.
#
# Kept by PostgreSQL itself: statement-level triggers (with transition tables) on
# g2p_group_membership (insert, update, delete) and res_partner (update of a member's
# birthdate, pregnancy or disability) refresh the households they touch, set-based, in
# the same transaction. Triggers rather than ORM overrides because members change by
# several paths that bypass the ORM (the registry import's INSERT ... SELECT, cascaded
# deletes, the benchmark's COPY): a trigger covers each of them, once, and no path can
# forget it; the ORM never caches these rows (they are read in SQL only, by cel_sql).
REFRESH_FUNCTION = """
CREATE OR REPLACE FUNCTION g2p_member_facts_refresh(gids int[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- the same members as cel_sql's `members` and res.partner.active_members_by_group():
    -- memberships without an end date
    DELETE FROM g2p_household_member_facts f
     WHERE f.group_id = ANY(gids)
       AND NOT EXISTS (SELECT 1 FROM g2p_group_membership gm
                        WHERE gm.group_id = f.group_id AND gm.end_date IS NULL);
    INSERT INTO g2p_household_member_facts AS f
           (group_id, member_count, birthdate_min, birthdate_max, birthdate_missing,
            pregnant_count, disability_count, birthdates)
    SELECT gm.group_id, count(*), min(p.birthdate), max(p.birthdate),
           count(*) FILTER (WHERE p.birthdate IS NULL),
           count(*) FILTER (WHERE p.is_pregnant), count(*) FILTER (WHERE p.has_disability),
           coalesce(array_agg(p.birthdate ORDER BY p.birthdate) FILTER (WHERE p.birthdate IS NOT NULL),
                    '{}'::date[])
      FROM (SELECT DISTINCT g FROM unnest(gids) g WHERE g IS NOT NULL) h
      JOIN g2p_group_membership gm ON gm.group_id = h.g AND gm.end_date IS NULL
      JOIN res_partner p ON p.id = gm.individual_id
     GROUP BY gm.group_id
    ON CONFLICT (group_id) DO UPDATE
       SET member_count = EXCLUDED.member_count, birthdate_min = EXCLUDED.birthdate_min,
           birthdate_max = EXCLUDED.birthdate_max, birthdate_missing = EXCLUDED.birthdate_missing,
           pregnant_count = EXCLUDED.pregnant_count, disability_count = EXCLUDED.disability_count,
           birthdates = EXCLUDED.birthdates
     WHERE (f.member_count, f.birthdate_min, f.birthdate_max, f.birthdate_missing,
            f.pregnant_count, f.disability_count, f.birthdates)
           IS DISTINCT FROM
           (EXCLUDED.member_count, EXCLUDED.birthdate_min, EXCLUDED.birthdate_max,
            EXCLUDED.birthdate_missing, EXCLUDED.pregnant_count, EXCLUDED.disability_count,
            EXCLUDED.birthdates);
END $$
"""

TRIGGER_FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION g2p_member_facts_on_membership() RETURNS trigger
       LANGUAGE plpgsql AS $$
       BEGIN
           IF TG_OP = 'INSERT' THEN
               PERFORM g2p_member_facts_refresh(ARRAY(SELECT DISTINCT group_id FROM new_rows));
           ELSIF TG_OP = 'DELETE' THEN
               PERFORM g2p_member_facts_refresh(ARRAY(SELECT DISTINCT group_id FROM old_rows));
           ELSE
               -- the households of the memberships whose household, member or end changed
               PERFORM g2p_member_facts_refresh(ARRAY(
                   SELECT unnest(ARRAY[o.group_id, n.group_id])
                     FROM old_rows o JOIN new_rows n ON n.id = o.id
                    WHERE (o.group_id, o.individual_id, o.end_date IS NULL)
                          IS DISTINCT FROM (n.group_id, n.individual_id, n.end_date IS NULL)));
           END IF;
           RETURN NULL;
       END $$""",
    """CREATE OR REPLACE FUNCTION g2p_member_facts_on_partner() RETURNS trigger
       LANGUAGE plpgsql AS $$
       BEGIN
           -- the households of the members whose summarised facts changed
           PERFORM g2p_member_facts_refresh(ARRAY(
               SELECT DISTINCT gm.group_id
                 FROM old_rows o JOIN new_rows n ON n.id = o.id
                 JOIN g2p_group_membership gm ON gm.individual_id = n.id AND gm.end_date IS NULL
                WHERE (o.birthdate, o.is_pregnant, o.has_disability)
                      IS DISTINCT FROM (n.birthdate, n.is_pregnant, n.has_disability)));
           RETURN NULL;
       END $$""",
]

TRIGGERS = [
    ("g2p_group_membership", "INSERT", "NEW TABLE AS new_rows", "g2p_member_facts_on_membership"),
    (
        "g2p_group_membership",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "g2p_member_facts_on_membership",
    ),
    ("g2p_group_membership", "DELETE", "OLD TABLE AS old_rows", "g2p_member_facts_on_membership"),
    ("res_partner", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows", "g2p_member_facts_on_partner"),
]

# The whole summary, from the memberships (init's rebuild; the tests compare with it)
SUMMARY = """
SELECT gm.group_id, count(*), min(p.birthdate), max(p.birthdate), count(*) FILTER (WHERE p.birthdate IS NULL),
       count(*) FILTER (WHERE p.is_pregnant), count(*) FILTER (WHERE p.has_disability),
       coalesce(array_agg(p.birthdate ORDER BY p.birthdate) FILTER (WHERE p.birthdate IS NOT NULL), '{}'::date[])
  FROM g2p_group_membership gm JOIN res_partner p ON p.id = gm.individual_id
 WHERE gm.end_date IS NULL
 GROUP BY gm.group_id
"""
FILL = (
    "INSERT INTO g2p_household_member_facts (group_id, member_count, birthdate_min, birthdate_max,"
    " birthdate_missing, pregnant_count, disability_count, birthdates) " + SUMMARY
)


def drop_triggers(cr):
    """Remove the summary's triggers (init() and the uninstall hook)."""
    for table, event, _referencing, _function in TRIGGERS:
        name = "g2p_member_facts_%s_%s" % (table, event.lower())
        cr.execute(SQL("DROP TRIGGER IF EXISTS %s ON %s", SQL.identifier(name), SQL.identifier(table)))


class G2PHouseholdMemberFacts(models.Model):
    """Per household, the facts of its active members that answer CEL atoms over
    ``members`` without reading the members (``cel_sql``: ``members.exists(m, A || B)``
    with atoms such as ``m.age < 5`` or ``m.is_pregnant``, ``size(members)``, and
    ``size(members.filter(m, A))`` for one such atom).

    Maintained by PostgreSQL triggers on every path (see above); read in SQL only, by
    the eligible count and enrollment over the ORM's own query of the households (so
    record rules apply there) and by generation over the cycle's members; through the ORM only administrators may read it (it
    summarises members of every company).
    ``_refresh(household_ids)`` recomputes given households; ``init()`` (install and
    every upgrade) rebuilds the whole table and installs the triggers.
    """

    _name = "g2p.household.member.facts"
    _description = "Household member facts (CEL summary)"
    _log_access = False

    # ------------------------------------------------------------------
    # Fields
    # ------------------------------------------------------------------
    group_id = fields.Many2one(
        "res.partner", string="Household", required=True, ondelete="cascade", readonly=True
    )
    member_count = fields.Integer(readonly=True, help="Active members (memberships without an end date).")
    birthdate_min = fields.Date(readonly=True, help="Earliest birthdate among the members who have one.")
    birthdate_max = fields.Date(readonly=True, help="Latest birthdate among the members who have one.")
    birthdate_missing = fields.Integer(readonly=True, help="Members without a birthdate (no age).")
    pregnant_count = fields.Integer(readonly=True)
    disability_count = fields.Integer(readonly=True)
    # ``birthdates date[]``: the members' birthdates, sorted, without NULLs ('{}': none has
    # one). A column of init()'s, not a field: Odoo has no array field, and only cel_sql
    # reads it, in SQL (width_bucket needs the array itself).

    def init(self):
        cr = self.env.cr
        cr.execute(
            "ALTER TABLE g2p_household_member_facts ADD COLUMN IF NOT EXISTS birthdates date[] NOT NULL DEFAULT '{}'"
        )
        # One row per household (ON CONFLICT of the refresh); the other columns included so
        # that the eligible count reads the summary by an index-only scan, merged in id
        # order with the households' index on res_partner (res.partner's init()).
        cr.execute(
            """CREATE UNIQUE INDEX IF NOT EXISTS g2p_household_member_facts_group_id_uniq
               ON g2p_household_member_facts (group_id)
               INCLUDE (member_count, birthdate_min, birthdate_max, birthdate_missing,
                        pregnant_count, disability_count)"""
        )
        cr.execute(REFRESH_FUNCTION)
        for statement in TRIGGER_FUNCTIONS:
            cr.execute(statement)
        drop_triggers(cr)
        for table, event, referencing, function in TRIGGERS:
            name = "g2p_member_facts_%s_%s" % (table, event.lower())
            cr.execute(
                SQL(
                    "CREATE TRIGGER %s AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION %s()",
                    SQL.identifier(name),
                    SQL(event),
                    SQL.identifier(table),
                    SQL(referencing),
                    SQL.identifier(function),
                )
            )
        # Rebuilt from the memberships on install and upgrade (data written before the
        # triggers existed, or by a restore without them); then fresh statistics, as
        # autovacuum may be off.
        cr.execute("TRUNCATE g2p_household_member_facts")
        cr.execute(FILL)
        cr.execute("ANALYZE g2p_household_member_facts")

    @api.model
    def _cron_vacuum(self):
        """VACUUM (ANALYZE) of the registry's tables that the eligible count reads, when
        PostgreSQL's autovacuum is off (it does this itself otherwise): an index-only scan
        skips the table only on pages the visibility map marks all-visible, and only a
        VACUUM sets it. Runs outside any transaction (VACUUM cannot run inside one), on a
        connection of its own. Scheduled daily (data/ir_cron_data.xml); the benchmark
        calls it after building its registry.

        :return: True
        """
        self.env.cr.execute("SELECT current_setting('autovacuum') = 'on'")
        if self.env.cr.fetchone()[0] and not self.env.context.get("g2p_force_vacuum"):
            return True
        tables = ["res_partner", "g2p_group_membership", "g2p_household_member_facts"]
        with sql_db.db_connect(self.env.cr.dbname).cursor() as cr:
            cr._cnx.autocommit = True
            try:
                # never queue behind a long lock on the registry (the next day's run will do)
                cr.execute("SET lock_timeout = '60s'")
                for table in tables:
                    cr.execute(SQL("VACUUM (ANALYZE) %s", SQL.identifier(table)))
            finally:
                cr._cnx.autocommit = False
        _logger.info("Vacuumed %s.", ", ".join(tables))
        return True

    def _refresh(self, household_ids):
        """Recompute the summary of the households ``household_ids`` (res.partner ids)
        from their memberships, in SQL; the triggers call the same function, so this is
        only needed after a write that bypassed them (e.g. with triggers disabled).

        :return: True
        """
        self.env["res.partner"].flush_model(["birthdate", "is_pregnant", "has_disability"])
        self.env["g2p.group.membership"].flush_model(["group_id", "individual_id", "end_date"])
        self.env.cr.execute(SQL("SELECT g2p_member_facts_refresh(%s::int[])", list(household_ids)))
        self.invalidate_model()
        return True
