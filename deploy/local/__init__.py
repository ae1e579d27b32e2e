"""``python -m deploy.local`` (what ``make run`` calls): the whole stack on one machine.

Modules, one idea each:
- settings.py   ports, URLs and paths from environment > .env > defaults
- redis.py      use the Redis at REDIS_URL when it answers PING, else plan an embedded Valkey
- supervisor.py the supervisord config: one program per service, logs under logs/
- logtail.py    streams each service's new log lines to the terminal, prefixed by its name
- readiness.py  polls every /readyz until all answer 200 or time runs out
- banner.py     the URL and a curl example that works
- cli.py        ties them together and stops everything on Ctrl-C
"""
