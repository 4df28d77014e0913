"""Periodic health checks of build servers, hosts and boards, and the probes that ask them."""
