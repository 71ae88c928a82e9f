"""The ``wa-tasks`` command line."""
