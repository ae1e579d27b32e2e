"""``python -m reasoner``: serve the reasoner on ``REASONER_HOST:REASONER_PORT`` (default 9000)."""

from __future__ import annotations

from modelserver.serve import run

from reasoner.config import ReasonerSettings
from reasoner.main import create_app


def main() -> None:
    settings = ReasonerSettings()
    run(create_app(settings), settings)


if __name__ == "__main__":
    main()
