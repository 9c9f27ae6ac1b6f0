"""The agents' handout screen's side of the redemption API (issue 20): a household's
open entitlements at a service point, the proof of receipt of a handout, and legacy
codes. Kept apart from spp_entitlement_transaction.py: ``lookup``, ``redeem``,
``reverse``, ``redeem_batch`` and ``entitlements_for_service_point`` are unchanged; the
screen calls them as any device does, and these methods only add to them."""

import base64
import binascii
import hashlib

from odoo import _, api, fields, models
from odoo.addons.g2p_programs_ext import ern
from odoo.exceptions import UserError, ValidationError

from .. import redemption_input
from .spp_entitlement_receipt import COLLECTED_BY
from .spp_entitlement_transaction import refusal

ALTERNATE_KIND = "g2p_programs_ext.membership_kind_alternate_collector"
HEAD_KIND = "g2p_programs_ext.membership_kind_head"
ID_DIGITS = 4  # what the screen shows of an ID number, to compare with the card
COLLECTOR_NAME_MAX_LENGTH = 128
RECEIPT_MAX_REFERENCES = 100
SIGNATURE_MAX_BYTES = 512 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# One concern per file (issue 22): the ledger, the API and the proof of receipt each
# extend the transaction in their own module, on purpose.
class SppEntitlementTransaction(models.Model):
    _inherit = "spp.entitlement.transaction"  # pylint: disable=consider-merging-classes-inherited

    # ------------------------------------------------------------------
    # Proof of receipt (from the handout's receipt)
    # ------------------------------------------------------------------
    receipt_ids = fields.Many2many(
        "spp.entitlement.receipt",
        "spp_entitlement_receipt_transaction_rel",
        "transaction_id",
        "receipt_id",
        readonly=True,
    )
    collected_by = fields.Selection(COLLECTED_BY, compute="_compute_receipt_fields")
    collector_name = fields.Char(compute="_compute_receipt_fields")
    id_checked = fields.Boolean(string="ID checked", compute="_compute_receipt_fields")
    signature = fields.Binary(compute="_compute_receipt_fields")

    @api.depends("receipt_ids")
    def _compute_receipt_fields(self):
        for transaction in self:
            receipt = transaction.receipt_ids[:1]
            transaction.collected_by = receipt.collected_by
            transaction.collector_name = receipt.collector_name
            transaction.id_checked = receipt.id_checked
            transaction.signature = receipt.signature

    # ------------------------------------------------------------------
    # Public API for the handout screen
    # ------------------------------------------------------------------
    @api.model
    def handout_lookup(self, service_point_id, code):
        """What the handout screen shows for a scanned or typed code: the beneficiary,
        their household and every open entitlement of that household at the service point.

        :param int service_point_id: an ``spp.service.point`` of the calling agent (back
            office: any they may read).
        :param str code: an ERN (dashes, spaces and case ignored).
        :return: dict ``{code, state, household}``: ``code`` the ERN (display form),
            ``state`` that entitlement's state, ``household`` a dict as one item of
            :meth:`handout_entitlements` (its ``entitlements`` may be empty, e.g. when the
            code is fully redeemed).
        :raise: as :meth:`lookup` and :meth:`entitlements_for_service_point`.
        """
        point = self._check_service_point(service_point_id, back_office=True)
        answer = self.lookup(code)
        entitlement = self.env["g2p.entitlement.base"]._find_by_code(answer["code"])
        household = self._handout_household(entitlement.partner_id)
        members = household | household.group_membership_ids.filtered(lambda m: not m.end_date).individual_id
        entitlements = self._redeemable_entitlements(
            point, [("partner_id", "in", (members | entitlement.partner_id).ids)]
        )
        groups = self._handout_groups(entitlements)
        group = groups[0] if groups else self._handout_group_values(household, entitlement.partner_id, [])
        return {"code": answer["code"], "state": answer["state"], "household": group}

    @api.model
    def handout_entitlements(self, service_point_id):
        """The open entitlements of a service point, grouped by household, for the handout
        screen to work without a connection (the entitlements are those
        :meth:`entitlements_for_service_point` gives).

        :param int service_point_id: as :meth:`entitlements_for_service_point`.
        :return: list of dicts, one per household, in household name order: ``{household_id,
            household, beneficiary, id_digits, alternate_collectors, entitlements}``;
            ``id_digits`` the last 4 characters of the beneficiary's ID number (else of
            the household head's; False when none), ``alternate_collectors`` the names of
            the household's alternate collectors, ``entitlements`` a list of dicts as
            :meth:`lookup` answers plus ``kind`` (``cash|inkind``), ``currency`` (cash:
            its name, else False) and ``rounding`` (the smallest step of the figure).
        :raise: as :meth:`entitlements_for_service_point`.
        """
        point = self._check_service_point(service_point_id, back_office=True)
        codes = [answer["code"] for answer in self.entitlements_for_service_point(service_point_id)]
        return self._handout_groups(self._redeemable_entitlements(point, [("code", "in", codes)]))

    @api.model
    def record_receipt(
        self, service_point_id, references, collected_by, collector_name, id_checked, signature=False
    ):
        """Record the proof of receipt of a handout, right after its redemptions (one
        household, one service point). The same call again returns the first answer
        and adds nothing.

        :param int service_point_id: the service point of the redemptions (the agent's own).
        :param list references: the references (str) the redemptions were made with, 1 to 100.
        :param str collected_by: ``beneficiary`` or ``alternate``.
        :param str collector_name: who collected; for ``alternate`` one of the household's
            alternate collectors (membership kind *Alternate collector*), else the
            beneficiary's name is kept when empty.
        :param bool id_checked: whether the agent checked the collector's ID.
        :param signature: the signature as a base64 PNG (at most 512 KB), or False.
        :return: dict ``{receipt_id, references, collected_by, collector_name, id_checked,
            signed}``.
        :raise AccessError: ``[not_an_agent]``, ``[not_your_service_point]``.
        :raise ValidationError: ``[bad_service_point]``, ``[bad_reference]``,
            ``[bad_collector]``, ``[bad_signature]``.
        :raise UserError: ``[unknown_reference]`` (no redemption with that reference at
            that point), ``[mixed_households]``, ``[not_alternate_collector]``,
            ``[receipt_exists]`` (those redemptions have another receipt).
        """
        point = self._check_service_point(service_point_id)
        if (
            not isinstance(references, (list, tuple))
            or not references
            or len(references) > RECEIPT_MAX_REFERENCES
        ):
            raise refusal(
                ValidationError,
                "bad_reference",
                _(
                    "Give the references of the handout's redemptions as a list of 1 to %s texts.",
                    RECEIPT_MAX_REFERENCES,
                ),
            )
        references = sorted({self._input(redemption_input.reference, reference) for reference in references})
        if collected_by not in dict(COLLECTED_BY):
            raise refusal(
                ValidationError,
                "bad_collector",
                _("Say who collected: 'beneficiary' or 'alternate' (the household's alternate collector)."),
            )
        if not isinstance(id_checked, bool):
            raise refusal(
                ValidationError, "bad_collector", _("Say whether the ID was checked: true or false.")
            )
        collector_name = collector_name.strip() if isinstance(collector_name, str) else ""
        if len(collector_name) > COLLECTOR_NAME_MAX_LENGTH:
            raise refusal(
                ValidationError,
                "bad_collector",
                _("The collector's name has at most %s characters.", COLLECTOR_NAME_MAX_LENGTH),
            )
        png = self._check_signature(signature)
        redemptions = self.sudo().browse()
        for reference in references:
            redemption = self._find_by_reference(point, reference)
            if not redemption:
                raise refusal(
                    UserError,
                    "unknown_reference",
                    _(
                        "No redemption with reference %(ref)s at %(point)s: record the receipt after the handout.",
                        ref=reference,
                        point=point.sudo().display_name,
                    ),
                )
            redemptions |= redemption
        households = {self._handout_household(partner) for partner in redemptions.partner_id}
        if len(households) != 1:
            raise refusal(
                UserError,
                "mixed_households",
                _(
                    "A receipt is for the handout of one household: these redemptions are for %s households.",
                    len(households),
                ),
            )
        household = households.pop()
        if collected_by == "alternate":
            alternates = self._alternate_collectors(household)
            if collector_name not in alternates:
                raise refusal(
                    UserError,
                    "not_alternate_collector",
                    _(
                        "%(name)r is not an alternate collector of %(household)s (registered: %(names)s): hand out to "
                        "the beneficiary, or ask the office to register the alternate collector.",
                        name=collector_name,
                        household=household.name,
                        names=", ".join(alternates) or _("none"),
                    ),
                )
        elif not collector_name:
            collector_name = redemptions[:1].partner_id.name
        key = "\n".join(references)
        payload = hashlib.sha256(
            "|".join(
                [key, collected_by, collector_name, str(id_checked), hashlib.sha256(png or b"").hexdigest()]
            ).encode()
        ).hexdigest()
        Receipt = self.env["spp.entitlement.receipt"].sudo()
        done = Receipt.search([("service_point_id", "=", point.id), ("references_key", "=", key)], limit=1)
        if done and done.payload_hash == payload:
            return self._receipt_answer(done)
        if done or redemptions.receipt_ids:
            raise refusal(
                UserError,
                "receipt_exists",
                _(
                    "The redemptions %s already have their proof of receipt: it cannot be changed.",
                    ", ".join(references),
                ),
            )
        receipt = Receipt.create(
            {
                "service_point_id": point.id,
                "company_id": point.company_id.id,
                "user_id": self.env.uid,
                "household_id": household.id,
                "transaction_ids": [(6, 0, redemptions.ids)],
                "collected_by": collected_by,
                "collector_name": collector_name,
                "id_checked": id_checked,
                "signature": base64.b64encode(png) if png else False,
                "references_key": key,
                "payload_hash": payload,
            }
        )
        return self._receipt_answer(receipt)

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------
    @api.model
    def _is_legacy_code(self, code):
        """True when ``code`` (normalized) has a correct legacy (ISO 7064 MOD 37-2) check
        character and is the code of an existing entitlement: vouchers printed before the
        31-character check keep working; a mistyped new code is still refused."""
        return (
            ern.is_legacy_valid(code)
            and self.env["g2p.entitlement.base"]._find_by_code(ern.display(code)) is not None
        )

    @api.model
    def _check_signature(self, signature):
        """The PNG bytes of ``signature`` (base64 text, an optional ``data:`` prefix
        dropped), or None when False/empty."""
        if not signature:
            return None
        if isinstance(signature, str) and signature.startswith("data:image/png;base64,"):
            signature = signature.split(",", 1)[1]
        try:
            png = base64.b64decode(signature, validate=True) if isinstance(signature, str) else b""
        except (binascii.Error, ValueError):
            png = b""
        if not png.startswith(PNG_MAGIC) or len(png) > SIGNATURE_MAX_BYTES:
            raise refusal(
                ValidationError,
                "bad_signature",
                _(
                    "The signature is sent as a base64 PNG image of at most %s KB.",
                    SIGNATURE_MAX_BYTES // 1024,
                ),
            )
        return png

    @api.model
    def _receipt_answer(self, receipt):
        return {
            "receipt_id": receipt.id,
            "references": receipt.references_key.split("\n"),
            "collected_by": receipt.collected_by,
            "collector_name": receipt.collector_name or False,
            "id_checked": receipt.id_checked,
            "signed": bool(receipt.signature),
        }

    @api.model
    def _handout_household(self, partner):
        """The household of ``partner`` (res.partner): itself when a group, else its
        current household, else the partner itself."""
        if partner.is_group:
            return partner
        membership = (
            self.env["g2p.group.membership"]
            .sudo()
            .search([("individual_id", "=", partner.id), ("end_date", "=", False)], limit=1)
        )
        return membership.group_id or partner

    @api.model
    def _alternate_collectors(self, household):
        kind = self.env.ref(ALTERNATE_KIND, raise_if_not_found=False)
        if not kind or not household.is_group:
            return []
        memberships = household.sudo().group_membership_ids.filtered(
            lambda m: not m.end_date and kind in m.kind_ids
        )
        return sorted(memberships.individual_id.mapped("name"))

    @api.model
    def _id_digits(self, partner, household):
        number = partner.sudo().id_number
        if not number and household.is_group:
            head = self.env.ref(HEAD_KIND, raise_if_not_found=False)
            heads = household.sudo().group_membership_ids.filtered(
                lambda m: not m.end_date and head in m.kind_ids
            )
            number = heads[:1].individual_id.id_number
        return number[-ID_DIGITS:] if number else False

    @api.model
    def _handout_group_values(self, household, beneficiary, answers):
        return {
            "household_id": household.id,
            "household": household.name or False,
            "beneficiary": beneficiary.name or False,
            "id_digits": self._id_digits(beneficiary, household),
            "alternate_collectors": self._alternate_collectors(household),
            "entitlements": answers,
        }

    @api.model
    def _handout_groups(self, entitlements_by_model):
        """[household dict] for ``entitlements_by_model`` (a list of recordsets, sudo)."""
        groups = {}
        for entitlements in entitlements_by_model:
            for entitlement, answer in zip(entitlements, self._lookup_answers(entitlements), strict=True):
                household = self._handout_household(entitlement.partner_id)
                if household.id not in groups:
                    groups[household.id] = self._handout_group_values(household, entitlement.partner_id, [])
                currency = (
                    entitlement._redemption_currency() if not entitlement._redemption_product() else False
                )
                answer.update(
                    kind="inkind" if entitlement._redemption_product() else "cash",
                    currency=currency.name if currency else False,
                    rounding=entitlement._redemption_rounding(),
                )
                groups[household.id]["entitlements"].append(answer)
        return sorted(groups.values(), key=lambda group: (group["household"] or "", group["household_id"]))
