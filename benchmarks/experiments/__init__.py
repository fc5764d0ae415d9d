"""Accuracy experiments behind decisions and closing notes (not timed suites): run as modules."""
