"""The run folder's manifest (Contract 4): written and read by one owner, with a format version."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from matcher import runfolder
from matcher.runfolder import FORMAT, Manifest, ManifestError, read_manifest, write_manifest


def data(**changes: Any) -> dict[str, Any]:
    """A manifest as written before the format field existed (version 1)."""
    manifest: dict[str, Any] = {
        "run_id": "r1",
        "engine": "duckdb",
        "as_of": "2025-06-01",
        "snapshot": {"path": "/data/snapshot", "fingerprint": "snap-1"},
        "rules": {"path": "/data/policies", "fingerprint": "rules-1"},
        "policies": [
            {
                "id": "p1",
                "version": 2,
                "title": "惠企补贴",
                "department": "市工业和信息化局",
                "period": "2025",
                "budget": "100000.00",
                "allocation": "pro_rata",
                "confirmation": "required",
                "conditions": [{"id": "ok", "text": "依法经营", "clause": "第二条"}],
                "items": [{"id": "main", "title": "主事项", "conditions": []}],
            }
        ],
        "over_budget": [],
        "counts": {"enterprises": 10, "candidates": 3},
        "items": [{"policy_id": "p1", "item_id": "main", "candidates": 3}],
        "totals": {"p1": "300.00"},
    }
    return manifest | changes


def test_round_trip_keeps_the_json_and_adds_the_format(tmp_path: Path) -> None:
    written = write_manifest(tmp_path, data())
    on_disk = json.loads((tmp_path / runfolder.MANIFEST).read_text(encoding="utf-8"))
    assert on_disk == {"format": FORMAT} | data()
    read = read_manifest(tmp_path)
    assert read == written
    assert read.format == FORMAT
    assert read.run_id == "r1"
    assert read.as_of == dt.date(2025, 6, 1)
    assert read.snapshot.fingerprint == "snap-1"
    assert read.enterprises == 10
    policy = read.policy("p1", 2)
    assert policy is not None
    assert policy.budget == "100000.00"
    assert [i.id for i in policy.items] == ["main"]
    assert policy.conditions[0].clause == "第二条"
    assert read.to_dict() == on_disk
    write_manifest(tmp_path, read)
    assert json.loads((tmp_path / runfolder.MANIFEST).read_text(encoding="utf-8")) == on_disk


def test_a_version_1_manifest_without_format_is_read(tmp_path: Path) -> None:
    (tmp_path / runfolder.MANIFEST).write_text(json.dumps(data(), ensure_ascii=False), encoding="utf-8")
    read = read_manifest(tmp_path)
    assert read.format == 1
    assert read.to_dict() == data()
    assert read.policies[0].notice_days is None


def test_a_missing_key_is_refused_naming_the_file_and_the_key(tmp_path: Path) -> None:
    broken = data()
    del broken["rules"]
    del broken["policies"][0]["confirmation"]
    (tmp_path / runfolder.MANIFEST).write_text(json.dumps(broken, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ManifestError) as e:
        read_manifest(tmp_path)
    message = str(e.value)
    assert str(tmp_path / "manifest.json") in message
    assert "manifest.json 缺少 rules" in message
    assert "manifest.json 政策 p1 缺少 confirmation" in message


def test_a_missing_manifest_is_refused_naming_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"不是匹配结果目录：缺少 manifest\.json"):
        read_manifest(tmp_path)


def test_a_future_format_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / runfolder.MANIFEST).write_text(json.dumps(data(format=FORMAT + 1)), encoding="utf-8")
    with pytest.raises(ManifestError) as e:
        read_manifest(tmp_path)
    assert f"格式版本为 {FORMAT + 1}" in str(e.value)
    assert "请升级 zhida" in str(e.value)


def test_the_writer_refuses_a_manifest_it_could_not_read_back(tmp_path: Path) -> None:
    broken = data()
    del broken["run_id"]
    with pytest.raises(ManifestError, match="缺少 run_id"):
        write_manifest(tmp_path, broken)
    assert not (tmp_path / runfolder.MANIFEST).exists()
    assert isinstance(Manifest.from_dict(data()), Manifest)
