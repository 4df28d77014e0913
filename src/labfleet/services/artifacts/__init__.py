"""Artifact metadata over the content-addressed store: finding, verified reads, retention."""
