"""Reliability proof for fraudradar: crashes, broker faults, hostile input, API abuse, privacy.

``python -m reliability`` (``make reliability``) runs every scenario against a real Apache
Kafka broker and the real services as subprocesses, and writes ``reliability.json``
(``{"NAME": {"passed": bool, "figure": ..., "detail": "..."}}``) plus a short report.
``tests/reliability`` runs the same scenarios at a small scale. See docs/reliability.md.
"""
