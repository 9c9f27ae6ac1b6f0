import logging
import random
import time

from psycopg2 import OperationalError, errorcodes

from odoo.addons.queue_job.controllers.main import (
    DEPENDS_MAX_TRIES_ON_CONCURRENCY_FAILURE,
    PG_CONCURRENCY_ERRORS_TO_RETRY,
    RunJobController,
)
from odoo.tools import SQL

_logger = logging.getLogger(__name__)


class G2PRunJobController(RunJobController):
    def _enqueue_dependent_jobs(self, env, job):
        """Release the jobs waiting on ``job`` (done) once all their parents are done,
        serialized with the other parents of the same children.

        The suite's steps run as groups of parallel jobs followed by one job that depends
        on all of them (queue_job's ``chain(group(...), finish)``). Two jobs of a group
        that end at the same time both update the waiting job's row; under REPEATABLE
        READ the second fails to serialize. queue_job 17.0.1.5.4 then retries in the same,
        aborted transaction ("current transaction is aborted": the request answers 500
        and its failure is logged; fixed upstream for 18.0 only, OCA/queue#855, #867).
        Here the children's rows are first locked ``FOR UPDATE`` (a failure to serialize
        is expected there, so not logged as a bad query); on such a failure the whole
        transaction is rolled back (the job's own ``done`` was committed before) and
        retried with a new snapshot. Once the lock is held, queue_job's own UPDATE
        (``enqueue_waiting``) cannot conflict, and of two parents ending together the
        one with the later snapshot sees both done, so the waiting job is released.

        :param env: the request's environment (superuser), ``job``: a queue_job Job.
        :return: None
        :raise OperationalError: still failing after queue_job's number of tries."""
        tries = 0
        while True:
            try:
                # Raw SQL: a row lock on queue_job's own table, which the ORM cannot take;
                # nothing is written here, queue_job invalidates its cache after its UPDATE.
                env.cr.execute(
                    SQL(
                        """SELECT id FROM queue_job WHERE uuid IN (
                               SELECT json_array_elements_text(dependencies::json->'reverse_depends_on')
                                 FROM queue_job WHERE uuid = %s)
                           ORDER BY id FOR UPDATE""",
                        job.uuid,
                    ),
                    log_exceptions=False,
                )
                job.enqueue_waiting()
                return
            except OperationalError as err:
                if err.pgcode not in PG_CONCURRENCY_ERRORS_TO_RETRY:
                    raise
                env.cr.rollback()
                if tries >= DEPENDS_MAX_TRIES_ON_CONCURRENCY_FAILURE:
                    raise
                tries += 1
                wait = random.uniform(0.0, 0.1 * 2**tries)
                _logger.info(
                    "%s releasing the jobs waiting on %s, retry %d in %.3f s",
                    errorcodes.lookup(err.pgcode),
                    job.uuid,
                    tries,
                    wait,
                )
                time.sleep(wait)
