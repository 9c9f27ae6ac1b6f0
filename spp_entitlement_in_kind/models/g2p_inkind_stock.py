"""The stock entry points that other addons call, kept under their names: approval
reserves, release, sync after bulk state changes, posting. The work is done by the
allocations (``g2p.inkind.allocation``, ``models/g2p_inkind_allocation.py``).

All methods run as superuser: callers check the user's rights first (the suite's roles
have no stock rights).
"""

from odoo import api, models


class G2PInkindStock(models.AbstractModel):
    _name = "g2p.inkind.stock"
    _description = "In-kind entitlements: stock reservation, delivery and release"

    @api.model
    def _reserve(self, entitlements):
        """Check that stock covers ``entitlements`` (g2p.entitlement.inkind about to be
        approved) and reserve it; change nothing when it does not.
        :return: g2p.inkind.allocation, the allocations that serve them
        :raise UserError: ``[no_warehouse]``, ``[out_of_stock]``
            (see ``g2p.inkind.allocation._reserve_entitlements``)."""
        return self.env["g2p.inkind.allocation"]._reserve_entitlements(entitlements)

    @api.model
    def _allocate(self, entitlements):
        """The approval's first half of :meth:`_reserve`: check the stock and find or
        create the allocations of ``entitlements`` (g2p.entitlement.inkind about to be
        approved), writing no entitlement row.
        :return: {column: {entitlement id: id}} for the approval's UPDATE
        :raise UserError: as :meth:`_reserve`."""
        return self.env["g2p.inkind.allocation"]._allocate_entitlements(entitlements)

    @api.model
    def _reserve_allocated(self, entitlements):
        """The approval's second half of :meth:`_reserve`, once ``entitlements`` hold
        their allocation: reserve the stock of their allocations.
        :return: g2p.inkind.allocation
        :raise UserError: ``[out_of_stock]`` a move could not be reserved."""
        return self.env["g2p.inkind.allocation"]._reserve_allocated(entitlements)

    @api.model
    def _check(self, entitlements):
        """Refuse, writing nothing, what :meth:`_reserve` would refuse for
        ``entitlements`` (g2p.entitlement.inkind about to be approved): no warehouse, or
        stock short. :return: None
        :raise UserError: ``[no_warehouse]``, ``[out_of_stock]``."""
        self.env["g2p.inkind.allocation"]._check_entitlements_stock(entitlements)

    @api.model
    def _release(self, entitlements):
        """Give back what ``entitlements`` (g2p.entitlement.inkind about to be rejected,
        cancelled, expired or closed) will never take.
        :return: g2p.inkind.allocation, their allocations"""
        return self.env["g2p.inkind.allocation"]._release_entitlements(entitlements)

    @api.model
    def _sync(self, cycle_ids):
        """Bring the reservations of ``cycle_ids`` (g2p.cycle ids) in line with their
        entitlements' states and redeemed quantities (idempotent). :return: True"""
        return self.env["g2p.inkind.allocation"]._sync_cycles(cycle_ids)

    @api.model
    def _post(self, cycle_ids):
        """Post what was redeemed in ``cycle_ids`` (g2p.cycle ids) since the last posting.
        :return: dict ``{"delivered": delivery moves done, "returned": return moves done}``"""
        return self.env["g2p.inkind.allocation"]._post_cycle_deliveries(cycle_ids)
