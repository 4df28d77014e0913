"""Builds: placement and submission, the durable queue, the run over SSH, logs by offset."""
