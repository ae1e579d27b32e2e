"""The HTTP edge: OpenAI routes, the seed-compatible endpoints, the web page, the auth/rate-limit and access middleware."""
