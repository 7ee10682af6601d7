"""Process plumbing of ``serve`` and ``worker``: clock jobs, event loop, logging, metrics.

Nothing here decides what mail to send: ``scheduler`` only tells ``Notifier``
when to look, ``metrics`` only counts. Adapters (``web``, ``cli``) import
these; ``usecases``, ``flows``, ``store`` and ``mail`` never do.
"""
