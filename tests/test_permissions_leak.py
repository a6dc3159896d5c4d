"""Document-level permissions end to end: a SharePoint library (the local Graph server) whose files are shared with
different users and groups is ingested; hundreds of API requests by readers with and without access, in every
retrieval mode, with filters that name the hidden documents, return none of their chunks, pages or citations;
pagelens tokens and OIDC tokens (real RS256 JWTs against a JWKS served on 127.0.0.1) alike. Then a reader is
revoked at the source and one ingest run later sees nothing of the document, which was not embedded again."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pagelens.pipeline.permissions import PERMISSIONS_CHANGED
from pagelens.pipeline.stages import ingest
from pagelens.retrieve import MODES
from pagelens.settings import Settings
from pagelens.tokens import create_token
from tests.graph_server import CLIENT_ID, CLIENT_SECRET, DRIVE, SITE, TENANT, GraphServer, granted, org_link
from tests.tiny_pdf import tiny_pdf

pytestmark = pytest.mark.integration
LOCATION = f"sharepoint://{SITE}/{DRIVE}/Library"
ISSUER, AUDIENCE = "https://login.example.test/contoso/v2.0", "api://pagelens"
FILES = {  # name -> (text, permissions)
    "handbook.pdf": ("Staff handbook. The canteen opens at noon. Parking is free on Fridays.", [org_link()]),
    "budget.pdf": ("Finance budget. The codeword for the budget is saffron heron. Capital spend is 4.2 million.",
                   [granted("group", "grp-finance")]),
    "merger.pdf": ("Merger plan. The codeword for the merger is cobalt lantern. The target is Umbra Labs.",
                   [granted("user", "usr-ceo"), granted("user", "usr-alice")]),
    "salaries.pdf": ("Salary review. The codeword for salaries is quiet walrus. Raises average 3 percent.",
                     [granted("user", "usr-ceo", ("owner",))]),
}
READERS = {  # name -> (principals, documents they may read)
    "ceo": (["user:usr-ceo"], {"merger.pdf", "salaries.pdf"}),
    "alice": (["user:usr-alice", "group:grp-finance", f"org:{TENANT}"], {"handbook.pdf", "budget.pdf", "merger.pdf"}),
    "staff": ([f"org:{TENANT}"], {"handbook.pdf"}),
    "outsider": (["user:usr-bob"], set()),
    "namespace_only": ([], set()),  # a token without principals: documents open to the whole namespace only
}
QUESTIONS = ["What is the codeword for the merger?", "What is the codeword for the budget?",
             "What is the codeword for salaries?", "When does the canteen open?", "cobalt lantern Umbra Labs",
             "saffron heron capital spend", "quiet walrus raises"]


@pytest.fixture(scope="module")
def keys() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(keys: Any) -> Iterator[str]:
    """A JWKS endpoint on 127.0.0.1 with the public half of the test key."""
    import jwt

    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys.public_key())), "kid": "test-key", "use": "sig"}
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server dispatches GET requests to
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/keys"
    server.shutdown()


def oidc_token(keys: Any, claims: dict[str, Any], kid: str = "test-key") -> str:
    import jwt

    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **claims}, keys,
                      algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jwks_url: str) -> Iterator[tuple[GraphServer, Settings]]:
    with GraphServer(tmp_path / "tls") as graph:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", graph.ca_file)
        for name, (text, permissions) in FILES.items():
            graph.drive.put(f"Library/{name}", tiny_pdf(text))
            graph.drive.share(f"Library/{name}", permissions)
        settings = Settings(data_dir=tmp_path / "data", parse_workers=1, api_warm_on_start=False,
                            sharepoint_tenant_id=TENANT, sharepoint_client_id=CLIENT_ID,
                            sharepoint_client_secret=CLIENT_SECRET, sharepoint_authority_host=graph.base,
                            sharepoint_graph_url=graph.graph_base, oidc_issuer=ISSUER, oidc_audience=AUDIENCE,
                            oidc_jwks_url=jwks_url, oidc_namespaces=["corp"])
        reports = {r.doc: r for r in ingest(LOCATION, "corp", settings)}
        assert {d: r.status for d, r in reports.items()} == dict.fromkeys(FILES, "indexed")
        yield graph, settings


def _leaks(client: Any, headers: dict[str, str], allowed: set[str]) -> list[str]:
    """Every content route (search, query, chat completions), every mode, filters naming each document: what came
    back that should not have."""
    leaked = []
    for question, mode, doc in itertools.product(QUESTIONS, MODES, [None, *FILES]):
        body = {"question": question, "namespace": "corp", "mode": mode, "k": 10,
                **({"filters": {"doc": doc}} if doc else {})}
        for route in ("/v1/search", "/v1/query"):
            response = client.post(route, json=body, headers=headers)
            assert response.status_code == 200, response.get_json()
            data = response.get_json()
            cited = data["results"] if route == "/v1/search" else data["answer"]["citations"]
            leaked += [f"{route} {mode} {c['doc']}" for c in cited if c["doc"] not in allowed]
            text = json.dumps(data)
            leaked += [f"{route} {mode} text:{w}" for w in ("cobalt", "saffron", "walrus", "canteen")
                       if w in text and not any(w in FILES[d][0] for d in allowed)]
    for question, doc in itertools.product(QUESTIONS, [None, *FILES]):  # the OpenAI-compatible route, plain and streamed
        body = {"model": "corp", "messages": [{"role": "user", "content": question}], "k": 10,
                **({"filters": {"doc": doc}} if doc else {})}
        response = client.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 200, response.get_json()
        answer = response.get_json()["pagelens"]["answer"]
        leaked += [f"chat {c['doc']}" for c in answer["citations"] if c["doc"] not in allowed]
        asked = json.dumps(question)[1:-1]  # the reply names the question asked; that is no leak
        text = response.get_data(as_text=True).replace(asked, "")
        leaked += [f"chat text:{w}" for w in ("cobalt", "saffron", "walrus", "canteen")
                   if w in text and not any(w in FILES[d][0] for d in allowed)]
        if doc is None:
            streamed = client.post("/v1/chat/completions", json={**body, "stream": True}, headers=headers)
            assert streamed.status_code == 200
            text = streamed.get_data(as_text=True).replace(asked, "")
            leaked += [f"chat stream text:{w}" for w in ("cobalt", "saffron", "walrus", "canteen")
                       if w in text and not any(w in FILES[d][0] for d in allowed)]
    for doc in FILES:
        page = client.get(f"/v1/documents/{doc}/pages/1.png?namespace=corp", headers=headers)
        if doc not in allowed and page.status_code != 404:
            leaked.append(f"page image {doc}: {page.status_code}")
        elif doc in allowed and page.status_code != 200:
            leaked.append(f"page image {doc} refused to a reader: {page.status_code}")
    listed = client.get("/v1/documents?namespace=corp", headers=headers).get_json()
    leaked += [f"documents {d['doc']}" for d in listed["documents"] if d["doc"] not in allowed]
    assert listed["total"] == len(allowed) == listed["counts"].get("indexed", 0)
    return leaked


def test_no_reader_sees_a_chunk_page_or_citation_of_a_document_not_shared_with_them(library, keys) -> None:
    from query_api import create_app

    _, settings = library
    client = create_app(settings).test_client()
    for name, (principals, allowed) in READERS.items():
        token = create_token(settings, ["corp"], name, principals)
        assert _leaks(client, {"Authorization": f"Bearer {token}"}, allowed) == [], name
    sso = oidc_token(keys, {"oid": "usr-alice", "sub": "pairwise-xyz", "tid": TENANT, "groups": ["grp-finance"]})
    assert _leaks(client, {"Authorization": f"Bearer {sso}"}, READERS["alice"][1]) == []
    # and the readers do find what is theirs
    found = client.post("/v1/search", json={"question": "codeword for the merger", "namespace": "corp", "k": 3},
                        headers={"Authorization": f"Bearer {sso}"}).get_json()["results"]
    assert found[0]["doc"] == "merger.pdf"


def test_oidc_tokens_that_do_not_verify_are_refused(library, keys) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from query_api import create_app

    _, settings = library
    client = create_app(settings).test_client()
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    bad = {"forged": oidc_token(other_key, {"oid": "usr-ceo"}),
           "unknown key id": oidc_token(keys, {"oid": "usr-ceo"}, kid="rotated-away"),
           "expired": oidc_token(keys, {"oid": "usr-ceo", "iat": now - 7200, "exp": now - 3600}),
           "other audience": oidc_token(keys, {"oid": "usr-ceo", "aud": "api://someone-else"}),
           "other issuer": oidc_token(keys, {"oid": "usr-ceo", "iss": "https://evil.example.test/v2.0"})}
    for why, token in bad.items():
        response = client.post("/v1/search", json={"question": "merger codeword", "namespace": "corp"},
                               headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_token", why


def test_a_reader_revoked_at_the_source_sees_nothing_after_one_run_without_reembedding(library) -> None:
    from query_api import create_app

    graph, settings = library
    client = create_app(settings).test_client()
    alice = {"Authorization": f"Bearer {create_token(settings, ['corp'], 'alice', READERS['alice'][0])}"}
    assert "merger.pdf" in {r["doc"] for r in client.post("/v1/search", json={
        "question": "cobalt lantern", "namespace": "corp", "mode": "bm25"}, headers=alice).get_json()["results"]}

    graph.drive.share("Library/merger.pdf", [granted("user", "usr-ceo")])  # alice removed; content unchanged
    downloads = graph.calls("/content")
    reports = {r.doc: r for r in ingest(LOCATION, "corp", settings)}
    assert reports["merger.pdf"].status == "skipped" and reports["merger.pdf"].reason == PERMISSIONS_CHANGED
    assert graph.calls("/content") == downloads  # neither downloaded nor embedded again
    assert _leaks(client, alice, READERS["alice"][1] - {"merger.pdf"}) == []
    ceo = {"Authorization": f"Bearer {create_token(settings, ['corp'], 'ceo', READERS['ceo'][0])}"}
    assert "merger.pdf" in {r["doc"] for r in client.post("/v1/search", json={
        "question": "cobalt lantern", "namespace": "corp", "mode": "bm25"}, headers=ceo).get_json()["results"]}
