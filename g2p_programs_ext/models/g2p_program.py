import logging
import re

from odoo import _, api, fields, models
from odoo.addons.queue_job.delay import chain, group
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.osv import expression
from odoo.tools import SQL
from odoo.tools.safe_eval import safe_eval

from .. import cel, cel_sql, input_check
from ..refusal import coded

_logger = logging.getLogger(__name__)

DEFAULT_ASYNC_THRESHOLD = 1000
ANALYZE_AFTER = 10000  # memberships inserted by one enrollment statement
BATCH_SIZE = 5000
# The eligibility rows of a text answered by the household summary alone (see _eligibility_sql)
_SUMMARY_ONLY = re.compile(r"\) p\(id\) LEFT JOIN g2p_household_member_facts ")


class G2PProgram(models.Model):
    _name = "g2p.program"
    _description = "Social protection program"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "id desc"
    _check_company_auto = True

    # ------------------------------------------------------------------
    # Identity
    # ------------------------------------------------------------------
    name = fields.Char(required=True, tracking=True)
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, index=True
    )
    currency_id = fields.Many2one(
        "res.currency", required=True, default=lambda self: self.env.company.currency_id
    )
    state = fields.Selection(
        [("active", "Active"), ("ended", "Ended")], default="active", required=True, tracking=True
    )
    locked = fields.Boolean(readonly=True, copy=False, help="Set while the program's jobs run.")
    locked_reason = fields.Char(readonly=True, copy=False)

    # ------------------------------------------------------------------
    # Targeting
    # ------------------------------------------------------------------
    target_type = fields.Selection(
        [("group", "Households"), ("individual", "Individuals")],
        default="group",
        required=True,
        tracking=True,
    )
    eligibility_domain = fields.Text(
        default="[]",
        help="Odoo domain on registrants (res.partner); both it and the CEL expression must hold.",
    )
    eligibility_expression = fields.Text(
        string="Eligibility expression (CEL)",
        help="Optional CEL expression over `me` and `members`, e.g. "
        "`size(members.filter(m, m.age < 5)) > 0 || me.has_disability`.",
    )
    eligible_preview_count = fields.Integer(
        compute="_compute_eligible_preview_count",
        string="Eligible now",
        help="Registrants of the target type eligible today: domain and CEL expression, one SQL "
        "count when the expression runs in SQL (else the domain alone; the Preview button then "
        "evaluates the expression per beneficiary).",
    )
    eligibility_path = fields.Char(
        compute="_compute_eligibility_path",
        string="Expression evaluated",
        help="Whether the eligibility expression runs in SQL or per beneficiary, and why.",
    )

    # ------------------------------------------------------------------
    # Cycles
    # ------------------------------------------------------------------
    start_date = fields.Date(required=True, default=fields.Date.context_today, tracking=True)
    cycle_duration = fields.Integer(default=30, required=True, help="Days in a cycle.", tracking=True)
    cycle_ids = fields.One2many("g2p.cycle", "program_id", string="Cycles")
    cycle_count = fields.Integer(compute="_compute_counts")

    # ------------------------------------------------------------------
    # Beneficiaries
    # ------------------------------------------------------------------
    program_membership_ids = fields.One2many("g2p.program.membership", "program_id", string="Memberships")
    beneficiary_count = fields.Integer(compute="_compute_counts", string="Enrolled")

    # ------------------------------------------------------------------
    # Entitlement managers (one of each kind; cash and in-kind together: a basket)
    # ------------------------------------------------------------------
    entitlement_manager_cash_ids = fields.One2many(
        "g2p.program.entitlement.manager.cash", "program_id", string="Cash entitlement manager"
    )

    _sql_constraints = [
        ("cycle_duration_positive", "CHECK (cycle_duration > 0)", "A cycle lasts at least one day."),
    ]

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            input_check.check_vals(self, vals)
        if not self.env.su and any(vals.get("locked") or vals.get("locked_reason") for vals in vals_list):
            self.check_access_rights("create")  # a role without the right hears so first
            raise UserError(
                coded("use_actions", _("A program's lock belongs to its jobs: it cannot be set directly."))
            )
        return super().create(vals_list)

    def write(self, vals):
        input_check.check_vals(self, vals)
        if not self.env.su and ("locked" in vals or "locked_reason" in vals):
            self.check_access_rights("write")
            raise UserError(
                coded("use_actions", _("A program's lock belongs to its jobs: it cannot be set directly."))
            )
        return super().write(vals)

    def _compute_counts(self):
        """Two grouped queries for all programs in ``self``."""
        cycles = dict(
            self.env["g2p.cycle"]._read_group([("program_id", "in", self.ids)], ["program_id"], ["__count"])
        )
        enrolled = dict(
            self.env["g2p.program.membership"]._read_group(
                [("program_id", "in", self.ids), ("state", "=", "enrolled")], ["program_id"], ["__count"]
            )
        )
        for program in self:
            program.cycle_count = cycles.get(program, 0)
            program.beneficiary_count = enrolled.get(program, 0)

    def init(self):
        # The CEL -> SQL helpers (cel_sql.FUNCTIONS): int64 and IEEE double arithmetic, ages.
        for statement in cel_sql.FUNCTIONS:
            self.env.cr.execute(statement)

    @api.depends("target_type", "eligibility_domain", "eligibility_expression")
    def _compute_eligible_preview_count(self):
        for program in self:
            try:
                counts = program._eligibility_counts(sql_only=True)
                program.eligible_preview_count = counts[0] if counts else len(program._candidate_ids())
            except (ValidationError, UserError):
                program.eligible_preview_count = 0

    @api.depends("eligibility_expression")
    def _compute_eligibility_path(self):
        for program in self:
            program.eligibility_path = cel.path_label(program.eligibility_expression)

    def action_preview_eligibility(self):
        """How many registrants are eligible now (domain and CEL expression), without
        enrolling anyone. :return: a notification action (dict)."""
        self.ensure_one()
        eligible, errors, candidates = self._eligibility_counts()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": _("Eligibility of %s", self.name),
                "message": _(
                    "%(eligible)s eligible of %(candidates)s passing the domain; %(errors)s skipped on a CEL error.",
                    eligible=eligible,
                    candidates=candidates,
                    errors=errors,
                ),
                "sticky": True,
                "type": "warning" if errors else "info",
            },
        }

    @api.constrains("cycle_duration")
    def _check_cycle_duration(self):
        for program in self:
            if program.cycle_duration <= 0:
                raise ValidationError(
                    coded("bad_value", _("Program %s: a cycle lasts at least one day.", program.name))
                )

    @api.constrains("eligibility_domain")
    def _check_eligibility_domain(self):
        for program in self:
            program._parse_domain(program.eligibility_domain, _("The eligibility domain of %s", program.name))

    @api.constrains("eligibility_expression")
    def _check_eligibility_expression(self):
        for program in self:
            cel.check_expression(
                program.eligibility_expression, _("The eligibility expression of %s", program.name)
            )

    # ------------------------------------------------------------------
    # Helpers shared with managers (conditions are domains too)
    # ------------------------------------------------------------------
    @api.model
    def _parse_domain(self, text, label):
        """Parse a domain text on res.partner; ValidationError naming ``label`` when it
        does not parse or names an unknown field. Returns the domain (a list)."""
        if not text or not text.strip():
            return []
        try:
            domain = safe_eval(text)
            if not isinstance(domain, list | tuple):
                raise ValueError(_("a domain is a list of conditions, e.g. [('age', '>=', 60)]"))
            domain = list(domain)
            expression.expression(domain, self.env["res.partner"].sudo())
        except Exception as exc:
            raise ValidationError(
                coded(
                    "invalid_domain",
                    _(
                        "%(label)s is not a valid domain on registrants: %(error)s",
                        label=label,
                        error=exc,
                    ),
                )
            ) from None
        return domain

    def _registrant_domain(self):
        self.ensure_one()
        base = [("is_registrant", "=", True), ("is_group", "=", self.target_type == "group")]
        return expression.AND([base, self._parse_domain(self.eligibility_domain, self.name)])

    def _candidate_query(self, id_range=None):
        """The ORM's query (odoo.tools.Query on res.partner) of the registrants that pass
        the domain, ids in ``id_range`` ((first, last), None: no bound)."""
        domain = self._registrant_domain()
        first, last = id_range or (None, None)
        if first is not None:
            domain = expression.AND([domain, [("id", ">=", first)]])
        if last is not None:
            domain = expression.AND([domain, [("id", "<=", last)]])
        partners = self.env["res.partner"].sudo().with_context(active_test=False)
        return partners._search(domain, order="id")

    def _candidate_ids(self, id_range=None):
        """Registrants (res.partner ids, ascending) that pass the domain, in SQL."""
        return self._candidate_query(id_range).get_result_ids()

    def _compiled_expression(self):
        """The eligibility expression compiled for SQL (cel_sql.Compiled), or None when
        there is none or it has no SQL form (then it runs per beneficiary)."""
        self.ensure_one()
        text = (self.eligibility_expression or "").strip()
        if not text or self.env.context.get("cel_per_beneficiary"):
            return None
        try:
            return cel_sql.compile_expression(text)
        except Exception:  # no SQL form, or does not parse (the save checks say why)
            return None

    def _eligibility_sql(self, candidates_sql):
        """SQL of rows (id, ok) over ``candidates_sql`` (an SQL subquery of res.partner
        ids): ok true = eligible, false = not, NULL = the expression errs (skipped and
        counted). None when the expression runs per beneficiary."""
        text = (self.eligibility_expression or "").strip()
        if not text:
            return SQL("SELECT p.id, true AS ok FROM res_partner p WHERE p.id IN %s", candidates_sql)
        compiled = self._compiled_expression()
        if compiled is None:
            return None
        value, joins = compiled.parts(
            "p",
            fields.Date.context_today(self),
            candidates_sql,
            member_facts=not self.env.context.get("cel_grouped_pass"),
        )
        if compiled.type != "bool":  # not true: not eligible, but its errors still count
            value = SQL("(CASE WHEN %s IS NULL THEN NULL ELSE false END)", value)
        if not re.search(r"(?<![\w.])p\.(?!id\b)", value.code + joins.code):
            # nothing read from the registrant's row but its id (e.g. the demo's rule over
            # the household summary): the candidates alone, without a second pass over
            # res_partner to join them back
            return SQL("SELECT p.id, %s AS ok FROM %s p(id) %s", value, candidates_sql, joins)
        return SQL(
            "SELECT p.id, %s AS ok FROM res_partner p %s WHERE p.id IN %s", value, joins, candidates_sql
        )

    def _eligibility_counts(self, sql_only=False):
        """(eligible, CEL errors, candidates) now: one SQL count when the expression
        compiles, else per beneficiary (None instead when ``sql_only``)."""
        self.ensure_one()
        query = self._candidate_query()
        # Raw SQL: one aggregate over the ORM's own query (record rules as for its search);
        # flushed first, nothing written.
        self.env["res.partner"].flush_model()
        self.env["g2p.group.membership"].flush_model()
        rows = self._eligibility_sql(query.subselect())
        # JIT compiling these many expressions costs seconds and saves nothing here; the
        # grouped aggregate over the members spills to disk with the default 4 MB
        self.env.cr.execute("SET LOCAL jit = off")
        self.env.cr.execute("SET LOCAL work_mem = '64MB'")
        if rows is not None:
            # Candidates and household summary only (no grouped pass, no registrant row):
            # both are read by index-only scans in id order; merging them was about twice
            # as fast as the parallel hash join the planner picks (1,000,000 households:
            # 0.68-0.76 s against 1.47-1.57 s, load 8.8), whose probes of a 63 MB table
            # miss the caches. For this statement only.
            merge = _SUMMARY_ONLY.search(rows.code) is not None and "GROUP BY" not in rows.code
            if merge:
                self.env.cr.execute("SET LOCAL enable_hashjoin = off")
            self.env.cr.execute(
                SQL(
                    "SELECT count(*) FILTER (WHERE ok), count(*) FILTER (WHERE ok IS NULL), count(*) FROM (%s) c",
                    rows,
                )
            )
            counts = self.env.cr.fetchone()
            if merge:
                self.env.cr.execute("SET LOCAL enable_hashjoin TO DEFAULT")
            return counts
        if sql_only:
            return None
        candidates = query.get_result_ids()
        evaluator = cel.Evaluator(self.env, self.eligibility_expression, self.name)
        eligible = self._eligible_ids(candidates, evaluator)
        return len(eligible), evaluator.errors, len(candidates)

    def _eligible_ids(self, candidate_ids, evaluator=None):
        """The candidates (res.partner ids) on which the CEL expression holds (all of
        them without one): in SQL when it compiles, else per beneficiary with the
        official runtime (``evaluator``, a cel.Evaluator, counts the errors)."""
        self.ensure_one()
        if not self.eligibility_expression or not self.eligibility_expression.strip():
            return list(candidate_ids)
        if evaluator is None and self._compiled_expression() is not None:
            self.env["res.partner"].flush_model()
            self.env["g2p.group.membership"].flush_model()
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM (%s) c WHERE ok ORDER BY id",
                    self._eligibility_sql(SQL("(SELECT unnest(%s::int[]))", list(candidate_ids))),
                )
            )
            return [row[0] for row in self.env.cr.fetchall()]
        evaluator = evaluator or cel.Evaluator(self.env, self.eligibility_expression, self.name)
        eligible = []
        for start in range(0, len(candidate_ids), BATCH_SIZE):
            chunk = candidate_ids[start : start + BATCH_SIZE]
            results = evaluator.results(chunk)
            eligible += [pid for pid in chunk if results.get(pid) is True]
        return eligible

    @api.model
    def _async_threshold(self):
        value = self.env["ir.config_parameter"].sudo().get_param("g2p_programs_ext.async_threshold")
        try:
            return int(value) if value else DEFAULT_ASYNC_THRESHOLD
        except ValueError:
            return DEFAULT_ASYNC_THRESHOLD

    @api.model
    def _job_batch_size(self):
        """Registrants per job when a step runs as jobs (system parameter
        ``g2p_programs_ext.job_batch_size``, default 5,000): smaller batches spread one
        step over more workers or hosts, each job paying about 17 ms of queue_job overhead."""
        value = self.env["ir.config_parameter"].sudo().get_param("g2p_programs_ext.job_batch_size")
        try:
            return max(int(value), 1) if value else BATCH_SIZE
        except ValueError:
            return BATCH_SIZE

    def _check_unlocked(self):
        for program in self:
            if program.locked:
                raise UserError(
                    coded(
                        "locked",
                        _(
                            "Program %(name)s is busy (%(reason)s): wait for its jobs to end.",
                            name=program.name,
                            reason=program.locked_reason or _("jobs running"),
                        ),
                    )
                )

    def _on_job_failed(self, job_description):
        """Called when one of the program's jobs fails for good: unlock, say what failed."""
        self.sudo().write({"locked": False, "locked_reason": False})
        for program in self:
            program._message_log(
                body=_(
                    "A background job failed: %s. The program is unlocked; run the action again.",
                    job_description,
                )
            )

    def _check_officer(self):
        """Enrolling and creating cycles are the program officers' (readme/USAGE.md, Roles):
        raise AccessError ``[not_allowed]`` for anyone else, or when the user may not
        read the programs in ``self`` (another company)."""
        if not self.env.su and not self.env.user.has_group("g2p_programs_ext.group_program_officer"):
            raise AccessError(
                coded("not_allowed", _("Only program officers enroll registrants and create cycles."))
            )
        self.check_access_rights("read")
        self.check_access_rule("read")

    def _check_active(self):
        for program in self:
            if program.state != "active":
                raise UserError(
                    coded("program_ended", _("Program %s has ended: reopen it first.", program.name))
                )

    # ------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------
    def action_end(self):
        self.write({"state": "ended"})
        return True

    def action_reactivate(self):
        self.write({"state": "active"})
        return True

    def action_open_cycles(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("g2p_programs_ext.g2p_cycle_action")
        action["domain"] = [("program_id", "=", self.id)]
        action["context"] = {"default_program_id": self.id}
        return action

    def action_open_beneficiaries(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "g2p_programs_ext.g2p_program_membership_action"
        )
        action["domain"] = [("program_id", "=", self.id)]
        action["context"] = {"default_program_id": self.id, "search_default_filter_enrolled": 1}
        return action

    # ------------------------------------------------------------------
    # Enrollment
    # ------------------------------------------------------------------
    def enroll_eligible_registrants(self):
        """Enroll every eligible registrant of the program's target type.

        Eligible: passes ``eligibility_domain`` (SQL) and ``eligibility_expression``
        (CEL, evaluated on what the domain kept). Enrolled members that are no longer
        eligible become ``not_eligible``; ``not_eligible`` ones that are eligible again
        are enrolled again; ``paused`` and ``exited`` ones are left as they are.
        Idempotent. Above the async threshold (system parameter
        ``g2p_programs_ext.async_threshold``, default 1,000 registrants) the work runs as
        queue_job jobs of id-sliced batches and the program stays ``locked`` until done.

        :return: int, the number of registrants newly enrolled (0 when queued).
        :raise UserError: the program is locked or ended.
        :raise AccessError: ``[not_allowed]`` the user is not a program officer.
        """
        self.ensure_one()
        self._check_officer()
        self._check_active()
        self._check_unlocked()
        candidate_ids = self._candidate_ids()
        if len(candidate_ids) > self._async_threshold():
            self._enroll_async(candidate_ids)
            return 0
        enrolled, not_eligible, errors = self.sudo()._enroll_range(None)
        self._post_enrollment_message(enrolled, not_eligible, errors)
        return enrolled

    def _enroll_async(self, candidate_ids):
        self.sudo().write({"locked": True, "locked_reason": _("enrolling registrants")})
        jobs = []
        size = self._job_batch_size()
        for start in range(0, len(candidate_ids), size):
            chunk = candidate_ids[start : start + size]
            # The last range is open-ended so that it covers registrants added meanwhile.
            last = chunk[-1] if start + size < len(candidate_ids) else None
            jobs.append(
                self.delayable(
                    description=_("%(p)s: enroll registrants from id %(a)s", p=self.name, a=chunk[0])
                )._job_enroll_range(chunk[0] if start else None, last)
            )
        finish = self.delayable(description=_("%s: finish enrollment", self.name))._job_finish_enrollment()
        chain(group(*jobs), finish).delay()

    def _job_enroll_range(self, first_id, last_id):
        """Job: enrollment for the registrants whose id is in [first_id, last_id] (None: open).

        The ranges of one run are contiguous and cover every id, so together they do
        what the synchronous path does. Re-reads the domain on its range when it runs,
        and adds nothing when run twice."""
        self.ensure_one()
        enrolled, not_eligible, errors = self.sudo()._enroll_range((first_id, last_id))
        return _(
            "%(n)s enrolled, %(x)s not eligible, %(e)s skipped on a CEL error",
            n=enrolled,
            x=not_eligible,
            e=errors,
        )

    def _job_finish_enrollment(self):
        """Job: unlock the program and log one message with the resulting counts."""
        self.ensure_one()
        counts = dict(
            self.env["g2p.program.membership"]._read_group(
                [("program_id", "=", self.id)], ["state"], ["__count"]
            )
        )
        self.sudo().write({"locked": False, "locked_reason": False})
        self._message_log(
            body=_(
                "Enrollment finished: %(enrolled)s enrolled, %(not_eligible)s not eligible "
                "(each batch job's result gives its figures, CEL errors included).",
                enrolled=counts.get("enrolled", 0),
                not_eligible=counts.get("not_eligible", 0),
            )
        )
        return True

    def _enroll_range(self, id_range):
        """Enroll the eligible registrants with ids in ``id_range`` ((first, last), None
        for no bound; None for all) and mark enrolled ones there that are no longer
        eligible ``not_eligible``. Returns (enrolled, not eligible, CEL errors).

        One SQL statement: the candidates come from the ORM's query of the domain; the
        expression is evaluated in it when it compiles (cel_sql), else per beneficiary
        first (official runtime) and its answers passed in."""
        self.ensure_one()
        query = self._candidate_query(id_range)
        Membership = self.env["g2p.program.membership"]
        self.env["res.partner"].flush_model()
        self.env["g2p.group.membership"].flush_model()
        Membership.flush_model()
        rows = self._eligibility_sql(query.subselect())
        # JIT compiling these many expressions costs seconds and saves nothing here; the
        # grouped aggregate over the members spills to disk with the default 4 MB
        self.env.cr.execute("SET LOCAL jit = off")
        self.env.cr.execute("SET LOCAL work_mem = '64MB'")
        evaluator = None
        if rows is None:
            candidate_ids = query.get_result_ids()
            evaluator = cel.Evaluator(self.env, self.eligibility_expression, self.name)
            answers = {}
            for start in range(0, len(candidate_ids), BATCH_SIZE):
                chunk = candidate_ids[start : start + BATCH_SIZE]
                results = evaluator.results(chunk)
                answers.update({pid: results[pid] is True if pid in results else None for pid in chunk})
            rows = SQL(
                "SELECT unnest(%s::int[]) AS id, unnest(%s::bool[]) AS ok",
                list(answers),
                list(answers.values()),
            )
        first, last = id_range or (None, None)
        today = fields.Date.context_today(self)
        # Raw SQL: enrollment of a whole registry in one statement (the ORM would create
        # records one by one). Memberships have no computed field but company_id (given);
        # their cache is invalidated below; the program's access was checked by the caller.
        self.env.cr.execute(
            SQL(
                """WITH cand AS MATERIALIZED (%(rows)s),
                   ins AS (
                       INSERT INTO g2p_program_membership
                           (program_id, company_id, partner_id, state, enrollment_date,
                            create_uid, write_uid, create_date, write_date)
                       SELECT %(program)s, %(company)s, c.id, 'enrolled', %(today)s, %(uid)s, %(uid)s,
                              now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
                       FROM cand c WHERE c.ok
                       ON CONFLICT (program_id, partner_id) DO NOTHING RETURNING 1),
                   back AS (
                       UPDATE g2p_program_membership pm
                       SET state = 'enrolled', enrollment_date = %(today)s, write_uid = %(uid)s,
                           write_date = now() AT TIME ZONE 'UTC'
                       FROM cand c
                       WHERE pm.program_id = %(program)s AND pm.partner_id = c.id AND c.ok
                         AND pm.state IN ('draft', 'not_eligible') RETURNING 1),
                   fail AS (
                       UPDATE g2p_program_membership pm
                       SET state = 'not_eligible', write_uid = %(uid)s, write_date = now() AT TIME ZONE 'UTC'
                       WHERE pm.program_id = %(program)s AND pm.state = 'enrolled'
                         AND (%(first)s::int IS NULL OR pm.partner_id >= %(first)s::int)
                         AND (%(last)s::int IS NULL OR pm.partner_id <= %(last)s::int)
                         AND NOT EXISTS (SELECT 1 FROM cand c WHERE c.id = pm.partner_id AND c.ok)
                       RETURNING 1)
                   SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM back),
                          (SELECT count(*) FROM fail), (SELECT count(*) FROM cand WHERE ok IS NULL)""",
                rows=rows,
                program=self.id,
                company=self.company_id.id,
                today=today,
                uid=self.env.uid,
                first=first,
                last=last,
            )
        )
        inserted, back, failing, errors = self.env.cr.fetchone()
        if inserted > ANALYZE_AFTER:
            # Fresh statistics for the next run: with the table's figures from before this
            # bulk insert the planner expects no enrolled row for the program and checks the
            # enrolled ones against the candidates in a nested loop (seen: 205 s instead of
            # seconds for a second run over 51,863 memberships).
            self.env.cr.execute("ANALYZE g2p_program_membership")
        Membership.invalidate_model()
        self.invalidate_recordset(["program_membership_ids", "beneficiary_count"])
        if evaluator:
            evaluator.log_errors()
        elif errors:
            _logger.warning(
                "%s: CEL expression failed on %d registrant(s), who were skipped (evaluated in SQL).",
                self.name,
                errors,
            )
        return inserted + back, failing, errors

    def _post_enrollment_message(self, enrolled, not_eligible, errors):
        parts = []
        parts.append(_("%s registrant(s) enrolled.", enrolled))
        parts.append(_("%s no longer eligible.", not_eligible))
        if errors:
            parts.append(
                _("%s skipped: the eligibility expression failed on them (see the server log).", errors)
            )
        self._message_log(body=" ".join(parts))

    # ------------------------------------------------------------------
    # Cycles
    # ------------------------------------------------------------------
    def create_new_cycle(self):
        """Create the program's next cycle and copy its enrolled beneficiaries into it.

        The first cycle starts on ``start_date``, each next one the day after the
        previous one ends; ``end_date`` = start + ``cycle_duration`` - 1 (inclusive).
        Above the async threshold the cycle memberships are created by queue_job jobs,
        the cycle ``locked`` meanwhile.

        :return: int, the new g2p.cycle id.
        :raise UserError: the program is locked or ended.
        :raise AccessError: ``[not_allowed]`` the user is not a program officer.
        """
        self.ensure_one()
        self._check_officer()
        self._check_active()
        self._check_unlocked()
        return self.env["g2p.cycle"]._create_next_for(self).id
