"""notifier.store: the database, its migrations, the outbox contract, group commit."""
