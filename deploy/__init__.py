"""How FlashSight runs outside its services' code: the local launcher (``deploy.local``).

The compose files and Dockerfiles stay where Docker looks for them (repo root and
``services/<svc>/``); this package is the one program of its own, so it is importable
and unit-tested like the services (tests/deploy/).
"""
