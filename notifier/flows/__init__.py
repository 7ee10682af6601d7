"""Business rules: what to send, when, and to whom. No I/O of their own."""
