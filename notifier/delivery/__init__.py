"""Getting rendered mail to the mail server: claim, re-check, render, send, record."""
