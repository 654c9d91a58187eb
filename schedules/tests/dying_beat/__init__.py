"""A test app (EXTRA_APPS) that makes a real beat die right after it started: after its pid file
is written, as a beat that cannot load its schedule used to. The other processes are unaffected."""
