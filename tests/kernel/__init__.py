"""The kernel at notifier's root: settings, crypto and key handling, what may be stored."""
