from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.security.certs import CertificateAuthority, Issued


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: Issued
    notifier: Issued
    operator: Issued
    # Signed by the same CA, but an identity the policy does not name.
    stranger: Issued
    # The operator's name, but signed by a CA the servers do not trust.
    forged_operator: Issued
    other_ca: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(folder)
    other = CertificateAuthority(tmp_path_factory.mktemp("other-pki"), name="another CA")
    return Pki(
        ca=ca.ca,
        server=ca.issue("zoho-connect server", server=True),
        notifier=ca.issue("notifier"),
        operator=ca.issue("operator"),
        stranger=ca.issue("stranger"),
        forged_operator=other.issue("operator"),
        other_ca=other.ca,
    )
