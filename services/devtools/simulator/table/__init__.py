"""A labelled per-subscriber table replayed through the models (``fraudradar evaluate-table``).

``reader`` parses and checks the CSV, ``scorers`` wraps our models and River's for the replay,
``prequential`` replays (score first, learn after) and measures, ``output`` writes metrics.json
and the HTML report with its curves; ``hard`` generates a sample table with the properties that
broke our models on a real one.
"""
