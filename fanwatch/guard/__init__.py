"""``fanwatch guard``: permission events answered by a policy."""

from .core import DEFAULT_DEADLINE, DEFAULT_WATCHDOG, Guard, GuardConfig
from .decisionlog import DecisionLog
from .notify import Notifier

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_WATCHDOG",
    "DecisionLog",
    "Guard",
    "GuardConfig",
    "Notifier",
]
