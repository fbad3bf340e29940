"""Developer and test tooling, never imported by the runtime services (ingest, scorer, api,
common; ``tests/test_layering.py`` checks it): the local Kafka launcher and its CLI, the key
generator, the demo, the simulator and backtest, and the synthetic view stream of the benches
and tests. The ``fraudradar`` CLI reaches them by module path, so the services never load them.
"""
