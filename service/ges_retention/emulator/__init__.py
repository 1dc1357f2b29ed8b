"""A faithful local GES + IAM emulator, for integration tests, the demo and the benchmarks.

`app.running_emulator()` serves it in-process on a free port; `command.run()` is `ges-retention emulator`.
The wire behaviour follows ges-api.md; `app.py` documents the routes and the emulator's own choices.
"""
