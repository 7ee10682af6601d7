"""Use cases: what the shop, a customer or an operator asks of notifier, one module each.

``intake`` accepts shop events, ``choices`` carries out a customer's say
(preferences, unsubscribe, consent, suppressions), ``newsletters`` runs
campaigns, ``privacy`` erases, exports and purges. Each combines the rules of
``flows`` with the tables of ``store`` in one transaction. They may import the
kernel (``errors``, ``clock``, ``settings``, ``schemas``, ``crypto``),
``flows``, ``store`` and ``mail``; never ``web``, ``cli``, ``runtime`` or
``delivery``. ``service.Notifier`` wires them; adapters call ``Notifier``.
"""
