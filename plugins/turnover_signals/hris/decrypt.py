"""OpenPGP decryption of HRIS exports (`<file>.pgp` / `.gpg`).

The private key comes from an Airflow connection (default `hris_pgp`: the armored key in the
password field or the extra `private_key`, its passphrase in the extra `passphrase`). It is
imported into a throwaway GnuPG home inside the task's temporary directory, and the clear
text is written only there; both disappear with the task.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from turnover_signals.errors import BadInputError, TurnoverSignalsError

DEFAULT_PGP_CONN_ID = "hris_pgp"


def decrypt_file(path: Path, config: Mapping[str, Any], work_dir: Path) -> Path:
    """Decrypt `path` into `work_dir` and return the clear-text path (suffix .pgp/.gpg dropped)."""
    import gnupg
    from airflow.sdk import BaseHook

    conn_id = config["hris"].get("pgp_conn_id", DEFAULT_PGP_CONN_ID)
    connection = BaseHook.get_connection(conn_id)
    extra = connection.extra_dejson
    private_key = extra.get("private_key") or connection.password
    if not private_key:
        raise TurnoverSignalsError(
            f"HRIS file {path.name}",
            f"the file is encrypted but connection '{conn_id}' holds no private key",
            "put the armored OpenPGP private key in the password field (or extra 'private_key') of "
            f"'{conn_id}'",
            "hris-encrypted-files",
        )
    home = work_dir / "gnupg"
    home.mkdir(mode=0o700, exist_ok=True)
    gpg = gnupg.GPG(gnupghome=str(home))
    imported = gpg.import_keys(private_key)
    if not imported.count:
        raise TurnoverSignalsError(
            f"HRIS file {path.name}",
            f"the key in connection '{conn_id}' could not be imported",
            "check that it is an armored OpenPGP private key",
            "hris-encrypted-files",
        )
    clear_path = work_dir / path.name.removesuffix(".pgp").removesuffix(".gpg")
    with open(path, "rb") as handle:
        result = gpg.decrypt_file(
            handle, output=str(clear_path), passphrase=extra.get("passphrase"), always_trust=True
        )
    if not result.ok:
        if clear_path.exists():
            os.remove(clear_path)
        raise BadInputError(
            f"HRIS file {path.name}",
            f"OpenPGP decryption failed ({result.status})",
            f"check that the vendor encrypted to the key in connection '{conn_id}' and that the file is "
            "complete",
            "hris-encrypted-files",
        )
    return clear_path
