"""`make proto-lint` fails a change that renames or renumbers a field of the contract: buf
breaking with the committed buf.yaml, on a copy of protos/ changed as a careless edit
would, against protos/ as committed. An added field passes, so the check can pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.plugins.processes import REPO_ROOT

BUF = REPO_ROOT / "node_modules" / ".bin" / "buf"
BROKER_PROTO = Path("protos/zoho/broker/v1/broker.proto")

pytestmark = pytest.mark.skipif(
    not BUF.exists(), reason="buf is installed by `npm ci` (make proto-lint, part of make test)"
)


def breaking_after(edit: tuple[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    shutil.copy(REPO_ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(REPO_ROOT / "protos", tmp_path / "protos")
    proto = tmp_path / BROKER_PROTO
    text = proto.read_text()
    old, new = edit
    assert text.count(old) == 1, old
    proto.write_text(text.replace(old, new))
    return subprocess.run([str(BUF), "breaking", str(tmp_path), "--against", str(REPO_ROOT)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_renaming_a_contract_field_fails(tmp_path: Path) -> None:
    done = breaking_after(("  string api_domain = 4;\n  repeated string scopes = 5;",
                           "  string api_host = 4;\n  repeated string scopes = 5;"), tmp_path)
    assert done.returncode != 0
    assert 'changed name from "api_domain" to "api_host"' in done.stdout


def test_renumbering_a_contract_field_fails(tmp_path: Path) -> None:
    done = breaking_after(("  int32 min_ttl_seconds = 3;", "  int32 min_ttl_seconds = 13;"),
                          tmp_path)
    assert done.returncode != 0
    assert "min_ttl_seconds" in done.stdout
    assert "GetTokenRequest" in done.stdout


def test_adding_a_field_passes(tmp_path: Path) -> None:
    done = breaking_after(("  int32 min_ttl_seconds = 3;",
                           "  int32 min_ttl_seconds = 3;\n  string note = 4;"), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
