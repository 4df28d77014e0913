"""Flashing boards as durable jobs: asking, running under a lease, verifying, rolling back."""
