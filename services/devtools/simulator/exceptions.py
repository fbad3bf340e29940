"""Errors of the simulator and backtest, rooted in the project exception."""

from services.common.exceptions import FraudradarError


class SimulatorError(FraudradarError):
    """Bad simulator or backtest arguments or input (shown to the user, exit code 2)."""
