"""A SharePoint (or OneDrive) drive folder as a document source, read through Microsoft Graph delta queries.

Location `sharepoint://<site-id>/<drive-id>[/folder/path]`; doc ids are file paths relative to the folder;
source URIs name the item by id (`sharepoint://<site>/<drive>/items/<item-id>`), since Graph tracks items by id.

Without a cursor the listing enumerates the folder in full (`complete=True`); with one it holds only the
changes since the last landed run. The cursor is JSON: the `@odata.deltaLink` plus the drive path of every
folder under the location, because delta answers carry neither paths (`parentReference.path` is omitted) nor
the descendants of a renamed folder, nor the name of a deleted item:
- a file's path is built from its parent folder's id through that map (a Graph lookup for an unknown one);
- a deleted file is reported by source URI in `Listing.deleted`; the plan matches it to the namespace's
  registry row (the source knows no namespace), as it does a file now listed under another doc id (a rename);
- a folder renamed, moved or deleted since the last run changes the doc ids of files Graph does not report,
  so the listing restarts in full (names and etags only, nothing is downloaded again) and the plan retires
  the old ids; so does an expired delta link (410 Gone), with a warning in the log.
The version marker is the item's cTag (content tag) where Graph returns one, else its eTag.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from pagelens.sources import DocumentVanished, Listing, SourceDocument, SourceError

if TYPE_CHECKING:
    from pagelens.settings import Settings
    from pagelens.sources.graph import GraphClient

log = logging.getLogger(__name__)

ITEM_FIELDS = "id,name,file,folder,package,deleted,root,parentReference,cTag,eTag,lastModifiedDateTime"
# Delta rounds also report items whose sharing changed (same content, same cTag): their permissions are read again.
SHARING_CHANGES = {"Prefer": "deltashowsharingchanges, hierarchicalsharing"}


def parse_sharepoint_location(location: str) -> tuple[str, str, str]:
    """`sharepoint://site/drive/a/b` -> (site, drive, "a/b")."""
    parts = [p for p in location.removeprefix("sharepoint://").split("/") if p]
    if len(parts) < 2:
        raise SourceError(f"SharePoint location {location!r} needs a site and a drive: "
                          "sharepoint://<site-id>/<drive-id>[/folder/path]")
    return parts[0], parts[1], "/".join(parts[2:])


@dataclass
class DeltaPage:
    """All items of one delta round (the last occurrence of each id wins) and the link to the next round."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    delta_link: str = ""


class FullListingNeeded(Exception):
    """An incremental listing cannot be trusted to name every changed doc id; list the folder in full."""


class SharePointSource:
    """The files under a drive folder, listed by Graph delta queries and downloaded by item id."""

    def __init__(self, location: str, settings: Settings) -> None:
        self.site, self.drive, self.folder = parse_sharepoint_location(location)
        self.location = f"sharepoint://{self.site}/{self.drive}" + (f"/{self.folder}" if self.folder else "")
        self.settings = settings

    @cached_property
    def graph(self) -> GraphClient:
        from pagelens.sources.clients import graph_client

        return graph_client(self.settings)

    def item_uri(self, item_id: str) -> str:
        return f"sharepoint://{self.site}/{self.drive}/items/{item_id}"

    def folder_ref(self) -> str:
        """The Graph path of the location folder (the drive's root when there is none)."""
        return f"drives/{self.drive}/root" + (f":/{quote(self.folder)}:" if self.folder else "")

    # --- listing ---

    def list_documents(self, cursor: str = "") -> Listing:
        state = self.load_cursor(cursor)
        if state is not None:
            try:
                return self.list_changes(*state)
            except FullListingNeeded as reason:
                log.warning("Listing %s in full: %s", self.location, reason)
        return self.list_all()

    def list_all(self) -> Listing:
        root = self.graph.get_json(self.folder_ref().removesuffix(":"), params={"$select": "id"})
        page = self.read_delta(f"{self.folder_ref()}/delta", params={"$select": ITEM_FIELDS})
        paths = FolderPaths(self, known={root["id"]: self.folder}, items=page.items)
        return self.listing(page, paths, complete=True)

    def list_changes(self, delta_link: str, folders: dict[str, str]) -> Listing:
        from pagelens.sources.graph import GraphRequestError

        try:
            page = self.read_delta(delta_link)
        except GraphRequestError as exc:
            if exc.status == 410:
                raise FullListingNeeded(f"its delta link expired ({exc.code or '410 Gone'})") from exc
            raise
        paths = FolderPaths(self, known=folders, items=page.items)
        for item_id, item in page.items.items():
            if item_id in folders and ("deleted" in item or paths.drive_path(item_id) != folders[item_id]):
                raise FullListingNeeded(f"folder {folders[item_id]!r} was renamed, moved or deleted")
        return self.listing(page, paths, complete=False)

    def read_delta(self, url: str, params: dict[str, str] | None = None) -> DeltaPage:
        """Follow `@odata.nextLink` pages to the `@odata.deltaLink`."""
        page = DeltaPage()
        headers = SHARING_CHANGES if self.settings.sharepoint_permissions else None
        while True:
            body = self.graph.get_json(url, params, extra_headers=headers)
            for item in body.get("value", []):
                page.items.pop(item["id"], None)
                page.items[item["id"]] = item
            if "@odata.deltaLink" in body:
                page.delta_link = body["@odata.deltaLink"]
                return page
            if "@odata.nextLink" not in body:
                raise SourceError(f"Graph's delta answer for {self.location} has neither a nextLink nor a deltaLink")
            url, params = body["@odata.nextLink"], None

    def listing(self, page: DeltaPage, paths: FolderPaths, complete: bool) -> Listing:
        documents, deleted = [], []
        for item_id, item in page.items.items():
            if "deleted" in item:
                if item_id not in paths.known:
                    deleted.append(self.item_uri(item_id))
                continue
            if "file" not in item:  # folders, OneNote packages
                continue
            doc_id = paths.doc_id(item)
            if doc_id is None:  # moved out of the location
                deleted.append(self.item_uri(item_id))
                continue
            documents.append(SourceDocument(doc_id=doc_id, source_uri=self.item_uri(item_id), location=self.location,
                                            etag=str(item.get("cTag") or item.get("eTag") or ""),
                                            modified=_modified(item), principals=self.principals(item_id)))
        cursor = json.dumps({"delta_link": page.delta_link, "folders": paths.folders()}, separators=(",", ":"))
        return Listing(location=self.location, documents=documents, deleted=deleted, complete=complete, cursor=cursor)

    def principals(self, item_id: str) -> list[str]:
        """Who may read the item, from its Graph permissions (inherited ones included); everyone who may read the
        namespace when permissions are off (`PAGELENS_SHAREPOINT_PERMISSIONS=false`)."""
        from pagelens.sources.permissions import EVERYONE, principals_of

        if not self.settings.sharepoint_permissions:
            return [EVERYONE]
        permissions: list[dict[str, Any]] = []
        url: str | None = f"drives/{self.drive}/items/{item_id}/permissions"
        while url:
            body = self.graph.get_json(url)
            permissions += body.get("value", [])
            url = body.get("@odata.nextLink")
        tenant = self.settings.sharepoint_tenant_id or getattr(self.graph, "tenant_id", "")
        return principals_of(permissions, self.site, tenant, self.settings.sharepoint_site_group_members)

    def load_cursor(self, cursor: str) -> tuple[str, dict[str, str]] | None:
        """The saved delta link and folder map, or None (list in full) if absent, unreadable or for another host."""
        if not cursor:
            return None
        try:
            state = json.loads(cursor)
            delta_link, folders = str(state["delta_link"]), dict(state["folders"])
        except (ValueError, KeyError, TypeError):
            log.warning("Listing %s in full: its saved cursor is not a pagelens SharePoint cursor", self.location)
            return None
        if not delta_link.startswith(self.graph.base_url + "/"):
            # Never send the token elsewhere than the connection's Graph endpoint.
            log.warning("Listing %s in full: its delta link is not under %s", self.location, self.graph.base_url)
            return None
        return delta_link, folders

    def lookup_drive_path(self, item_id: str) -> str:
        """The drive path of an item Graph did not describe in the delta answer (a plain item GET has paths)."""
        item = self.graph.get_json(f"drives/{self.drive}/items/{item_id}", params={"$select": "id,name,root,parentReference"})
        if "root" in item:
            return ""
        parent = unquote(str(item.get("parentReference", {}).get("path", "")).partition("root:")[2]).strip("/")
        return f"{parent}/{item['name']}".lstrip("/")

    # --- content ---

    def fetch(self, doc: SourceDocument, workdir: Path) -> SourceDocument:
        """Download the item's content (Graph redirects to a pre-authenticated URL) into `workdir`, hashing it."""
        from pagelens.sources.graph import GraphRequestError

        item_id = doc.source_uri.rpartition("/items/")[2]
        target = workdir / hashlib.sha1(doc.source_uri.encode()).hexdigest()[:12] / PurePosixPath(doc.doc_id).name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            sha = self.graph.download(f"drives/{self.drive}/items/{item_id}/content", target)
        except GraphRequestError as exc:
            if exc.status == 404:
                raise DocumentVanished(f"{doc.doc_id} ({doc.source_uri}) was deleted after it was listed") from exc
            raise
        return replace(doc, path=str(target), content_sha256=sha)


class FolderPaths:
    """Drive paths of folders: those saved with the cursor, updated by the folder items of this delta round."""

    def __init__(self, source: SharePointSource, known: dict[str, str], items: dict[str, dict[str, Any]]) -> None:
        self.source, self.known = source, known
        self.new = {i: item for i, item in items.items() if "folder" in item and "deleted" not in item}
        self.gone = {i for i, item in items.items() if "deleted" in item}
        # The location folder keeps its configured path, even if Graph describes it (or it was renamed).
        self.memo = {i: p for i, p in known.items() if p == source.folder}

    def drive_path(self, item_id: str, _seen: frozenset[str] = frozenset()) -> str:
        if item_id in self.memo:
            return self.memo[item_id]
        if not item_id or item_id in _seen:
            raise SourceError(f"Graph returned an item without a parent, or a folder cycle, under {self.source.location}")
        item = self.new.get(item_id)
        if item is not None:
            if "root" in item:
                path = ""
            else:
                parent = self.drive_path(item.get("parentReference", {}).get("id", ""), _seen | {item_id})
                path = f"{parent}/{item['name']}".lstrip("/")
        elif item_id in self.known:
            path = self.known[item_id]
        else:
            path = self.source.lookup_drive_path(item_id)
        self.memo[item_id] = path
        return path

    def doc_id(self, item: dict[str, Any]) -> str | None:
        """The file's path relative to the location folder; None if it lies outside."""
        parent = self.drive_path(item.get("parentReference", {}).get("id", ""))
        path = f"{parent}/{item['name']}".lstrip("/")
        folder = self.source.folder
        if not folder:
            return path
        return path.removeprefix(folder + "/") if path.startswith(folder + "/") else None

    def folders(self) -> dict[str, str]:
        """The map saved with the next cursor: known folders, minus deleted ones, plus this round's."""
        folders = {i: p for i, p in self.known.items() if i not in self.gone}
        folders.update({i: self.drive_path(i) for i in self.new})
        folder = self.source.folder
        return {i: p for i, p in folders.items() if not folder or p == folder or p.startswith(folder + "/")}


def _modified(item: dict[str, Any]) -> float:
    """The item's `lastModifiedDateTime` (ISO 8601, UTC) as Unix seconds; 0 when Graph sent none."""
    when = item.get("lastModifiedDateTime") or ""
    try:
        return dt.datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp() if when else 0.0
    except ValueError:
        return 0.0
