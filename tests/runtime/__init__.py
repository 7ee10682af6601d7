"""notifier.runtime and service: the engine's lifecycle, logs and metrics."""
