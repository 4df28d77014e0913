"""Environments: artifacts checked against a reserved target, deployed, booted, torn down."""
