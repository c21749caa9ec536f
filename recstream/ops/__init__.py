"""The operations room: commands an operator runs, each in its own process.

``recstream train|replay`` (:mod:`.commands`: :mod:`.fit` over :mod:`.data_window` and
:mod:`.gate`, data read by :mod:`.training_data`), ``recstream models`` and
``recstream provenance`` (:mod:`.registry_commands`, :mod:`.provenance`), ``recstream
experiment`` (:mod:`.experiment_commands` over :mod:`.experiment_data`,
:mod:`.experiment_analysis`, :mod:`.experiment_report`), and the two
argparse tools ``recstream evaluate`` (:mod:`.evaluate`) and ``recstream compare``
(:mod:`.compare`).  Ops import the kernel, ``tables`` and ``models``; never ``agents`` or
``web``.
"""
from __future__ import annotations

import faust

from recstream.settings import Settings


def register(app: faust.App, settings: Settings) -> None:
    """Every operator ``@app.command`` on ``app`` (called by :func:`recstream.app.create_app`)."""
    from recstream.ops import audit, commands, experiment_commands, registry_commands

    commands.register(app, settings)
    registry_commands.register(app, settings)
    registry_commands.register_provenance(app, settings)
    audit.register(app, settings)  # issue #14: recstream audit fairness|feedback|security|safety
    experiment_commands.register(app, settings)
