"""FlashSight's reasoner: an OpenAI-compatible text model server ("think" stage of a cascade)."""
