"""Prometheus metrics: one seam class per component, each on an explicit registry."""
