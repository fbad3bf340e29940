"""``fraudradar demo``: the whole pipeline on this machine, with simulated traffic (``cli``).

The parts, in the order a run uses them: ``signals`` (SIGTERM/SIGINT stop every child),
``config`` (keys, signing key, the demo partner), ``broker`` (the Kafka to use), ``processes``
(ingest, scorer and API as child processes, and their counters), ``traffic`` (simulate, then
stream live with progress), ``results`` (injected vs flagged, the backtest), ``tour`` (real API
answers) and ``bank_env`` (what docs/bank-guide.md runs against); ``console`` prints.
"""
