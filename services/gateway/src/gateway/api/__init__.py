"""The HTTP edge.

OpenAI routes, health and readiness, the seed-compatible endpoints, the web page, the
auth/rate-limit and access middleware, and the HTTP server protocol.
"""
