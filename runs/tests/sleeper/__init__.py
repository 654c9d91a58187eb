"""A run kind that exists only for tests and benchmarks: it sleeps through a few steps."""
