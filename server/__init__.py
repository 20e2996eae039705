"""Flower ServerApp of fedrec (thin: the round loop lives in fedrec.federation.coordinator)."""
