"""Route modules, one per collection."""
