"""What the control plane reads from pgBackRest: its error messages and ``info --output=json``
(a real answer of pgBackRest 2.45), and WAL segment names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from controlplane.backups.archive import segment_start, wal_segment
from controlplane.backups.errors import PgBackRestError
from controlplane.backups.pgbackrest import PgBackRest, PgBackRestConfig, StanzaInfo, error_message

pytestmark = pytest.mark.unit

INFO = {
    "archive": [
        {
            "database": {"id": 1, "repo-key": 1},
            "id": "15-1",
            "max": "000000010000000000000003",
            "min": "000000010000000000000001",
        }
    ],
    "backup": [
        {
            "archive": {"start": "000000010000000000000003", "stop": "000000010000000000000003"},
            "backrest": {"format": 5, "version": "2.45"},
            "database": {"id": 1, "repo-key": 1},
            "error": False,
            "info": {
                "delta": 32175859,
                "repository": {"delta": 9728221, "size": 9728221},
                "size": 32175859,
            },
            "label": "20261205-065804F",
            "lsn": {"start": "0/3000028", "stop": "0/3000100"},
            "prior": None,
            "reference": None,
            "timestamp": {"start": 1796453884, "stop": 1796453889},
            "type": "full",
        }
    ],
    "cipher": "none",
    "db": [{"id": 1, "repo-key": 1, "system-id": 7715710651516866433, "version": "15"}],
    "name": "inventory",
    "repo": [{"cipher": "none", "key": 1, "status": {"code": 0, "message": "ok"}}],
    "status": {"code": 0, "lock": {"backup": {"held": False}}, "message": "ok"},
}


def test_info_is_read_into_backup_sets_with_their_times_sizes_and_wal_range() -> None:
    info = StanzaInfo.model_validate(INFO)
    assert info.exists
    latest = info.latest()
    assert latest is not None
    assert (latest.label, latest.type, latest.archive.start, latest.lsn.stop) == (
        "20261205-065804F",
        "full",
        "000000010000000000000003",
        "0/3000100",
    )
    assert latest.started_at == datetime(2026, 12, 5, 6, 58, 4, tzinfo=UTC)
    assert (latest.info.size, latest.info.repository.size) == (32175859, 9728221)
    missing = StanzaInfo.model_validate(
        {"name": "inventory", "status": {"code": 1, "message": "missing stanza path"}}
    )
    assert not missing.exists
    assert missing.latest() is None


def test_the_error_is_pgbackrests_last_error_with_its_continuation_lines() -> None:
    console = (
        "WARN: unable to check pg2: [DbConnectError] unable to connect\n"
        "ERROR: [104]: archive-push command encountered error(s):\n"
        "       repo1: [FileOpenError] unable to open file '/repo/x.lz4' for write: [13] "
        "Permission denied\n"
    )
    assert error_message(console) == (
        "[104]: archive-push command encountered error(s): repo1: [FileOpenError] unable to "
        "open file '/repo/x.lz4' for write: [13] Permission denied"
    )
    log = (
        "2026-12-05 06:58:58.665 P00   INFO: archive-push command begin 2.45\n"
        "2026-12-05 06:58:58.700 P00  ERROR: [047]: unable to create path '/repo/a'\n"
        "                                    [13] Permission denied\n"
        "2026-12-05 06:58:58.701 P00   INFO: archive-push command end: aborted with exception\n"
    )
    assert error_message(log) == "[047]: unable to create path '/repo/a' [13] Permission denied"
    assert error_message("INFO: all fine\n") is None


def test_the_configuration_names_the_log_folder_the_archive_errors_go_to(tmp_path: Path) -> None:
    config = tmp_path / "pgbackrest.conf"
    config.write_text(
        "[global]\nrepo1-path=/srv/repo\nlog-path=/srv/log\n\n[inventory]\npg1-path=/srv/pg\n",
        encoding="utf-8",
    )
    read = PgBackRestConfig.read(config, stanza="inventory")
    assert read.archive_push_log("inventory") == Path("/srv/log/inventory-archive-push.log")
    assert read.repo_path == Path("/srv/repo")
    config.write_text("[inventory]\npg1-path=/srv/pg\n", encoding="utf-8")
    assert PgBackRestConfig.read(config, stanza="inventory").log_path == Path("/var/log/pgbackrest")


def test_a_missing_binary_or_account_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = PgBackRest(config=tmp_path / "x.conf", stanza="inventory", binary=tmp_path / "none")
    with pytest.raises(PgBackRestError, match="none"):
        missing.info()
    nobody = PgBackRest(config=tmp_path / "x.conf", stanza="inventory", user="no-such-account")
    with pytest.raises(PgBackRestError, match="no-such-account"):
        nobody.info()


def test_wal_segment_names_give_their_position() -> None:
    assert wal_segment("000000020000000A000000FF") == (2, 10, 255)
    assert wal_segment("000000010000000000000003.00000028.backup") == (1, 0, 3)
    assert wal_segment("00000002.history") is None
    assert segment_start("000000010000000100000002", segment_size=16 * 1024 * 1024) == (
        (1 << 32) + 2 * 16 * 1024 * 1024
    )
