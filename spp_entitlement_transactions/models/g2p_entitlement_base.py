"""What an entitlement owns of its redemption: one description of its figures
(:class:`Redemption`, the class attribute ``_redemption`` of each entitlement model), the
locked read that a redemption starts with, and the update that records it: next to the
tables they touch."""

from dataclasses import dataclass

from odoo import api, fields, models
from odoo.tools import SQL, float_round


@dataclass(frozen=True)
class Redemption:
    """How an entitlement model is redeemed, in one place (read by the redemption API,
    the ledger and the closing). Every name is a field name.

    - ``link``: the many2one of ``spp.entitlement.transaction`` pointing at the model;
    - ``figure``: the transaction's field holding the figure (``net_<figure>`` is the
      signed one), e.g. ``amount`` or ``quantity``;
    - ``total``, ``redeemed``, ``balance``: the entitlement's figure, what was redeemed and
      what is left (both stored), in the entitlement's unit;
    - ``unit``: the many2one whose ``rounding`` and ``name`` are the unit's
      (``res.currency`` for cash, ``uom.uom`` for goods), ``default_rounding`` when it has
      none;
    - ``currency``: the path to the program's currency (copied onto each transaction);
    - ``product``, ``uom``: the entitlement's product and unit of measure (goods only),
      copied onto each transaction and answered by ``lookup``.
    """

    link: str
    figure: str
    total: str
    redeemed: str
    balance: str
    unit: str
    default_rounding: float
    currency: str
    product: str = ""
    uom: str = ""


class G2PEntitlementBase(models.AbstractModel):
    """What cash and in-kind entitlements share about their redemptions: the count on
    the form's button and the action it opens, the locked read and the redeeming
    update. Each model describes its figures in ``_redemption`` and declares its own
    ``transaction_ids``."""

    _inherit = "g2p.entitlement.base"

    # A Redemption on each model that can be redeemed (None: not through this API).
    _redemption = None

    transaction_count = fields.Integer(compute="_compute_transaction_count", string="Number of transactions")

    def _compute_transaction_count(self):
        link = self._redemption.link
        counts = dict(
            self.env["spp.entitlement.transaction"]._read_group([(link, "in", self.ids)], [link], ["__count"])
        )
        for entitlement in self:
            entitlement.transaction_count = counts.get(entitlement, 0)

    def action_open_transactions(self):
        """Open the redemptions and reversals of this entitlement (one record of a
        concrete entitlement model) in the read-only transaction list.

        :return: dict, an ``ir.actions.act_window``"""
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "spp_entitlement_transactions.spp_entitlement_transaction_action"
        )
        action["domain"] = [(self._redemption.link, "=", self.id)]
        action["context"] = {}
        return action

    # ------------------------------------------------------------------
    # Figures (from the description)
    # ------------------------------------------------------------------
    def _redemption_rounding(self):
        return self[self._redemption.unit].rounding or self._redemption.default_rounding

    def _redemption_unit_name(self):
        return self[self._redemption.unit].name or ""

    def _redemption_balance(self):
        """What is left to redeem, in the entitlement's unit, rounded to it."""
        spec = self._redemption
        return float_round(
            self[spec.total] - self[spec.redeemed], precision_rounding=self._redemption_rounding()
        )

    def _redemption_product(self):
        return self[self._redemption.product] if self._redemption.product else self.env["product.product"]

    def _redemption_uom(self):
        return self[self._redemption.uom] if self._redemption.uom else self.env["uom.uom"]

    def _redemption_currency(self):
        return self.mapped(self._redemption.currency)

    @api.model
    def _redemption_models(self):
        """Names of the entitlement models redeemed through the API (those with a ``_redemption``)."""
        return [m for m in self.env["g2p.cycle"]._entitlement_models() if self.env[m]._redemption]

    # ------------------------------------------------------------------
    # The locked read: one query over every entitlement table
    # ------------------------------------------------------------------
    @api.model
    def _find_by_code(self, code, lock=False):
        """The entitlement (any model, sudo) whose ERN is ``code`` (display form), or None.

        With ``lock``, the same query locks its row ``FOR UPDATE`` and reads, fresh, what
        a redemption needs (:meth:`_redemption_fields`, :meth:`_redemption_related_fields`
        joined) into the cache: the redemption then runs no other read query.

        SQL, not the ORM: one round trip over every entitlement table that also takes the
        row lock (``search`` + ``read`` + a lock would be three per table). The cache stays
        right: what is read is flushed first and the record invalidated before its row is
        put into the cache (:meth:`_cache_redemption_row`); the caller checked access."""
        found = self._locked_read(SQL("e.code = %s", code), lock)
        return next(iter(found.values()), None)

    @api.model
    def _find_by_code_with(self, code, query):
        """:meth:`_find_by_code` with ``lock``, and ``query`` (SQL, a SELECT) run in the
        same statement: ``(entitlement or None, [row of query, as a dict by column name])``.
        The redemption API checks the caller's service point so, in the round trip that
        locks the entitlement. The cache is kept right as by :meth:`_find_by_code`;
        ``query``'s rows are not cached."""
        found, rows = self._locked_read(SQL("e.code = %s", code), True, query)
        return next(iter(found.values()), None), rows

    @api.model
    def _find_by_codes(self, codes, lock=False):
        """The entitlements (any model, sudo) whose ERNs are among ``codes`` (display
        forms), as :meth:`_find_by_code` finds one, in one query: ``{code: entitlement}``,
        codes that match nothing left out. With ``lock`` the rows are locked in id order
        (two batches that share entitlements wait for each other instead of deadlocking)
        and what a redemption needs is read into the cache, as by :meth:`_find_by_code`.

        SQL, not the ORM: for the same reasons as :meth:`_find_by_code` (one round trip
        for a whole offline batch instead of one per line); the cache is kept right in the
        same way."""
        codes = sorted(set(codes))
        if not codes:
            return {}
        return self._locked_read(SQL("e.code = ANY(%s) ORDER BY e.id", codes), lock)

    @api.model
    def _locked_read(self, condition, lock, also=None):
        """{code: entitlement} of the rows of every redemption model matching
        ``condition`` (SQL on alias ``e``, may end with an ORDER BY), locked and cached
        with ``lock``: the query of :meth:`_find_by_code` and :meth:`_find_by_codes`.
        With ``also`` (SQL, a SELECT run in the same statement), returns ``(found, rows
        of also as dicts by column name)``."""
        models_ = self._redemption_models()
        arms = []
        for index, model in enumerate(models_):
            Model = self.env[model]
            # What the query reads is written to the database first (as fetch does).
            Model.flush_model(["code", *(Model._redemption_fields() if lock else ())])
            select, joins = Model._redemption_columns() if lock else (SQL("e.id, e.code"), SQL())
            arms.append(
                SQL(
                    "%s AS (SELECT %s FROM %s e %s WHERE %s%s)",
                    SQL.identifier(f"m{index}"),
                    select,
                    SQL.identifier(Model._table),
                    joins,
                    condition,
                    SQL(" FOR UPDATE OF e") if lock else SQL(),
                )
            )
        selects = [
            SQL(
                "SELECT %s, to_jsonb(%s) FROM %s",
                index,
                SQL.identifier(f"m{index}"),
                SQL.identifier(f"m{index}"),
            )
            for index in range(len(models_))
        ]
        if also is not None:
            arms.append(SQL("a AS (%s)", also))
            selects.append(SQL("SELECT -1, to_jsonb(a) FROM a"))
        # FOR UPDATE is not allowed beside UNION, but is inside WITH queries; the models'
        # columns differ, so each row comes as one JSON object.
        query = SQL("WITH %s %s", SQL(", ").join(arms), SQL(" UNION ALL ").join(selects))
        # A concurrent redemption committed meanwhile makes FOR UPDATE fail to serialize
        # (REPEATABLE READ); Odoo's RPC layer then replays the request: not worth an ERROR line.
        self.env.cr.execute(query, log_exceptions=False)
        found, rows, result = {}, [], self.env.cr.fetchall()
        # what was cached of them is forgotten, once per model
        for index, model in enumerate(models_):
            ids = [values["id"] for number, values in result if number == index]
            if ids:
                self.env[model].browse(ids).invalidate_recordset()
        for index, values in result:
            if index < 0:
                rows.append(values)
                continue
            entitlement = self.env[models_[index]].sudo().browse(values["id"])
            if lock:
                entitlement._cache_redemption_row(values)
            found[values["code"]] = entitlement
        return found if also is None else (found, rows)

    @api.model
    def _redemption_fields(self):
        """The fields a redemption reads of a locked entitlement (read by the lock query
        itself: these columns, not every column of the model)."""
        spec = self._redemption
        names = [
            "code",
            "state",
            "service_point_id",
            "valid_from",
            "valid_until",
            "partner_id",
            "program_id",
            "cycle_id",
            "company_id",
            "area_id",
            spec.redeemed,
            spec.balance,
            spec.total,
            spec.unit,
            spec.currency.split(".")[0],
            spec.product,
            spec.uom,
        ]
        return list(dict.fromkeys(name for name in names if name))

    @api.model
    def _redemption_related_fields(self):
        """``many2one.field`` paths a redemption reads besides the entitlement's own fields
        (the unit's rounding, the currency when it is not the entitlement's own): the lock
        query joins them. Each is a stored many2one among :meth:`_redemption_fields` and a
        stored, untranslated column of its comodel."""
        spec = self._redemption
        paths = [f"{spec.unit}.rounding"]
        if "." in spec.currency:
            paths.append(spec.currency)
        return paths

    @api.model
    def _redemption_columns(self):
        """(select list, joins) reading :meth:`_redemption_fields` (table alias ``e``) and
        :meth:`_redemption_related_fields` (alias ``r<n>``, column alias ``<many2one>__<field>``)."""
        columns = [SQL("e.id")]
        columns += [SQL("e.%s", SQL.identifier(name)) for name in self._redemption_fields()]
        joins = []
        for number, path in enumerate(self._redemption_related_fields()):
            link, name = path.split(".")
            comodel = self.env[self._fields[link].comodel_name]
            comodel.flush_model([name])
            alias = SQL.identifier(f"r{number}")
            joins.append(
                SQL(
                    "LEFT JOIN %s %s ON %s.id = e.%s",
                    SQL.identifier(comodel._table),
                    alias,
                    alias,
                    SQL.identifier(link),
                )
            )
            columns.append(SQL("%s.%s AS %s", alias, SQL.identifier(name), SQL.identifier(f"{link}__{name}")))
        return SQL(", ").join(columns), SQL(" ").join(joins)

    def _cache_redemption_row(self, values):
        """Put what :meth:`_redemption_columns` read (``values``: the row as a JSON object)
        into the cache of this entitlement and of its related records, converted as the
        ORM converts what it reads (dates come as ISO strings in JSON)."""
        cache = self.env.cache
        for name in self._redemption_fields():
            field = self._fields[name]
            cache.update(self, field, [field.convert_to_cache(values[name], self, validate=False)])
        for path in self._redemption_related_fields():
            link, name = path.split(".")
            related = self[link]
            if related:
                field = related._fields[name]
                value = values[f"{link}__{name}"]
                cache.update(related, field, [field.convert_to_cache(value, related, validate=False)])

    def _lock_for_redemption(self):
        """Lock this entitlement's row (FOR UPDATE) and forget what was read of it before.
        SQL: the ORM has no row lock; the record is flushed before and invalidated after."""
        self.ensure_one()
        self.flush_recordset()
        self.env.cr.execute(
            SQL("SELECT id FROM %s WHERE id = %s FOR UPDATE", SQL.identifier(self._table), self.id),
            log_exceptions=False,
        )
        self.invalidate_recordset()

    # ------------------------------------------------------------------
    # The redeeming update
    # ------------------------------------------------------------------
    def _record_redeemed(self, redeemed, balance, state=None):
        """Store on this (locked) entitlement what a redemption or reversal decided, in one
        UPDATE: the redeemed figure and the balance, both in the entitlement's unit (cash:
        the program's currency; in-kind: its UoM), computed by the caller from the row read
        under the lock, and the new state when it changes (``None``: unchanged). No
        chatter, no tracking: the transaction row is the audit trail.

        :return: None
        """
        self.env.cr.execute(self._record_redeemed_query(redeemed, balance, state))
        self._invalidate_redeemed(state)

    def _record_redeemed_query(self, redeemed, balance, state=None):
        """The UPDATE of :meth:`_record_redeemed` (SQL, ending with its WHERE clause, so
        that a caller may add a condition), not run: the redemption API runs it in the
        same statement as the insert of the transaction row. Call
        :meth:`_invalidate_redeemed` once it ran.

        SQL, not ``write``: it runs inside the insert's statement (one round trip on the
        hot path) and skips tracking; the cache stays right through
        :meth:`_invalidate_redeemed`, and the caller checked access."""
        self.ensure_one()
        self.flush_recordset()
        columns = self._redeemed_columns(state)
        values = [redeemed, balance] if state is None else [redeemed, balance, state]
        assignments = SQL(", ").join(
            SQL("%s = %s", SQL.identifier(c), v) for c, v in zip(columns, values, strict=True)
        )
        return SQL(
            "UPDATE %s SET %s, write_uid = %s, write_date = now() at time zone 'UTC' WHERE id = %s",
            SQL.identifier(self._table),
            assignments,
            self.env.uid,
            self.id,
        )

    @api.model
    def _record_redeemed_many_query(self, figures):
        """One UPDATE storing on several (locked) entitlements of this model what an offline
        batch decided, as :meth:`_record_redeemed_query` does for one: ``figures`` is
        ``{entitlement id: (redeemed, balance, state)}``, figures in each entitlement's
        unit, ``state`` None when unchanged. SQL ending with its WHERE clause, not run:
        the batch runs it in the statement that inserts its transaction rows. Call
        :meth:`_invalidate_redeemed` on the records (with a state) once it ran.

        SQL, not ``write``: one statement for the whole batch (``write`` would be one
        UPDATE per distinct set of values), no tracking; the records are flushed first
        and invalidated after, and the caller checked access."""
        records = self.browse(list(figures))
        records.flush_recordset()
        ids, redeemed, balances, states = zip(
            *((id_, *values) for id_, values in figures.items()), strict=True
        )
        return SQL(
            "UPDATE %(table)s e SET %(redeemed)s = v.redeemed, %(balance)s = v.balance, "
            "state = COALESCE(v.state, e.state), write_uid = %(uid)s, write_date = now() at time zone 'UTC' "
            "FROM unnest(%(ids)s::int[], %(figures)s::float8[], %(balances)s::float8[], %(states)s::varchar[]) "
            "AS v(id, redeemed, balance, state) WHERE e.id = v.id",
            table=SQL.identifier(self._table),
            redeemed=SQL.identifier(self._redemption.redeemed),
            balance=SQL.identifier(self._redemption.balance),
            uid=self.env.uid,
            ids=list(ids),
            figures=list(redeemed),
            balances=list(balances),
            states=list(states),
        )

    def _cache_redeemed(self, redeemed, balance, state=None):
        """Put into the cache of this (locked) entitlement what a redemption of an offline
        batch decided, before it is written (:meth:`_record_redeemed_many_query`): the
        batch's later lines on the same entitlement are checked against it. Not marked
        to be written: the batch writes it, or invalidates it when it writes nothing."""
        self.ensure_one()
        cache = self.env.cache
        for name, value in zip(self._redeemed_columns(state), (redeemed, balance, state), strict=False):
            field = self._fields[name]
            cache.update(self, field, [field.convert_to_cache(value, self, validate=False)])

    def _invalidate_redeemed(self, state=None):
        """Forget the cached figures (and state) after :meth:`_record_redeemed_query` ran.
        Only these columns changed, and the balance was written with them: no stored
        field depends on them besides the balance (nothing to recompute)."""
        self.invalidate_recordset([*self._redeemed_columns(state), "write_uid", "write_date"])

    def _redeemed_columns(self, state=None):
        """The columns :meth:`_record_redeemed_query` sets: the redeemed figure, the
        balance, and the state unless ``state`` is None."""
        columns = [self._redemption.redeemed, self._redemption.balance]
        return columns if state is None else [*columns, "state"]
