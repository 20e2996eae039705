"""fedrec: federated on-device recommendation under per-device memory budgets."""

__version__ = "0.1.0"
