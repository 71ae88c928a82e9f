"""Benchmarks of wa-tasks against the real processes: ``python -m bench <name>``.

Each benchmark starts its own private Redis, uses a PostgreSQL (or SQLite) database it resets
itself, drives the stack through the thin client, prints its figures and writes them with a
description of the machine as JSON under ``bench/results/``.
"""
