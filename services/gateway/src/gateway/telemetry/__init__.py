"""What the gateway reports about itself: Prometheus metrics and the access log."""
