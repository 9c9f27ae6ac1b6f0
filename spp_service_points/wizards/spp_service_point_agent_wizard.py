from odoo import _, fields, models
from odoo.addons.g2p_programs_ext.refusal import coded
from odoo.exceptions import AccessError, UserError


class SppServicePointAgentWizard(models.TransientModel):
    """Create the user account of a new agent for a service point."""

    _name = "spp.service.point.agent.wizard"
    _description = "Create a service point agent"

    service_point_id = fields.Many2one("spp.service.point", string="Service point", required=True)
    name = fields.Char(required=True)
    login = fields.Char(required=True, help="What the agent types to log in, e.g. an e-mail address.")
    email = fields.Char()

    def action_create_agent(self):
        """Create an internal user with only the Service Point Agent role, in the point's
        company, serving the point; then open it.

        The user has no password: give the agent's devices API keys (see USAGE), or set a
        password from the user's form (Action > Change Password).

        :return: an ``ir.actions.act_window`` dict opening the new ``res.users``.
        :raise AccessError: ``[no_user_rights]`` when the caller may not create users.
        :raise UserError: ``[duplicate_login]`` when the login is taken.
        """
        self.ensure_one()
        Users = self.env["res.users"]
        if not Users.check_access_rights("create", raise_exception=False):
            raise AccessError(
                coded(
                    "no_user_rights",
                    _(
                        "Creating users needs the Administration / Access Rights role: "
                        "ask an administrator to create the agent for %s.",
                        self.service_point_id.display_name,
                    ),
                )
            )
        login = self.login.strip()
        if Users.sudo().with_context(active_test=False).search_count([("login", "=", login)], limit=1):
            raise UserError(
                coded("duplicate_login", _("Login %s is already taken: choose another one.", login))
            )
        company = self.service_point_id.company_id
        user = Users.with_context(no_reset_password=True).create(
            {
                "name": self.name,
                "login": login,
                "email": self.email or False,
                "company_id": company.id,
                "company_ids": [(6, 0, company.ids)],
                "groups_id": [(6, 0, [self.env.ref("spp_service_points.group_service_point_agent").id])],
                "service_point_ids": [(4, self.service_point_id.id)],
            }
        )
        return {
            "type": "ir.actions.act_window",
            "res_model": "res.users",
            "res_id": user.id,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "current",
        }
