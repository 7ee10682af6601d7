"""Tools for the people who write the mail: check, preview and translate the templates.

Nothing here runs when mail is sent; these are the workshop's adapters,
called from ``notifier templates …`` and ``notifier i18n …``.
"""
