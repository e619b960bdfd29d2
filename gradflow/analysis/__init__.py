"""Analyses built on the engine: decay rates, the Pascanu bound, mean-field predictions."""
