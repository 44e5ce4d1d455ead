"""Model hashes remembered between runs, and recomputed when the file changes."""

from __future__ import annotations

import hashlib
import os

from lut.toolkit.core import hash_cache


def test_a_file_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights" * 1000)
    reads = []
    real = hash_cache.sha256_file
    monkeypatch.setattr(hash_cache, "sha256_file", lambda p: reads.append(p) or real(p))
    first = hash_cache.cached_sha256(model)
    assert first == hashlib.sha256(b"weights" * 1000).hexdigest()
    assert hash_cache.cached_sha256(tmp_path / "." / "model.onnx") == first and len(reads) == 1
    assert (tmp_path / "cache" / "lut" / "sha256.json").is_file()
    model.write_bytes(b"other weights" * 1000)  # replaced: new size and time
    assert hash_cache.cached_sha256(model) == hashlib.sha256(b"other weights" * 1000).hexdigest()
    assert len(reads) == 2
    stat = model.stat()
    model.write_bytes(b"OTHER weights" * 1000)  # the same size and time, another inode's content kept in place
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert hash_cache.cached_sha256(model) == hashlib.sha256(b"OTHER weights" * 1000).hexdigest()


def test_a_damaged_or_unwritable_cache_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache" / "lut").mkdir(parents=True)
    (tmp_path / "cache" / "lut" / "sha256.json").write_text("{not json")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    assert hash_cache.cached_sha256(model) == hashlib.sha256(b"x").hexdigest()
    monkeypatch.setenv("XDG_CACHE_HOME", str(model))  # a file where the cache folder would be
    assert hash_cache.cached_sha256(model) == hashlib.sha256(b"x").hexdigest()
    monkeypatch.setenv("LUT_NO_HASH_CACHE", "1")
    assert hash_cache.cached_sha256(model) == hashlib.sha256(b"x").hexdigest()
