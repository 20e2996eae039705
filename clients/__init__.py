"""Flower ClientApp of fedrec (thin: the maths lives in fedrec.federation)."""
