"""Errors of the simulator, backtest and CSV import, rooted in the project exception."""

from services.common.exceptions import FraudradarError


class SimulatorError(FraudradarError):
    """Bad simulator, backtest or import arguments or input (shown to the user, exit code 2)."""
