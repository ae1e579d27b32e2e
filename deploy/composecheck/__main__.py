"""python -m deploy.composecheck: build, run and check docker-compose.yml, then take it all down."""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import time
from pathlib import Path

from deploy.composecheck import standin
from deploy.composecheck.docker import Compose, DockerError, image_size_mb, run
from deploy.composecheck.scenario import SERVICES, Tally, run_scenario

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def preflight() -> str | None:
    for tool, hint in (
        ("docker", "apt-get install -y docker.io, then start dockerd"),
        ("docker-compose", "apt-get install -y docker-compose"),
        ("debootstrap", "apt-get install -y debootstrap (only needed when images cannot be pulled)"),
    ):
        if shutil.which(tool) is None:
            return f"{tool} is missing: {hint}"
    try:
        run(["docker", "info"], timeout=30)
    except (DockerError, OSError) as exc:
        return f"the Docker engine does not answer ({exc}); start dockerd"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--project", default="flashsightcheck", help="compose project name (prefix of everything made)"
    )
    parser.add_argument(
        "--cache", type=Path, default=REPO / ".cache" / "compose-check", help="stand-in rootfs cache"
    )
    args = parser.parse_args()
    if problem := preflight():
        print(f"compose-check: cannot run: {problem}", file=sys.stderr)
        return 2
    tally = Tally()
    env_file, made_env = REPO / ".env", False
    if not env_file.exists():  # compose needs the file (v1.29 has no optional env_file); all lines commented
        shutil.copyfile(REPO / ".env.example", env_file)
        made_env = True
    started = time.monotonic()
    bases = standin.prepare(args.cache)
    made = ", ".join(bases.made) or "none"
    print(f"base images: {bases.describe()}; made now: {made} ({time.monotonic() - started:.0f}s)")
    ports = {name: str(free_port()) for name in ("GATEWAY_PORT", "VISION_PORT", "REASONER_PORT")}
    compose = Compose(
        REPO,
        args.project,
        {
            **bases.env,
            **ports,
            "COMPOSE_DOCKER_CLI_BUILD": "0",
            # the check's cascade question and the order page are Chinese; SmolLM2's default is en
            "GATEWAY_REASONER_LANGUAGES": "zh,en",
        },
    )
    base_url = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
    try:
        built = time.monotonic()
        compose("build", quiet=False)
        build_s = time.monotonic() - built
        run_scenario(compose, base_url, tally)
    except DockerError as exc:
        tally.check("docker-compose", False, str(exc)[-1500:])
    finally:
        if tally.failed:
            print(compose("logs", "--no-color", "--tail", "25"))
        compose("down", "-v", "--remove-orphans", quiet=False)
        left = compose.leftovers()
        tally.check("down -v leaves nothing", not any(left.values()), f"{left}")
        if made_env:
            env_file.unlink()
    if "build_s" in locals():
        print(
            f"build time: {build_s:.0f}s (docker-compose build; layers cached from earlier runs are reused)"
        )
    images = {s: f"{args.project}_{s}" for s in SERVICES if s != "redis"}
    images["redis"] = bases.env.get("REDIS_IMAGE", standin.OFFICIAL_REDIS)
    for service, image in images.items():
        try:
            print(f"image {service}: {image} {image_size_mb(image):.0f} MB")
        except DockerError:
            print(f"image {service}: {image} (not built)")
    print(f"compose-check: {tally.passed} passed, {tally.failed} failed")
    return 0 if tally.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
