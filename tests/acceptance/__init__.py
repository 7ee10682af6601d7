"""Acceptance: the README, the wheel, crashes and faults, overload, benches, fuzzing."""
