"""``python -m dropnet``: the command line (see ``dropnet.cli``)."""
from .cli import main

raise SystemExit(main())
