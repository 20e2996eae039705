"""Training loops: the centralised trainer (federated local loops and distillation come later)."""
