"""notifier.usecases: newsletters, privacy, feedback, subscriber import, failed mail."""
