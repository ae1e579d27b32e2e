"""Base images: the official ones when they can be pulled, stand-ins from Debian otherwise.

A stand-in is what a machine with Debian's package mirror but no container registry can
build: ``debootstrap --variant=minbase`` with python3, python3-venv and ca-certificates,
imported as an image. It carries this machine's CA bundle (PyPI is reachable only through
it here) and, for the torch images, this machine's CPU torch wheel as a find-links
wheelhouse (PyTorch's own index is not reachable). Redis comes from Debian's
``redis-server``. The compose file and Dockerfiles are the ones users run; only the
build arguments / image variables change (see docker-compose.yml's header).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.composecheck.docker import image_exists, run

OFFICIAL_PYTHON = "python:3.11-slim"
OFFICIAL_REDIS = "redis:7-alpine"
STANDIN_PYTHON = "flashsight-standin/python:3.11-bookworm"
STANDIN_TORCH = "flashsight-standin/python-torch:3.11-bookworm"
STANDIN_REDIS = "flashsight-standin/redis:bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
TORCH_WHEEL_GLOB = "torch-2.13.0+cpu-cp311-*.whl"
PYPI_SIMPLE = "https://pypi.org/simple"


@dataclass
class BaseImages:
    """What compose builds on: the values of docker-compose.yml's image variables."""

    env: dict[str, str]
    made: list[str]

    def describe(self) -> str:
        shown = {
            k: self.env.get(k, "(default)") for k in ("PYTHON_IMAGE", "TORCH_PYTHON_IMAGE", "REDIS_IMAGE")
        }
        return ", ".join(f"{k}={v}" for k, v in shown.items())


def pullable(image: str) -> bool:
    """Whether the image is here already or a registry hands it over now."""
    if image_exists(image):
        return True
    try:
        return (
            subprocess.run(
                ["docker", "pull", image], capture_output=True, timeout=120, check=False
            ).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 ``URIs:`` or a ``deb`` line)."""
    for path in [*sorted(glob.glob("/etc/apt/sources.list.d/*")), "/etc/apt/sources.list"]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        match = re.search(r"^URIs:\s*(\S+/debian)\s*$", text, re.M) or re.search(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)\s+bookworm\b", text, re.M
        )
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


def make_python_standin(cache: Path) -> None:
    """Debian bookworm minbase + python3 (3.11) + venv + this machine's CA bundle, imported."""
    rootfs = cache / "rootfs"
    if not (rootfs / "usr/bin/python3").exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(rootfs),
                debian_mirror(),
            ],
            quiet=False,
        )
    shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
    shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    ca = "/etc/ssl/certs/ca-certificates.crt"
    changes = [
        f"ENV PIP_CERT={ca}",
        f"ENV SSL_CERT_FILE={ca}",
        f"ENV REQUESTS_CA_BUNDLE={ca}",
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
    ]
    subprocess.run(
        ["docker", "import", *[a for c in changes for a in ("--change", c)], "-", STANDIN_PYTHON],
        stdin=tar.stdout,
        check=True,
        capture_output=True,
    )
    tar.wait()
    shutil.rmtree(rootfs)  # the image holds it now; a Docker build context must not walk it


def build_from(tag: str, dockerfile: str, context: Path) -> None:
    (context / "Dockerfile").write_text(dockerfile)
    run(["docker", "build", "-t", tag, str(context)], quiet=False)


def make_torch_standin(wheel: Path, cache: Path) -> None:
    """The python stand-in plus a wheelhouse holding this machine's CPU torch wheel."""
    context = cache / "torch-context"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    shutil.copy(wheel, context / wheel.name)
    build_from(
        STANDIN_TORCH,
        f"FROM {STANDIN_PYTHON}\nCOPY {wheel.name} /opt/wheels/\nENV PIP_FIND_LINKS=/opt/wheels\n",
        context,
    )
    shutil.rmtree(context)


def make_redis_standin(cache: Path) -> None:
    context = cache / "redis-context"
    context.mkdir(parents=True, exist_ok=True)
    build_from(
        STANDIN_REDIS,
        f"FROM {STANDIN_PYTHON}\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends redis-server "
        '&& rm -rf /var/lib/apt/lists/*\nEXPOSE 6379\nCMD ["redis-server"]\n',
        context,
    )


def prepare(cache: Path) -> BaseImages:
    """The image variables for compose: empty when the official images are at hand."""
    env: dict[str, str] = {}
    made: list[str] = []
    python_ok, redis_ok = pullable(OFFICIAL_PYTHON), pullable(OFFICIAL_REDIS)
    if python_ok and redis_ok:
        return BaseImages(env, made)
    if not image_exists(STANDIN_PYTHON):
        make_python_standin(cache)
        made.append(STANDIN_PYTHON)
    if not python_ok:
        env["PYTHON_IMAGE"] = env["TORCH_PYTHON_IMAGE"] = STANDIN_PYTHON
        wheels = sorted(
            glob.glob(os.path.join(os.environ.get("PIP_FIND_LINKS", "/opt/wheels"), TORCH_WHEEL_GLOB))
        )
        if wheels:
            if not image_exists(STANDIN_TORCH):
                make_torch_standin(Path(wheels[-1]), cache)
                made.append(STANDIN_TORCH)
            # PyPI lists torch 2.13.0 too (CUDA); pip prefers the wheelhouse's 2.13.0+cpu
            env.update(TORCH_PYTHON_IMAGE=STANDIN_TORCH, TORCH_INDEX=PYPI_SIMPLE)
    if not redis_ok:
        if not image_exists(STANDIN_REDIS):
            make_redis_standin(cache)
            made.append(STANDIN_REDIS)
        env["REDIS_IMAGE"] = STANDIN_REDIS
    return BaseImages(env, made)
