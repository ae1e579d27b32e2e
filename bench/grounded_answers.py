#!/usr/bin/env python
"""Do the answers name the right facts? The evaluation set on the real embedded stack, per route and language.

One run starts Redis, vision (ocr-lite), reasoner (SmolLM2-135M) and the gateway as real
processes (``devkit.stack``), then asks every question of ``devkit/evalset`` twice:

* ``direct`` (``model: "direct"``): ocr-lite answers the question itself;
* ``cascade`` (``model: "cascade"``): ocr-lite captions, SmolLM2 answers, unless the
  language gate sends the question to vision (``route_reason: reasoner_language``).

An answer *passes* when it names every fact its question lists (``devkit/evalset/cases.py``),
claims none of the absent ones, and is written in the question's language
(``devkit/evalset/scoring.py``). Printed per route × question language: passes, the share of
facts named, how many answers the gate sent to vision, how many talk about the picture's
size or colours (the distraction the cascade prompt keeps apart) and how many loop (a
12-token span said twice). Decoding is greedy (``temperature: 0``), so a rerun on the same
code gives the same answers; the figures are not timings and do not depend on the load.

    python bench/grounded_answers.py                          # the figures in docs/models.md
    python bench/grounded_answers.py --reasoner-languages '*' # the cascade without the gate
    python bench/grounded_answers.py --quick                  # the seed screenshot only
    python bench/grounded_answers.py --show                   # also print every answer
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from devkit.evalset.cases import CASES, SEED, Case, Question  # noqa: E402
from devkit.evalset.scoring import Score, score  # noqa: E402
from devkit.screens import as_data_url  # noqa: E402
from devkit.stack import running_stack  # noqa: E402

ROUTES = ("direct", "cascade")
_TOKEN = re.compile(r"[\u3400-\u9fff]|[A-Za-z0-9_']+")
LOOP_SPAN = 12
_PICTURE_FACT = re.compile(r"\d+\s*×\s*\d+|colou?rs?\b|像素|颜色", re.IGNORECASE)


def loops(text: str, span: int = LOOP_SPAN) -> bool:
    """Whether ``text`` says some run of ``span`` tokens (words, Chinese characters) twice."""
    tokens = [t.lower() for t in _TOKEN.findall(text)]
    seen: set[tuple[str, ...]] = set()
    for i in range(len(tokens) - span + 1):
        gram = tuple(tokens[i:i + span])
        if gram in seen:
            return True
        seen.add(gram)
    return False


@dataclass(frozen=True, slots=True)
class Result:
    """One question asked on one route."""

    case: str
    route: str
    question: Question
    answer: str
    route_reason: str
    score: Score
    loops: bool

    @property
    def distracted(self) -> bool:
        """Whether the answer talks about the picture's size or colours."""
        return _PICTURE_FACT.search(self.answer) is not None


def ask(client: httpx.Client, case: Case, question: Question, route: str, max_tokens: int) -> Result:
    body: dict[str, Any] = {
        "model": route,
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": as_data_url(case.png())}},
            {"type": "text", "text": question.text},
        ]}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    response = client.post("/v1/chat/completions", json=body)
    response.raise_for_status()
    data = response.json()
    answer = data["choices"][0]["message"]["content"] or ""
    reason = data["flashsight"]["route_reason"]
    return Result(case.name, route, question, answer, reason, score(case, question, answer), loops(answer))


def report(results: list[Result]) -> None:
    groups: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for result in results:
        groups[(result.route, result.question.lang)].append(result)
    print(f"{'route':8} {'lang':4} {'passed':>9} {'facts named':>12} {'to vision':>10} "
          f"{'size/colour':>12} {'loops':>6}")
    for (route, lang), group in sorted(groups.items()):
        passed = sum(r.score.passed for r in group)
        named = sum(r.score.facts_named for r in group)
        total = sum(r.score.facts_total for r in group)
        gated = sum(r.route_reason == "reasoner_language" for r in group)
        looping = sum(r.loops for r in group)
        distracted = sum(r.distracted for r in group)
        print(f"{route:8} {lang:4} {passed:>4}/{len(group):<4} {named / total:>11.0%} "
              f"{gated:>10} {distracted:>12} {looping:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the seed screenshot only")
    parser.add_argument("--show", action="store_true", help="print every answer")
    parser.add_argument("--reasoner-languages", default=None,
                        help="GATEWAY_REASONER_LANGUAGES for this run (default: the gateway's, en)")
    parser.add_argument("--max-tokens", type=int, default=160)
    args = parser.parse_args()

    cases = (SEED,) if args.quick else CASES
    gateway_env = {"GATEWAY_REASONER_TIMEOUT_S": "300", "GATEWAY_REASONER_FIRST_TOKEN_TIMEOUT_S": "300"}
    if args.reasoner_languages is not None:
        gateway_env["GATEWAY_REASONER_LANGUAGES"] = args.reasoner_languages
    print(f"machine: {platform.node()} ({platform.machine()}), python {platform.python_version()}")
    print(f"questions: {sum(len(c.questions) for c in cases)} on {len(cases)} screenshots × routes {ROUTES}")
    results: list[Result] = []
    with (
        running_stack(gateway_env=gateway_env) as stack,
        httpx.Client(base_url=stack.url, timeout=600) as client,
    ):
        for case in cases:
            for question in case.questions:
                for route in ROUTES:
                    result = ask(client, case, question, route, args.max_tokens)
                    results.append(result)
                    if args.show:
                        mark = "PASS" if result.score.passed else "FAIL"
                        print(f"--- {mark} {case.name} [{route}/{result.route_reason}] {question.text}\n"
                              f"{result.answer.strip()}\n")
    report(results)


if __name__ == "__main__":
    main()
