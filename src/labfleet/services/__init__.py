"""Use cases. Services flush but never commit: the request or the worker owns the transaction."""
