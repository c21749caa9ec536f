"""``python -m recstream.sim`` — same as ``recstream sim``."""
from recstream.sim.cli import main

raise SystemExit(main())
