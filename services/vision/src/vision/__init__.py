"""FlashSight's vision service: an OpenAI-compatible model server that looks at images.

The serving runtime (routes, batching, streaming) is :mod:`modelserver`; this package adds
its settings and its backends (:data:`vision.backends.BACKENDS`).
"""
