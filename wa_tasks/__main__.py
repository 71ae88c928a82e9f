"""``python -m wa_tasks`` = the ``wa-tasks`` command."""

from wa_tasks.cli.main import main

main()
