"""notifier.delivery: SMTP transport, retry, pace, slots, the dispatcher, webhooks, workers."""
