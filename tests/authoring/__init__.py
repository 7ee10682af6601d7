"""notifier.authoring: the marketer's checks, previews and catalog traps."""
