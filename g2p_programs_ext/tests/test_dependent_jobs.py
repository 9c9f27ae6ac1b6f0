from psycopg2 import Error as PsycopgError

from odoo import SUPERUSER_ID, api, sql_db
from odoo.addons.queue_job.controllers.main import RunJobController
from odoo.addons.queue_job.delay import chain, group
from odoo.addons.queue_job.job import Job
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from ..controllers.queue_job import G2PRunJobController


@tagged("post_install", "-at_install")
class TestDependentJobs(TransactionCase):
    """Two jobs of a group ending together, each releasing the job that waits on both
    (the suite's chain(group(...), finish)): on real, separate connections, the second
    one's snapshot older than the first one's release. Two real transactions must
    commit to race, hence the commits (what they create is deleted at the end)."""

    def _graph(self, cr):
        env = api.Environment(cr, SUPERUSER_ID, {})
        partner = env.ref("base.main_partner")
        first, second = (partner.delayable(description="part %s" % i).exists() for i in (1, 2))
        finish = partner.delayable(description="finish").exists()
        chain(group(first, second), finish).delay()
        cr.execute("SELECT uuid FROM queue_job WHERE name IN ('part 1', 'part 2', 'finish') ORDER BY name")
        finish_uuid, first_uuid, second_uuid = (row[0] for row in cr.fetchall())
        cr.execute("UPDATE queue_job SET state = 'done' WHERE uuid IN %s", [(first_uuid, second_uuid)])
        cr.commit()  # pylint: disable=invalid-commit
        return first_uuid, second_uuid, finish_uuid

    def _race(self, controller):
        """Both parents done; the second's transaction begins before the first releases
        the child. :return: (the child's state, the exception of the second or None)."""
        db = sql_db.db_connect(self.env.cr.dbname)
        with db.cursor() as cr_a, db.cursor() as cr_b:
            try:
                first, second, finish = self._graph(cr_a)
                cr_b.execute("SELECT 1")  # the second's snapshot, older than the release
                env_a = api.Environment(cr_a, SUPERUSER_ID, {})
                controller._enqueue_dependent_jobs(env_a, Job.load(env_a, first))
                cr_a.commit()  # pylint: disable=invalid-commit
                env_b = api.Environment(cr_b, SUPERUSER_ID, {})
                error = None
                try:
                    controller._enqueue_dependent_jobs(env_b, Job.load(env_b, second))
                    cr_b.commit()  # pylint: disable=invalid-commit
                except PsycopgError as exc:
                    error = exc
                    cr_b.rollback()
                cr_a.execute("SELECT state FROM queue_job WHERE uuid = %s", [finish])
                return cr_a.fetchone()[0], error
            finally:
                cr_a.rollback()
                cr_a.execute("DELETE FROM queue_job WHERE name IN ('part 1', 'part 2', 'finish')")
                cr_a.commit()  # pylint: disable=invalid-commit

    def test_parents_ending_together_release_the_child(self):
        state, error = self._race(G2PRunJobController())
        self.assertIsNone(error)
        self.assertEqual(state, "pending")

    @mute_logger("odoo.sql_db", "odoo.addons.queue_job.controllers.main")
    def test_queue_job_alone_fails_there(self):
        # what the override is for: queue_job 17.0's own retry runs in the aborted transaction
        _state, error = self._race(RunJobController())
        self.assertIsNotNone(error)
