"""The benchmark of issue 6: ``python -m bench``."""
