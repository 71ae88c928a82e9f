"""The ``web`` process: HTTP API (seed §8) and, later, the management pages."""
