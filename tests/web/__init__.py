"""notifier.web: the HTTP API, the customer's pages, errors, readiness, proxies."""
