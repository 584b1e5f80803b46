"""``python -m amploop`` works like the ``amploop`` script (and under ``torchrun -m amploop``)."""

from amploop.cli import main

main()
