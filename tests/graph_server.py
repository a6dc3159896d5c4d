"""A stand-in for Microsoft Entra and Graph on 127.0.0.1 over TLS, serving what the SharePoint source uses.

It answers like the real services where the source depends on it: OpenID discovery and client-credentials
tokens; drive delta rounds paged by `@odata.nextLink` up to an `@odata.deltaLink`, with parents of changed
items included, no `parentReference.path`, no cTag, and deleted items reduced to their id (as OneDrive for
Business does); 410 Gone for an expired delta token; 429 with Retry-After on demand; item content as a 302
to a pre-authenticated download URL on another host name; Bearer tokens required on every Graph call.
msal accepts only https authorities, so the server has its own certificate authority (`ca_file`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

TENANT = "contoso-tenant"
CLIENT_ID = "pagelens-app"
CLIENT_SECRET = "s3cret-value"
SITE = "contoso.sharepoint.com,1111,2222"
DRIVE = "b!drive-1"


@dataclass
class Item:
    id: str
    name: str
    parent: str  # parent item id ("" for the root)
    folder: bool
    content: bytes = b""
    version: int = 1
    seq: int = 0  # change sequence number of the last change
    deleted: bool = False
    permissions: list[dict[str, Any]] = field(default_factory=list)  # Graph permission resources
    shared_seq: int = 0  # change sequence number of the last sharing change (content and eTag unchanged)


@dataclass
class Drive:
    """One document library: items by id and a change sequence that delta tokens point into."""

    items: dict[str, Item] = field(default_factory=dict)
    seq: int = 0
    expired_before: int = 0  # delta tokens below this answer 410 Gone
    counter: int = 0

    def __post_init__(self) -> None:
        self.items["root"] = Item(id="root", name="root", parent="", folder=True)

    def _touch(self, item: Item) -> None:
        self.seq += 1
        item.seq = self.seq

    def _new_id(self) -> str:
        self.counter += 1
        return f"ITEM{self.counter:04d}"

    def path_of(self, item_id: str) -> str:
        item = self.items[item_id]
        if item_id == "root":
            return ""
        return f"{self.path_of(item.parent)}/{item.name}".lstrip("/")

    def find(self, path: str) -> Item | None:
        path = path.strip("/")
        return next((i for i in self.items.values() if not i.deleted and self.path_of(i.id) == path), None)

    def folder(self, path: str) -> str:
        """The id of the folder at `path`, created with its parents if missing."""
        current = "root"
        for name in [p for p in path.split("/") if p]:
            child = next((i for i in self.items.values() if not i.deleted and i.parent == current and i.name == name), None)
            if child is None:
                child = Item(id=self._new_id(), name=name, parent=current, folder=True)
                self.items[child.id] = child
                self._touch(child)
            current = child.id
        return current

    def put(self, path: str, content: bytes) -> str:
        """Create or overwrite a file."""
        parent_path, _, name = path.strip("/").rpartition("/")
        item = self.find(path)
        if item is None:
            item = Item(id=self._new_id(), name=name, parent=self.folder(parent_path), folder=False)
            self.items[item.id] = item
        else:
            item.version += 1
        item.content = content
        self._touch(item)
        return item.id

    def delete(self, path: str) -> None:
        """Delete an item; of a folder, only the folder is reported (its files go without a word, as in ODB)."""
        target = self.find(path)
        assert target is not None, path
        inside = self.path_of(target.id) + "/"
        for item in self.items.values():
            if not item.deleted and self.path_of(item.id).startswith(inside):
                item.deleted = True
        target.deleted = True
        self._touch(target)

    def share(self, path: str, permissions: list[dict[str, Any]]) -> None:
        """Replace a file's permissions: a sharing change, reported by delta only to clients that ask for them."""
        item = self.find(path)
        assert item is not None, path
        self.seq += 1
        item.permissions, item.shared_seq = permissions, self.seq

    def rename(self, path: str, new_name: str) -> None:
        item = self.find(path)
        assert item is not None, path
        item.name, item.version = new_name, item.version + 1
        self._touch(item)

    def in_scope(self, item: Item, scope: str) -> bool:
        if scope == "root":
            return True
        node = item
        while node.id != "root":
            if node.id == scope:
                return True
            node = self.items[node.parent]
        return False

    def delta(self, scope: str, token: int | None, sharing: bool = False) -> list[Item]:
        """Items of a delta round: all live ones (no token), or those changed since `token` plus their parents;
        with `sharing` (Prefer: deltashowsharingchanges) also those whose permissions changed."""
        if token is None:
            return [i for i in self.items.values() if not i.deleted and self.in_scope(i, scope)]
        changed = [i for i in self.items.values() if (i.seq > token or (sharing and i.shared_seq > token))
                   and self.in_scope(i, scope)]
        chosen: dict[str, Item] = {}
        for item in changed:
            node = item
            while True:
                chosen.setdefault(node.id, node)
                if node.id in (scope, "root") or node.deleted:
                    break
                node = self.items[node.parent]
        return sorted(chosen.values(), key=lambda i: i.id)


class GraphServer:
    """The HTTPS server; `base` is its origin, `graph_base` the Graph v1.0 root, `downloads` the other host."""

    def __init__(self, cert_dir: Path, page_size: int = 3) -> None:
        self.drive, self.page_size = Drive(), page_size
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers
        self.throttle_next = 0  # the next N Graph calls answer 429
        self.tokens_issued = 0
        self.ca_file, cert, key = make_certificates(cert_dir)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.graph = self  # type: ignore[attr-defined]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        port = self.httpd.server_address[1]
        self.base = f"https://127.0.0.1:{port}"
        self.graph_base = f"{self.base}/v1.0"
        self.downloads = f"https://localhost:{port}"  # another host name: clients must drop the Authorization header
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> GraphServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def connection(self, secret: str = CLIENT_SECRET) -> dict[str, Any]:
        """The Airflow connection (JSON form) that points the hook at this server."""
        return {"conn_type": "sharepoint", "login": CLIENT_ID, "password": secret,
                "extra": {"tenant_id": TENANT, "authority_host": self.base, "graph_base_url": self.graph_base}}

    def calls(self, pattern: str) -> int:
        return sum(bool(re.search(pattern, path)) for _, path, _ in self.requests)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def graph(self) -> GraphServer:
        return self.server.graph  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        self.graph.requests.append(("POST", self.path, dict(self.headers)))
        if self.path != f"/{TENANT}/oauth2/v2.0/token":
            return self.send_json(404, {"error": "not_found"})
        if body.get("client_id") != [CLIENT_ID] or body.get("client_secret") != [CLIENT_SECRET]:
            return self.send_json(401, {"error": "invalid_client",
                                        "error_description": "AADSTS7000215: Invalid client secret provided."})
        if body.get("grant_type") != ["client_credentials"]:
            return self.send_json(400, {"error": "unsupported_grant_type"})
        self.graph.tokens_issued += 1
        return self.send_json(200, {"token_type": "Bearer", "expires_in": 3599,
                                    "access_token": f"token-{self.graph.tokens_issued}"})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        self.graph.requests.append(("GET", self.path, dict(self.headers)))
        if path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
            base = f"{self.graph.base}/{TENANT}"
            return self.send_json(200, {"issuer": f"{base}/v2.0", "token_endpoint": f"{base}/oauth2/v2.0/token",
                                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize"})
        if path.startswith("/download/"):
            return self.download(path.removeprefix("/download/"), query)
        if not path.startswith("/v1.0/"):
            return self.send_json(404, {"error": {"code": "itemNotFound", "message": "no such endpoint"}})
        if not (self.headers.get("Authorization") or "").startswith("Bearer token-"):
            return self.send_json(401, {"error": {"code": "InvalidAuthenticationToken", "message": "token missing"}})
        if self.graph.throttle_next:
            self.graph.throttle_next -= 1
            return self.send_json(429, {"error": {"code": "TooManyRequests", "message": "slow down"}},
                                  headers={"Retry-After": "1"})
        return self.graph_get(path.removeprefix("/v1.0"), query)

    def graph_get(self, path: str, query: dict[str, list[str]]) -> None:
        drive = self.graph.drive
        if path == "/sites/root":
            return self.send_json(200, {"id": SITE, "webUrl": "https://contoso.sharepoint.com"})
        prefix = f"/drives/{DRIVE}"
        if not path.startswith(prefix):
            return self.not_found()
        rest = path.removeprefix(prefix)
        if match := re.fullmatch(r"/root(?::/(.+?):)?/delta", rest):
            scope = drive.find(match.group(1)) if match.group(1) else drive.items["root"]
            return self.delta(scope.id if scope else "", query) if scope else self.not_found()
        if match := re.fullmatch(r"/root(?::/(.+))?", rest):
            item = drive.find(match.group(1)) if match.group(1) else drive.items["root"]
            return self.send_json(200, self.item_json(item, with_path=True)) if item else self.not_found()
        if match := re.fullmatch(r"/items/([^/]+)/permissions", rest):
            item = drive.items.get(match.group(1))
            if item is None or item.deleted:
                return self.not_found()
            return self.send_json(200, {"value": item.permissions})
        if match := re.fullmatch(r"/items/([^/]+)(/content)?", rest):
            item = drive.items.get(match.group(1))
            if item is None or item.deleted:
                return self.not_found()
            if match.group(2):
                return self.send(302, b"", headers={"Location": f"{self.graph.downloads}/download/{item.id}?sig=abc"})
            return self.send_json(200, self.item_json(item, with_path=True))
        return self.not_found()

    def delta(self, scope: str, query: dict[str, list[str]]) -> None:
        drive = self.graph.drive
        token = int(query["token"][0]) if "token" in query else None
        if token is not None and token < drive.expired_before:
            return self.send_json(410, {"error": {"code": "resyncChangesApplyDifferences", "message": "resync"}},
                                  headers={"Location": f"{self.graph.graph_base}/drives/{DRIVE}/root/delta"})
        sharing = "deltashowsharingchanges" in (self.headers.get("Prefer") or "")
        items = drive.delta(scope, token, sharing)
        skip = int(query.get("skip", ["0"])[0])
        # A round's pages all report the state at its start; the delta link continues from there.
        at = int(query.get("at", [str(drive.seq)])[0])
        page = items[skip:skip + self.graph.page_size]
        body: dict[str, Any] = {"value": [self.item_json(i) for i in page]}
        link = f"{self.graph.base}{self.path.split('?')[0]}?"
        if skip + self.graph.page_size < len(items):
            body["@odata.nextLink"] = link + "&".join(
                [*(f"token={token}" for _ in [0] if token is not None), f"skip={skip + self.graph.page_size}", f"at={at}"])
        else:
            body["@odata.deltaLink"] = f"{link}token={at}"
        return self.send_json(200, body)

    def download(self, item_id: str, query: dict[str, list[str]]) -> None:
        item = self.graph.drive.items.get(item_id)
        if query.get("sig") != ["abc"] or "Authorization" in self.headers:
            return self.send_json(401, {"error": {"code": "unauthenticated", "message": "pre-authenticated URL only"}})
        if item is None or item.deleted:
            return self.not_found()
        return self.send(200, item.content, content_type="application/octet-stream")

    def item_json(self, item: Item, with_path: bool = False) -> dict[str, Any]:
        if item.deleted:
            return {"id": item.id, "deleted": {"state": "deleted"}}
        data: dict[str, Any] = {"id": item.id, "name": item.name, "eTag": f'"{{{item.id}}},{item.version}"'}
        if item.id == "root":
            data["root"] = {}
        else:
            data["parentReference"] = {"id": item.parent, "driveId": DRIVE}
            if with_path:  # plain item GETs carry the parent's path; delta answers do not
                parent = self.graph.drive.path_of(item.parent)
                data["parentReference"]["path"] = f"/drives/{DRIVE}/root:" + (f"/{quote(parent)}" if parent else "")
        if item.folder:
            data["folder"] = {"childCount": sum(i.parent == item.id and not i.deleted for i in self.graph.drive.items.values())}
        else:
            data["file"] = {"mimeType": "application/pdf"}
            data["size"] = len(item.content)
        return data

    def not_found(self) -> None:
        self.send_json(404, {"error": {"code": "itemNotFound", "message": "The resource could not be found."}})

    def send_json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(body).encode(), headers, "application/json")

    def send(self, status: int, payload: bytes, headers: dict[str, str] | None = None,
             content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def make_certificates(directory: Path) -> tuple[str, str, str]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost: (ca file, cert file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def build(subject: str, key: Any, issuer_name: Any, issuer_key: Any, ca: bool, extras: list[Any]) -> Any:
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False))
        for extension, critical in extras:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pagelens test CA")])
    no_usage = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
                              "encipher_only", "decipher_only"), False)
    ca_cert = build("pagelens test CA", ca_key, ca_name, ca_key, True, [
        (x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **no_usage), True)])
    leaf = build("127.0.0.1", leaf_key, ca_name, ca_key, False, [
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), False),
        (x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **no_usage), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)])
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    return str(ca_file), str(cert_file), str(key_file)


def granted(kind: str, object_id: str, roles: tuple[str, ...] = ("read",)) -> dict[str, Any]:
    """A Graph permission granting `roles` directly to a user, group or siteGroup."""
    return {"id": f"perm-{kind}-{object_id}", "roles": list(roles), "grantedToV2": {kind: {"id": object_id}}}


def org_link() -> dict[str, Any]:
    """An organisation-wide view link (everyone in the tenant with the link)."""
    return {"id": "perm-org-link", "roles": ["read"], "link": {"scope": "organization", "type": "view"}}
