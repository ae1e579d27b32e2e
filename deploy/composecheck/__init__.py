"""``make compose-check``: docker-compose.yml run for real, end to end, on this machine.

Standard library only (it runs with the system Python 3.11, before any venv exists):
:mod:`.standin` makes base images from Debian's packages when the official ones cannot be
pulled, :mod:`.docker` wraps the docker / docker-compose commands, :mod:`.client` talks to
the gateway, and :mod:`.scenario` is the user's story it checks, step by step.
"""
