"""notifier.cli: the operator's and marketer's commands as real subprocesses."""
