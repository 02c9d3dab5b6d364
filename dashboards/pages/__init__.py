"""The console's pages: one folder each with ``layout.py``, ``callbacks.py`` and ``figures.py``."""
