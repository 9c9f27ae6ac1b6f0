import logging

from odoo import _, fields, models
from odoo.addons.g2p_programs_ext.refusal import coded
from odoo.exceptions import AccessError, UserError

_logger = logging.getLogger(__name__)


class ResUsers(models.Model):
    _inherit = "res.users"

    service_point_ids = fields.Many2many(
        "spp.service.point",
        "spp_service_point_res_users_rel",
        "user_id",
        "service_point_id",
        string="Service points",
        help="Service points this user serves as an agent.",
    )

    def action_generate_api_key_for_device(self, name):
        """Create an API key for the agent ``self``, to set up one device.

        For administrators who provision devices (also over XML-RPC). The key works
        like one the agent makes in Preferences > Account Security > New API Key
        (any RPC, scope none), is shown only once (only its hash is kept) and is
        revoked on its own in Settings > Manage API Keys, without changing the
        agent's password or the other devices' keys.

        :param str name: what the key is for, e.g. the device's label ("Tablet 3, Kibera").
        :return: str, the key: the device sends it in place of the password.
        :raise AccessError: ``[not_system]`` when the caller is not a Settings administrator.
        :raise UserError: ``[not_an_agent]`` when ``self`` is not one active internal user
            in the Service Point Agent group, or is an administrator; ``[key_name]`` when
            ``name`` is empty.
        """
        if not self.env.user._is_system():
            raise AccessError(
                coded("not_system", _("Only Settings administrators may create API keys for agents."))
            )
        if len(self) != 1:
            raise UserError(coded("not_an_agent", _("Create device keys for one agent at a time.")))
        user = self.sudo()
        if (
            not user.active
            or user.share
            or not user.has_group("spp_service_points.group_service_point_agent")
            or user._is_admin()
        ):
            raise UserError(
                coded(
                    "not_an_agent",
                    _(
                        "%s is not an active service point agent: device keys are only "
                        "made for users with the Service Point Agent role (and no administration role).",
                        user.display_name,
                    ),
                )
            )
        name = (name or "").strip() if isinstance(name, str) else ""
        if not name:
            raise UserError(coded("key_name", _("Name the device the key is for (e.g. 'Tablet 3, Kibera').")))
        # _generate() files the key under env.user: run it as the agent.
        key = self.env["res.users.apikeys"].with_user(user.id)._generate(None, name)
        _logger.info(
            "Device API key %r created for agent %s (#%s) by uid %s", name, user.login, user.id, self.env.uid
        )
        return key
