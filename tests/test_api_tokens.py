"""Bearer tokens: issued once, stored only as SHA-256, resolved to their namespaces, revoked at once; the CLI contract."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from pagelens.cli import main
from pagelens.registry import Registry
from pagelens.settings import Settings
from pagelens.store import InvalidNamespace
from pagelens.tokens import TOKEN_PREFIX, UnknownToken, create_token, resolve_token, revoke_token, token_sha256


def test_a_token_resolves_to_its_namespaces_until_revoked(settings: Settings) -> None:
    token = create_token(settings, ["finance", "ops", "finance"], label="analyst")
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40
    grant = resolve_token(settings, token)
    assert grant is not None and grant.namespaces == {"finance", "ops"} and grant.label == "analyst"
    assert grant.allows("ops") and not grant.allows("hr")
    revoke_token(settings, token)
    assert resolve_token(settings, token) is None
    with pytest.raises(UnknownToken, match="already revoked"):
        revoke_token(settings, token)


def test_only_the_hash_is_stored(settings: Settings) -> None:
    token = create_token(settings, ["finance"])
    with Registry(settings.registry_url).engine.connect() as connection:
        rows = [tuple(r) for r in connection.execute(text("SELECT * FROM api_tokens"))]
    assert token not in repr(rows) and token_sha256(token) in repr(rows)


@pytest.mark.parametrize("presented", ["", "pl_", "pl_unknown", "not-ours", "pl_" + "x" * 500, "pl_\udcff"])
def test_unknown_or_malformed_tokens_resolve_to_nothing(settings: Settings, presented: str) -> None:
    create_token(settings, ["finance"])
    assert resolve_token(settings, presented) is None


def test_namespaces_are_validated(settings: Settings) -> None:
    with pytest.raises(InvalidNamespace):
        create_token(settings, ["bad-name"])
    with pytest.raises(ValueError, match="at least one namespace"):
        create_token(settings, [])


def test_cli_prints_the_token_last_and_revokes_it(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from pagelens.settings import get_settings

    monkeypatch.setenv("PAGELENS_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    try:
        assert main(["token", "create", "--namespace", "finance", "--namespace", "ops", "--label", "ci"]) == 0
        token = capsys.readouterr().out.splitlines()[-1]
        assert resolve_token(settings, token).namespaces == {"finance", "ops"}
        assert main(["token", "revoke", token]) == 0
        assert resolve_token(settings, token) is None
        assert main(["token", "revoke", token]) == 2
        assert "already revoked" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
