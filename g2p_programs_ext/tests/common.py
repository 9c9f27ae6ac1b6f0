from datetime import date

from dateutil.relativedelta import relativedelta

from odoo.addons.mail.tests.common import mail_new_test_user
from odoo.addons.queue_job.job import Job
from odoo.tests import TransactionCase


class G2PCommon(TransactionCase):
    """A company's registry with a few households, and one user per role."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.officer = mail_new_test_user(
            cls.env, login="g2p_officer", groups="g2p_programs_ext.group_program_officer"
        )
        cls.validator = mail_new_test_user(
            cls.env, login="g2p_validator", groups="g2p_programs_ext.group_program_validator"
        )
        cls.approver = mail_new_test_user(
            cls.env, login="g2p_approver", groups="g2p_programs_ext.group_cycle_approver"
        )
        cls.manager = mail_new_test_user(
            cls.env, login="g2p_manager", groups="g2p_programs_ext.group_program_manager"
        )
        cls.internal = mail_new_test_user(cls.env, login="g2p_internal", groups="base.group_user")
        cls.today = date.today()
        cls.Partner = cls.env["res.partner"]
        cls.head_kind = cls.env.ref("g2p_programs_ext.membership_kind_head")

    @classmethod
    def born(cls, years, days=0):
        return cls.today - relativedelta(years=years, days=days)

    @classmethod
    def make_household(cls, name, members):
        """members: list of dicts of individual values; the first is the head."""
        group = cls.Partner.create({"name": name, "is_registrant": True, "is_group": True})
        individuals = cls.Partner.create(
            [{"name": "%s %s" % (name, i), "is_registrant": True, **vals} for i, vals in enumerate(members)]
        )
        cls.env["g2p.group.membership"].create(
            [
                {
                    "group_id": group.id,
                    "individual_id": ind.id,
                    "kind_ids": [(6, 0, cls.head_kind.ids)] if i == 0 else [],
                }
                for i, ind in enumerate(individuals)
            ]
        )
        return group, individuals


def run_job_as_the_runner_does(env, job_record):
    """Run a stored job as queue_job's controller does (``/queue_job/runjob``): perform it;
    when it raises, roll its work back and store it failed with the error (``set_failed``,
    ``store``): a refusal is not retried, the job fails for good.
    :return: the exception raised, or None."""
    job = Job.load(env, job_record.uuid)
    job.set_started()
    try:
        with env.cr.savepoint():
            result = job.perform()
    except Exception as exc:  # any error fails the job, as in the controller
        job.set_failed(exc_info=repr(exc), exc_name=type(exc).__name__, exc_message=str(exc))
        job.store()
        return exc
    job.set_done(result=result)
    job.store()
    return None
