"""Larger-than-memory processing (``LargeDataHandler``)."""
