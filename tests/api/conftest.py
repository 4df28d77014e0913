"""The API tests use the app, client and token fixtures of tests/conftest.py."""
