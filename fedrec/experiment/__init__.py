"""Scenarios, run directories and launching simulations (the only part of fedrec that may import Flower)."""
