"""``python -m ssfer.cli``: the ``ssfer`` command (torchrun starts it so)."""
import sys

from ssfer.cli import main

sys.exit(main())
