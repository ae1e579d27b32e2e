"""The vision and reasoner model services: the HTTP client and the circuit breaker in front of it."""
