"""Executors: one contract (base), one module per backend."""
