"""notifier.flows: what each event plans, who may be mailed, when, orders remembered."""
