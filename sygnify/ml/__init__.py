"""Real-time and batch model serving (``RealTimeML``)."""
