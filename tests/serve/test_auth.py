"""API keys on both backends: made, checked, cached, revoked; never stored, shown or echoed in the clear."""

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from amploop.cli import app
from amploop.errors import AuthError, NotFound, PermissionDenied, UsageError
from amploop.registry import Store
from amploop.registry.tables import Base
from amploop.serve.auth import (
    KeyVerifier,
    authenticate,
    create_api_key,
    key_id_of,
    require_role,
    token_from_headers,
)
from tests.conftest import worker_env

AMPLOOP = str(Path(sys.executable).with_name("amploop"))
CACHE_S = 1.0  # long enough that a revoke lands inside the window on a loaded machine


def secret_of(token: str) -> str:
    return token.split("_", 2)[2]


def test_a_created_key_authenticates_with_its_role(workspace):
    with Store.open(workspace) as store:
        operator = create_api_key(store, role="operator", name="ci", actor="ci-bot")
        reader = create_api_key(store, role="reader")
        key_id = operator.record.id
        assert len(key_id) == 12 and int(key_id, 16) >= 0 and key_id != reader.record.id
        assert operator.token.startswith(f"amp_{key_id}_") and len(secret_of(operator.token)) == 43
        found = authenticate(store, operator.token)
        assert (found.id, found.name, found.role, found.created_by, found.active) == (
            key_id,
            "ci",
            "operator",
            "ci-bot",
            True,
        )
        assert authenticate(store, reader.token).role == "reader"
        assert operator.to_dict() == {**found.to_dict(), "token": operator.token}
        assert repr(operator) == f"CreatedKey(id='{key_id}', role='operator', token='amp_{key_id}_***')"
        assert secret_of(operator.token) not in repr(operator) + str(operator)
        audit = [(e.action, e.target, e.actor, e.details) for e in store.audit_log()]
        assert audit[0] == ("key.create", f"key:{key_id}", "ci-bot", {"name": "ci", "role": "operator"})
        assert [a[0] for a in audit] == ["key.create", "key.create"]


def test_roles_reader_below_operator():
    from datetime import UTC, datetime

    from amploop.registry.records import ApiKeyRecord

    made = datetime(2026, 1, 1, tzinfo=UTC)
    reader = ApiKeyRecord("0123456789ab", "dash", "reader", made, "ci", None)
    operator = ApiKeyRecord("ba9876543210", "ops", "operator", made, "ci", None)
    assert require_role(reader, "reader") is reader
    assert require_role(operator, "reader") is operator and require_role(operator, "operator") is operator
    with pytest.raises(PermissionDenied) as denied:
        require_role(reader, "operator")
    assert "role operator" in denied.value.message and "0123456789ab" in denied.value.message
    assert denied.value.http_status == 403 and denied.value.details == {
        "key_id": "0123456789ab",
        "role_needed": "operator",
    }
    with pytest.raises(UsageError, match="valid roles: reader, operator"):
        require_role(operator, "admin")


def test_an_unknown_role_is_refused_and_nothing_is_stored(sqlite_workspace):
    with Store.open(sqlite_workspace) as store:
        with pytest.raises(UsageError, match="unknown role 'operater'; did you mean operator"):
            create_api_key(store, role="operater")
        with pytest.raises(UsageError, match="at most 255"):
            create_api_key(store, role="reader", name="x" * 256)
        assert store.list_api_keys() == [] and store.audit_log() == []


def test_every_bad_key_fails_alike_and_no_message_holds_the_secret(workspace):
    with Store.open(workspace) as store:
        good = create_api_key(store, role="operator")
        gone = create_api_key(store, role="operator")
        store.revoke_api_key(gone.record.id, reason="leaked")
        secret = secret_of(good.token)
        bad = {
            "wrong secret": f"amp_{good.record.id}_{'A' * 43}",
            "unknown id": f"amp_{'0' * 12}_{secret}",
            "revoked": gone.token,
            "one character short": good.token[:-1],
            "one character more": good.token + "x",
            "id not hex": f"amp_{'z' * 12}_{secret}",
            "no prefix": good.token.removeprefix("amp_"),
            "upper-case id": f"amp_{good.record.id.upper()}_{secret}",
            "with a space": f" {good.token}",
            "secret only": secret,
        }
        answers = {}
        for case, token in bad.items():
            with pytest.raises(AuthError) as caught:
                authenticate(store, token)
            error = caught.value
            assert type(error) is AuthError and error.http_status == 401, case
            shown = json.dumps(error.to_dict())
            assert secret not in shown and secret_of(gone.token) not in shown and token not in shown, case
            answers[case] = error.message
        assert len(set(answers.values())) == 1, answers
        for missing in (None, ""):
            with pytest.raises(AuthError, match="Authorization: Bearer header or X-API-Key"):
                authenticate(store, missing)
        assert authenticate(store, good.token).id == good.record.id  # the good key still works


def test_only_the_sha256_of_a_secret_is_kept_anywhere_in_the_store(workspace):
    with Store.open(workspace) as store:
        kept = create_api_key(store, role="reader", name="dashboard")
        revoked = create_api_key(store, role="operator", name="ops")
        store.revoke_api_key(revoked.record.id, reason="rotated")
        secrets_made = [secret_of(kept.token), secret_of(revoked.token)]
        seen = []
        with store.engine.connect() as conn:
            for table in Base.metadata.sorted_tables:  # every column of every table, audit_log included
                for row in conn.execute(select(table)).all():
                    seen.extend(json.dumps(value, default=str) for value in row)
            stored = dict(conn.execute(select(Base.metadata.tables["api_keys"].c["id", "secret_sha256"])).all())
    assert len(seen) > 20  # the scan read the key and audit rows
    for secret in secrets_made:
        assert not [value for value in seen if secret in value]
    assert stored == {
        kept.record.id: hashlib.sha256(secrets_made[0].encode()).hexdigest(),
        revoked.record.id: hashlib.sha256(secrets_made[1].encode()).hexdigest(),
    }


def test_verifier_serves_from_its_cache_and_sees_a_revocation_after_it(workspace):
    with Store.open(workspace) as store:
        key = create_api_key(store, role="reader")
        reads: list[str] = []
        read_key = store.api_key_secret

        def counted(key_id: str):
            reads.append(key_id)
            return read_key(key_id)

        store.api_key_secret = counted  # the real store; only its key reads are counted
        verifier = KeyVerifier(store, cache_s=CACHE_S)
        assert verifier.verify(key.token).id == key.record.id
        for _ in range(20):
            assert verifier.verify(key.token).role == "reader"
        assert len(reads) == 1
        store.revoke_api_key(key.record.id)
        assert verifier.verify(key.token).id == key.record.id  # inside the window: the documented delay
        assert len(reads) == 1
        time.sleep(CACHE_S + 0.05)
        for attempt in (1, 2):  # failures are not cached: each asks the store again
            with pytest.raises(AuthError):
                verifier.verify(key.token)
            assert len(reads) == 1 + attempt
        with pytest.raises(AuthError, match="X-API-Key"):
            verifier.verify(None)
        assert len(reads) == 3  # a missing key needs no store read


def test_verifier_without_a_cache_reads_every_time_and_is_safe_across_threads(sqlite_workspace):
    with Store.open(sqlite_workspace) as store:
        keys = [create_api_key(store, role=role) for role in ("reader", "operator", "reader")]
        reads: list[str] = []
        lock = threading.Lock()
        read_key = store.api_key_secret

        def counted(key_id: str):
            with lock:
                reads.append(key_id)
            return read_key(key_id)

        store.api_key_secret = counted
        uncached = KeyVerifier(store, cache_s=0)
        for _ in range(3):
            uncached.verify(keys[0].token)
        assert len(reads) == 3
        reads.clear()
        shared = KeyVerifier(store, cache_s=60)
        with ThreadPoolExecutor(max_workers=6) as pool:
            got = list(pool.map(lambda i: shared.verify(keys[i % 3].token).id, range(300)))
        assert got == [keys[i % 3].record.id for i in range(300)]
        assert 3 <= len(reads) <= 3 * 6  # each key read at most once per thread that raced to fill it
    with pytest.raises(UsageError, match="0 seconds or more"):
        KeyVerifier(store, cache_s=-1)


def test_headers_give_the_token():
    assert token_from_headers("Bearer amp_x", None) == "amp_x"
    assert token_from_headers("bearer   amp_x ", "amp_y") == "amp_x"  # Authorization wins
    assert token_from_headers(None, "amp_y") == token_from_headers("", " amp_y ") == "amp_y"
    assert token_from_headers("Basic dXNlcjpwYXNz", "amp_y") == "amp_y"  # e.g. a proxy's own login
    assert token_from_headers(None, None) is None and token_from_headers(" ", "") is None
    for wrong in ("Basic dXNlcjpwYXNz", "amp_x", "Bearer "):
        with pytest.raises(AuthError, match="must read 'Bearer <API key>'"):
            token_from_headers(wrong, None)


def test_key_id_of_takes_an_id_or_a_token_and_never_echoes_it():
    assert key_id_of(" 0123456789ab ") == "0123456789ab"
    assert key_id_of(f"amp_0123456789ab_{'s' * 43}") == "0123456789ab"
    with pytest.raises(UsageError) as caught:
        key_id_of("amp_0123456789ab_tooshortsecret")
    assert "tooshortsecret" not in caught.value.message


def invoke(env: dict[str, str], *args: str):
    """The real `amploop` command group, in this process, on the workspace's store."""
    environ = {k: None for k in os.environ if k.startswith("AMPLOOP_")}
    result = CliRunner().invoke(app, list(args), env={**environ, **env, "AMPLOOP_ACTOR": "ci-bot", "COLUMNS": "120"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_keys_cli_create_list_revoke(workspace):
    env = {k: v for k, v in worker_env(workspace).items() if k.startswith("AMPLOOP_")}
    made = invoke(env, "keys", "create", "--role", "operator", "--name", "ci", "--json")
    assert made.exit_code == 0, made.stderr
    created = json.loads(made.stdout)
    assert (created["name"], created["role"], created["created_by"], created["revoked_at"]) == (
        "ci",
        "operator",
        "ci-bot",
        None,
    )
    with Store.open(workspace) as store:
        assert authenticate(store, created["token"]).id == created["id"]
    plain = invoke(env, "keys", "create", "--role", "reader")
    assert plain.exit_code == 0, plain.stderr
    token = plain.stdout.strip()  # stdout is the token alone, for TOKEN=$(amploop keys create ...)
    assert token.startswith("amp_") and "shown only now" in plain.stderr and token not in plain.stderr
    reader_id = key_id_of(token)

    listed = invoke(env, "keys", "list", "--json")
    assert [(k["id"], k["role"], k["revoked_at"]) for k in json.loads(listed.stdout)["keys"]] == [
        (created["id"], "operator", None),
        (reader_id, "reader", None),
    ]
    table = invoke(env, "keys", "list")
    assert created["id"] in table.stdout and reader_id in table.stdout and "operator" in table.stdout
    for secret in (secret_of(created["token"]), secret_of(token)):
        assert secret not in listed.stdout + table.stdout + listed.stderr + table.stderr

    revoked = invoke(env, "keys", "revoke", reader_id, "--reason", "rotated", "--json")
    assert revoked.exit_code == 0 and json.loads(revoked.stdout)["revoked_at"] is not None
    by_token = invoke(env, "keys", "revoke", created["token"])  # a pasted token revokes its key ...
    assert by_token.exit_code == 0 and f"API key {created['id']} revoked" in by_token.stdout
    assert secret_of(created["token"]) not in by_token.stdout + by_token.stderr  # ... and is not echoed
    with Store.open(workspace) as store:
        assert [k.active for k in store.list_api_keys()] == [False, False]
        audit = [(e.action, e.target, e.reason) for e in store.audit_log()]
        with pytest.raises(AuthError):
            authenticate(store, token)
    assert audit == [
        ("key.create", f"key:{created['id']}", ""),
        ("key.create", f"key:{reader_id}", ""),
        ("key.revoke", f"key:{reader_id}", "rotated"),
        ("key.revoke", f"key:{created['id']}", ""),
    ]


def test_keys_cli_errors_are_one_line_with_their_exit_code(tmp_path):
    env = {"AMPLOOP_HOME": str(tmp_path / ".amploop")}
    for args, code, words in [
        (["keys", "create", "--role", "admin"], UsageError.exit_code, "valid roles: reader, operator"),
        (["keys", "create"], 2, "--role"),
        (["keys", "revoke", "0" * 12], NotFound.exit_code, "no API key with id 000000000000"),
        (["keys", "revoke", "amp_0123456789ab_not-a-real-secret"], UsageError.exit_code, "not a key id"),
    ]:
        for as_json in (False, True):
            result = invoke(env, *args, *(["--json"] if as_json else []))
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert result.exit_code == code and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
            assert words in lines[0] and "not-a-real-secret" not in result.stdout + result.stderr
            if as_json:
                assert json.loads(result.stdout)["error"] in ("UsageError", "NotFound")
    empty = invoke(env, "keys", "list")
    assert empty.exit_code == 0 and "no API keys" in empty.stdout


def test_the_amploop_script_prints_the_token_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env["AMPLOOP_HOME"] = str(tmp_path / ".amploop")
    run = subprocess.run(
        [AMPLOOP, "keys", "create", "--role", "reader", "--name", "script"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("amp_") == 1 and "shown only now" in run.stderr
