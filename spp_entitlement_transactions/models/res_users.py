from odoo import api, models

AGENT_GROUP = "spp_service_points.group_service_point_agent"
HANDOUT_ACTION = "spp_entitlement_transactions.spp_handout_action"


class ResUsers(models.Model):
    _inherit = "res.users"

    @api.model_create_multi
    def create(self, vals_list):
        users = super().create(vals_list)
        users._set_agent_home_action()
        return users

    def write(self, vals):
        result = super().write(vals)
        if any(name == "groups_id" or name.startswith(("in_group_", "sel_groups_")) for name in vals):
            self._set_agent_home_action()
        return result

    def _set_agent_home_action(self):
        """Agents without a home action land on the handout screen at login (their
        ``action_id``); a home action chosen by an administrator is kept."""
        action = self.env.ref(HANDOUT_ACTION, raise_if_not_found=False)
        if not action:
            return
        agents = self.sudo().filtered(lambda user: not user.action_id and user.has_group(AGENT_GROUP))
        if agents:
            agents.write({"action_id": action.id})

    @api.model
    def _set_agent_home_action_all(self):
        """On install: every existing agent without a home action gets the handout screen."""
        group = self.env.ref(AGENT_GROUP)
        group.sudo().users._set_agent_home_action()
        return True
