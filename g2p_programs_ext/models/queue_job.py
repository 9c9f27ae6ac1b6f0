from odoo import models


class QueueJob(models.Model):
    _inherit = "queue.job"

    def write(self, vals):
        """When a job of the suite fails for good, let its record unlock itself."""
        result = super().write(vals)
        if vals.get("state") == "failed":
            for job in self:
                if job.model_name in ("g2p.cycle", "g2p.program") and job.record_ids:
                    records = self.env[job.model_name].sudo().browse(job.record_ids).exists()
                    records._on_job_failed(job.name or job.method_name)
        return result
