"""``python -m l4kit`` is the ``l4kit`` command."""

from l4kit.cli import main

main()
