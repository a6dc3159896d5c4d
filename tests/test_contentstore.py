"""One contract for every content store: the local folder and S3 (moto's server, through boto3's configuration)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from pagelens.contentstore import ContentStore, LocalContentStore, S3ContentStore, content_store
from pagelens.settings import Settings
from tests.test_source_s3 import bucket, s3, s3_endpoint  # noqa: F401 (fixtures: moto S3 and a bucket)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ContentStore:
    if request.param == "local":
        return LocalContentStore(tmp_path / "content")
    name = request.getfixturevalue("bucket")
    return S3ContentStore(f"s3://{name}/kept", Settings(data_dir=tmp_path), tmp_path / "cache")


def kept_file(tmp_path: Path, data: bytes) -> tuple[Path, str]:
    path = tmp_path / "doc.pdf"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_bytes_come_back_exactly_and_a_second_put_is_a_no_op(store: ContentStore, tmp_path: Path) -> None:
    path, sha = kept_file(tmp_path, b"%PDF-1.7 indexed bytes")
    store.put(sha, path)
    store.put(sha, path)
    path.write_bytes(b"changed at the source")  # the store holds a copy, not a link
    got = store.get(sha)
    assert got is not None and got.read_bytes() == b"%PDF-1.7 indexed bytes"


def test_missing_content_is_none(store: ContentStore) -> None:
    assert store.get("a" * 64) is None
    assert store.get_json("a" * 64, "pii-v1") is None


def test_sidecars_round_trip(store: ContentStore, tmp_path: Path) -> None:
    path, sha = kept_file(tmp_path, b"x")
    store.put(sha, path)
    store.put_json(sha, "pii-v1", {"1": [[1.0, 2.0, 3.0, 4.0]]})
    assert store.get_json(sha, "pii-v1") == {"1": [[1.0, 2.0, 3.0, 4.0]]}


def test_bytes_that_do_not_match_their_hash_are_not_served(store: ContentStore, tmp_path: Path) -> None:
    path, _ = kept_file(tmp_path, b"the real bytes")
    lie = hashlib.sha256(b"other bytes").hexdigest()
    store.put(lie, path)  # stored under a name its bytes do not hash to (a bug, or tampering)
    assert store.get(lie) is None


@pytest.mark.parametrize("key", ["../../etc/passwd", "A" * 64, "abc", "0" * 63 + "/"])
def test_keys_are_sha256_digests_only(store: ContentStore, tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        store.put(key, kept_file(tmp_path, b"x")[0])
    with pytest.raises(ValueError, match="SHA-256"):
        store.get(key)


def test_settings_choose_the_store(tmp_path: Path) -> None:
    assert isinstance(content_store(Settings(data_dir=tmp_path)), LocalContentStore)
    assert isinstance(content_store(Settings(data_dir=tmp_path, content_store="s3://b/p")), S3ContentStore)
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        content_store(Settings(data_dir=tmp_path, content_store="gs://b/p"))


def test_objects_lists_each_document_with_its_sidecars_and_delete_removes_them(store: ContentStore,
                                                                              tmp_path: Path) -> None:
    path, sha = kept_file(tmp_path, b"%PDF-1.7 first")
    (tmp_path / "second").mkdir()
    other_path, other = kept_file(tmp_path / "second", b"%PDF-1.7 second")
    store.put(sha, path)
    store.put_json(sha, "pii-v1", {"1": []})
    store.put(other, other_path)
    listed = {o.key: o for o in store.objects()}
    assert set(listed) == {f"{sha[:2]}/{sha}", f"{sha[:2]}/{sha}.pii-v1.json", f"{other[:2]}/{other}"}
    assert listed[f"{sha[:2]}/{sha}"].size == len(b"%PDF-1.7 first") and listed[f"{sha[:2]}/{sha}"].sha256 == sha
    assert {o.key for o in store.objects(sha)} == {f"{sha[:2]}/{sha}", f"{sha[:2]}/{sha}.pii-v1.json"}
    assert store.get(sha) is not None  # (an S3 read also leaves a local copy: delete must take it too)
    store.delete(o.key for o in store.objects(sha))
    assert store.get(sha) is None and store.get_json(sha, "pii-v1") is None
    assert [o.key for o in store.objects()] == [f"{other[:2]}/{other}"]
    store.delete([f"{sha[:2]}/{sha}"])  # already gone: fine


def test_putting_kept_bytes_again_refreshes_their_timestamp(store: ContentStore, tmp_path: Path) -> None:
    """What a sweep's grace period counts from: bytes a running ingest puts again are recent, however old."""
    path, sha = kept_file(tmp_path, b"%PDF-1.7 old bytes")
    store.put(sha, path)
    if isinstance(store, LocalContentStore):
        os.utime(store.root / f"{sha[:2]}/{sha}", (time.time() - 86_400, time.time() - 86_400))
    (first,) = store.objects(sha)
    time.sleep(1.1)  # S3 timestamps have whole seconds
    store.put(sha, path)
    (again,) = store.objects(sha)
    assert again.modified > first.modified and time.time() - again.modified < 60
    assert store.get(sha) is not None and store.get(sha).read_bytes() == b"%PDF-1.7 old bytes"  # type: ignore[union-attr]
