"""Labelled traffic, backtests and CSV import: making detection quality measurable.

``fraudradar simulate`` (``cli``), ``fraudradar backtest`` (``backtest``, ``metrics``, ``report``) and
``fraudradar import-cdr`` (``cdr_import``). ``catalog`` holds the reference lists the scorer shares.
"""
