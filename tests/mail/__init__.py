"""notifier.mail: composing, rendering, signing and translating one mail."""
