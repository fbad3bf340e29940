"""Builds the compiled parts: the scorer's per-view record update and sweep scan
(services/scorer/_fastcore.c) and the Half-Space Trees walks (models/_hstcore.c).

Everything else is in pyproject.toml. The extensions are optional: where no C compiler is at hand
the install still succeeds and the same code runs in Python (``services.scorer.features.apply_view``,
``scan_records``; ``models.hst._walk_python``) with identical results and fewer views per second;
``fraudradar score`` logs which one it runs.
"""

from setuptools import Extension, setup


def _compiled(name: str, source: str) -> Extension:
    # ISO C, no fused multiply-add: every float operation rounds as the Python twin's does
    return Extension(name, sources=[source], libraries=["m"], optional=True,
                     extra_compile_args=["-O2", "-std=c11", "-ffp-contract=off", "-Wall", "-Wextra"])


setup(
    ext_modules=[
        _compiled("models._hstcore", "models/_hstcore.c"),
        _compiled("services.scorer._fastcore", "services/scorer/_fastcore.c"),
    ],
)
