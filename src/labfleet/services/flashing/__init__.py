"""Flashing boards as durable jobs: asking, running under a lease, verifying, rolling back."""

# The row a flash run answers with: the engine hands it on, and reaches the database only
# through the services.
from labfleet.db.models import FlashJob

__all__ = ["FlashJob"]
