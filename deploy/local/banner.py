"""What the launcher prints once everything is ready: the web page and a curl that works."""

from __future__ import annotations

import shlex
from pathlib import Path

QUESTION = "订单号是多少?"


def curl_example(gateway_port: int, image: Path, *, question: str = QUESTION) -> str:
    """A shell command that asks ``question`` about ``image`` (sent as a base64 ``data:`` URL).

    The body is ``printf``'s format (its one ``%s`` takes the base64) piped to ``curl -d @-``:
    printf is a shell builtin, so a large image never hits the kernel's per-argument limit.
    """
    body = (
        '{"model":"auto","messages":[{"role":"user","content":['
        f'{{"type":"text","text":"{question}"}},'
        '{"type":"image_url","image_url":{"url":"data:image/png;base64,%s"}}]}]}'
    )
    return (
        f"printf {shlex.quote(body)} \"$(base64 < {shlex.quote(str(image))} | tr -d '\\n')\" \\\n"
        f"  | curl -s http://127.0.0.1:{gateway_port}/v1/chat/completions "
        "-H 'Content-Type: application/json' -d @-"
    )


def ready_banner(gateway_port: int, image: Path, log_dir: Path) -> str:
    """The lines printed when the stack is up."""
    return "\n".join(
        [
            "",
            "FlashSight is ready.",
            f"  web page:  http://127.0.0.1:{gateway_port}/",
            f"  logs:      {log_dir}/<service>.log",
            "  try it:",
            "",
            curl_example(gateway_port, image),
            "",
            "Ctrl-C stops everything.",
            "",
        ]
    )
