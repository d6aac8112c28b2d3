"""The Celery queue names: the worker routes to them, the operators' health page reads their
depth. Here, low, so that a page need not import the worker package."""

MATCHING_QUEUE = "matching"  # face and voice matching: the heavy work
DEFAULT_QUEUE = "default"  # everything else
