"""`make bench`: the hub measured end to end against this machine's own limit.

`python -m bench.run` starts a throwaway PostgreSQL database, real `hub serve --no-worker` and
`hub worker` processes, and a loopback webhook sink in a process of its own, then runs the
scenarios of issue 8 (baseline, throughput, latency, publish, fan-out, backlog) and prints a
table; every figure also goes to `bench/results/<timestamp>.json` and `bench/results/latest.json`.

Modules: `run` (the entry point and the order of things), `config` (sizes, full and `--quick`),
`services` (the database and the hub processes), `sink` (the sink process and its client),
`client` (the hub's API as a benchmark client sees it), `context` (what every scenario gets),
`scenarios/*` (one module per scenario), `stats` (percentiles), `procstats` (RSS, CPU, the
machine), `profile` (`--profile`: py-spy), `report` (targets, the table, the JSON file).
"""
