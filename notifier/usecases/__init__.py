"""Use cases: what the shop, a customer or an operator asks of notifier, one module each.

``intake`` accepts shop events, ``messages`` handles one message (an ad-hoc
send, a look-up, a cancel, a retry) and ``views`` shows it as ``MessageOut``,
``choices`` carries out a customer's say (preferences, unsubscribe, consent,
suppressions), ``newsletters`` runs campaigns and ``subscriber_import`` brings
in subscribers, ``privacy`` erases, exports and purges, ``feedback`` and
``provider_feedback`` take bounces and complaints. Each combines the rules of
``flows`` with the tables of ``store`` in one transaction. They may import the
kernel (``errors``, ``clock``, ``settings``, ``schemas``, ``crypto``),
``flows``, ``store`` and ``mail``; never ``web``, ``cli``, ``runtime`` or
``delivery``. ``service.Notifier`` wires them; adapters call ``Notifier``.
"""
