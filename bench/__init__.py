"""Benchmarks of ges-retention: `python -m bench` (or `make bench`) writes `bench/results/latest.json`.

Scenarios (one module each): `rate_limit` (1), `unthrottled` (2, 3 and 6 in one run), `zero_latency` (2b),
`listing` (4), `planning` (5). The emulator always runs in its own process (`bench.emulator`), the measured side in
another (`bench.service` for the real CLI, `bench.peers` for the official SDK and the bare aiohttp ceiling).
"""
