"""Every operator ``@app.command`` registered on the worker's app (``recstream/app.py``).

A new operator command is a module of this room with a ``register(app, settings)``,
added here.
"""
from __future__ import annotations

import faust

from recstream.ops import audit, commands, experiment_commands, registry_commands
from recstream.settings import Settings


def register(app: faust.App, settings: Settings) -> None:
    """Every operator ``@app.command`` on ``app`` (called by :func:`recstream.app.create_app`)."""
    commands.register(app, settings)
    registry_commands.register(app, settings)
    registry_commands.register_provenance(app, settings)
    audit.register(app, settings)  # issue #14: recstream audit fairness|feedback|security|safety
    experiment_commands.register(app, settings)
