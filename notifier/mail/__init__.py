"""What a customer receives: translated, formatted and rendered mail."""
