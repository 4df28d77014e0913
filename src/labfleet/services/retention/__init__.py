"""Retention of everything that grows: logs, power actions, flash jobs, alerts, the audit log."""
