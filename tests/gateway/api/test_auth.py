"""API keys: env and file, hashed, every digest compared, OpenAI-shaped 401s."""

from __future__ import annotations

from pathlib import Path

import pytest
from gateway.api.auth import AuthenticationError, KeyStore, read_keys_file


def test_keys_file_ignores_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# operators\nkey-one\n\n  key-two  # the mobile app\n#key-three\n")
    assert read_keys_file(path) == ["key-one", "key-two"]


def test_store_keeps_only_digests(tmp_path: Path) -> None:
    store = KeyStore.load(["secret-env"], None)
    assert "secret-env" not in repr(vars(store) if hasattr(store, "__dict__") else store._digests)
    assert all(len(d) == 32 for d in store._digests)


def test_bearer_and_x_api_key_are_accepted_and_identity_is_a_digest_prefix() -> None:
    store = KeyStore(["k1", "k2"])
    caller = store.authenticate("Bearer k2", None, "10.0.0.1")
    assert caller.authenticated and caller.identity.startswith("key:") and "k2" not in caller.identity
    assert store.authenticate(None, "k1", "10.0.0.1").authenticated


@pytest.mark.parametrize(
    ("authorization", "api_key", "words"),
    [
        (None, None, "did not provide an API key"),
        ("Bearer wrong", None, "incorrect API key"),
        ("Basic dXNlcjpwdw==", None, "Bearer"),
        ("Bearer ", None, "Bearer"),
    ],
)
def test_bad_credentials_are_a_401_naming_the_problem(
    authorization: str | None, api_key: str | None, words: str
) -> None:
    with pytest.raises(AuthenticationError) as info:
        KeyStore(["k1"]).authenticate(authorization, api_key, "1.2.3.4")
    assert info.value.status() == 401 and info.value.code == "invalid_api_key"
    assert words in info.value.message
    assert info.value.body()["error"]["type"] == "invalid_request_error"


def test_no_keys_means_open_and_callers_are_told_apart_by_address() -> None:
    store = KeyStore([])
    assert store.open
    assert store.authenticate(None, None, "10.0.0.9").identity == "ip:10.0.0.9"
