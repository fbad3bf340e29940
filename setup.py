"""Builds the compiled parts: the scorer's per-view record update and sweep scan
(services/scorer/_fastcore.c) and the Half-Space Trees walks (models/_hstcore.c).

Everything else is in pyproject.toml. The extensions are optional: where no C compiler is at hand
the install still succeeds and the same code runs in Python (``services.scorer.features.apply_view``,
``scan_records``; ``models.hst._walk_python``) with identical results and fewer views per second;
``fraudradar score`` logs which one it runs.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "models._hstcore",
            sources=["models/_hstcore.c"],
            extra_compile_args=["-O2", "-std=c11", "-ffp-contract=off", "-Wall", "-Wextra"],
            libraries=["m"],
            optional=True,
        ),
        Extension(
            "services.scorer._fastcore",
            sources=["services/scorer/_fastcore.c"],
            # ISO C, no fused multiply-add: every float operation rounds as the Python one does
            extra_compile_args=["-O2", "-std=c11", "-ffp-contract=off", "-Wall", "-Wextra"],
            libraries=["m"],
            optional=True,
        ),
    ],
)
