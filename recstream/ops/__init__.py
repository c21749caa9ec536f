"""The operations room: commands an operator runs, each in its own process.

``recstream train|replay`` (:mod:`.commands`: :mod:`.fit` over :mod:`.data_window` and
:mod:`.gate`, data read by :mod:`.training_data`), ``recstream models`` and
``recstream provenance`` (:mod:`.registry_commands`, :mod:`.provenance`), ``recstream
experiment`` (:mod:`.experiment_commands` over :mod:`.experiment_data`,
:mod:`.experiment_analysis`, :mod:`.experiment_report`), and the two
argparse tools ``recstream evaluate`` (:mod:`.evaluate`) and ``recstream compare``
(:mod:`.compare`).  Ops import the kernel, ``tables`` and ``models``; never ``agents`` or
``web``.

Every command is registered on the app by :func:`recstream.ops.all_commands.register`
(a module of its own: this package's ``__init__`` imports none of its children, so
importing one operation, e.g. ``recstream.ops.fit`` in a training child process, does
not import them all, and the package never depends on its own modules).
"""
