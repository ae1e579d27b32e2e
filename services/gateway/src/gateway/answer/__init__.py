"""Answering one chat request: the request service, route choice, prompts, captioning, streaming, degradation, shedding."""
