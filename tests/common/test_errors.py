"""ApiError, the base of every service's exception tree: status, OpenAI body, Retry-After."""

from __future__ import annotations

from flashsight_common.errors import ApiError


class Busy(ApiError):
    status_code = 503
    error_type = "overloaded_error"
    default_code = "overloaded"
    default_retry_after = 1


def test_class_defaults_make_the_body_and_headers() -> None:
    error = Busy("try later")
    assert error.status() == 503 and error.headers() == {"Retry-After": "1"}
    assert error.body() == {
        "error": {"message": "try later", "type": "overloaded_error", "param": None, "code": "overloaded"}
    }


def test_an_instance_can_name_the_field_its_code_and_its_wait() -> None:
    error = Busy("slow down", param="model", code="queue_full", retry_after=7)
    assert error.headers() == {"Retry-After": "7"}
    assert error.body()["error"] == {
        "message": "slow down", "type": "overloaded_error", "param": "model", "code": "queue_full"
    }
    assert ApiError("bug").headers() == {} and ApiError("bug").status() == 500
