"""The command line: inventory over the REST API; serve, db and token on the database."""
