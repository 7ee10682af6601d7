"""Process plumbing of ``serve`` and ``worker``: start/stop, clock jobs, event loop, logs, metrics.

Nothing here decides what mail to send: ``scheduler`` only tells ``Notifier``
when to look, ``metrics`` only counts. Adapters (``web``, ``cli``) import
these; ``usecases``, ``flows``, ``store`` and ``mail`` never do.
"""
