"""Answering one chat request.

The request service (``service``) and the steps it owns: route choice, prompts, upstream
bodies, captioning, streaming, degradation, shedding, and the responses it builds.
"""
