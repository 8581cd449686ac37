"""``digitguard weights``: encrypt a model's weights at rest (AES-256-GCM), and make keys for it.

A click adapter over :mod:`digitguard.models.encryption` and
:func:`digitguard.models.artifact.write_encrypted_artifact`. The server decrypts in memory with
the key from ``$DIGITGUARD_MODEL_KEY_FILE`` or ``$DIGITGUARD_MODEL_KEY``; nothing decrypted is
ever written to disk.
"""

from __future__ import annotations

from pathlib import Path

import click

from digitguard.cli_options import trust_option


@click.group("weights")
def weights() -> None:
    """Encrypt model weights at rest (AES-256-GCM) and create their keys."""


@weights.command("new-key")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def new_key(path: Path) -> None:
    """Write a random 256-bit key, base64, to PATH (mode 0600; PATH must not exist). Never commit it."""
    from digitguard.models.encryption import new_key_file

    try:
        key_id = new_key_file(path)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; a key file is never overwritten") from None
    click.echo(f"key id {key_id} written to {path}")


@weights.command("encrypt")
@click.argument("model_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Encrypted model directory to create."
)
@click.option(
    "--key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="DIGITGUARD_MODEL_KEY_FILE",
    required=True,
    help="The data key (from `weights new-key`; or $DIGITGUARD_MODEL_KEY_FILE).",
)
@click.option(
    "--signing-key", type=click.Path(path_type=Path), envvar="DIGITGUARD_SIGNING_KEY", required=True
)
@trust_option
def encrypt(
    model_dir: Path, out: Path, key_file: Path, signing_key: Path, trust_dirs: tuple[Path, ...]
) -> None:
    """Verify MODEL_DIR, then write OUT: its weights encrypted, manifest unchanged, signed anew."""
    from digitguard.models.artifact import load_verified, write_encrypted_artifact
    from digitguard.models.encryption import FileKeyProvider, key_id_of

    verified = load_verified(model_dir, list(trust_dirs))
    provider = FileKeyProvider(key_file)
    key = provider.read()
    write_encrypted_artifact(model_dir, out, key, signing_key)
    load_verified(out, list(trust_dirs), key_provider=provider)  # decrypts and checks everything, or raises
    click.echo(
        f"encrypted {model_dir} → {out} with key {key_id_of(key)}; weights sha256 {verified.weights_sha256}; "
        f"serve it with DIGITGUARD_MODEL_KEY_FILE={key_file}"
    )
