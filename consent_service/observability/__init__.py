"""Observability: the Prometheus metrics (`metrics`, served by `views`) and structured logs
(`logs`)."""
