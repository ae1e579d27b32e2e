"""``python -m vision``: serve the vision service on ``VISION_HOST:VISION_PORT``."""

from __future__ import annotations

from modelserver.serve import run

from vision.config import VisionSettings
from vision.main import create_app


def main() -> None:
    settings = VisionSettings()
    run(create_app(settings), settings)


if __name__ == "__main__":
    main()
