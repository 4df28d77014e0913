"""Builds: placement and submission, the durable queue, the run over SSH, logs by offset."""

# The row the build worker holds while it runs a job: the engine handles it, through the
# services, as an opaque job, and reaches the database only through them.
from labfleet.db.models import BuildJob

__all__ = ["BuildJob"]
