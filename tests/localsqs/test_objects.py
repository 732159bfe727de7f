"""The engine's S3 objects: bytes in files of their own, gone when deleted or expired, and
still there after the engine is closed and opened again."""

import pathlib
import time
from collections.abc import Iterator

import pytest

from localsqs.errors import S3Error
from localsqs.objects import Objects
from localsqs.store import Store


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Iterator[Store]:
    opened = Store(tmp_path / "store.db", "fsync")
    opened.open()
    yield opened
    opened.close()


def files(root: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in root.iterdir() if p.is_file()]


async def test_an_object_lives_in_one_file_until_it_is_deleted_or_replaced(
    store: Store, tmp_path: pathlib.Path
) -> None:
    objects = Objects(store, tmp_path / "objects")
    await objects.start()
    await objects.create_bucket("b")
    await objects.put("b", "k", b"one", content_type="text/plain", checksum={}, encryption=None)
    await objects.put("b", "k", b"two", content_type="text/plain", checksum={}, encryption=None)
    assert len(files(objects.root)) == 1  # the replaced one's file is gone
    assert (await objects.get("b", "k"))[1] == b"two"
    assert objects.size_bytes() == 3
    await objects.delete("b", "k")
    assert files(objects.root) == []
    with pytest.raises(S3Error, match="key does not exist"):
        await objects.head("b", "k")


async def test_the_lifecycle_expires_old_objects_under_its_prefix_only(
    store: Store, tmp_path: pathlib.Path
) -> None:
    objects = Objects(store, tmp_path / "objects")
    await objects.start()
    await objects.create_bucket("b")
    await objects.set_lifecycle("b", [{"id": "x", "status": "Enabled", "prefix": "bodies/",
                                       "days": 15}])  # fmt: skip
    for key in ("bodies/a", "bodies/b", "other"):
        await objects.put("b", key, b"x", content_type="t", checksum={}, encryption=None)
    assert await objects.sweep(now=time.time() + 14 * 86_400) == 0
    assert await objects.sweep(now=time.time() + 16 * 86_400) == 2
    assert [p.name for p in files(objects.root)] == [(await objects.head("b", "other")).file]


async def test_objects_survive_closing_the_engine(tmp_path: pathlib.Path) -> None:
    store = Store(tmp_path / "store.db", "fsync")
    store.open()
    objects = Objects(store, tmp_path / "objects")
    await objects.start()
    await objects.create_bucket("b")
    await objects.put("b", "k", b"kept", content_type="t", checksum={"crc32": "x"}, encryption=None)
    store.close()
    again = Store(tmp_path / "store.db", "fsync")
    again.open()
    try:
        stored, data = await Objects(again, tmp_path / "objects").get("b", "k")
    finally:
        again.close()
    assert data == b"kept"
    assert stored.checksum == {"crc32": "x"}
