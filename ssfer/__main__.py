"""``python -m ssfer``: the same as the ``ssfer`` command."""
import sys

from ssfer.cli import main

sys.exit(main())
