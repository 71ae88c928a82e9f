"""Helpers for tests that start the real processes (worker, session host) against real services."""
