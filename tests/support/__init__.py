"""Harness shared by the test folders: CLI and daemon subprocesses, the seeded emulator, waiting, an in-memory GES."""
