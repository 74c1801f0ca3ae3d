"""``python -m eir``: the ``eir`` command without the console script (tests, agent_process)."""

from eir.cli import main

main()
