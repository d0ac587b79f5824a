"""Registry of the public checkpoints stage 1 can use, and where to find them on disk.

Weights are never downloaded silently and never invented. Each public checkpoint is a
:class:`WeightSpec` (file name, URL, checksum, format) in :data:`REGISTRY` (the catalogue lives
in :mod:`aqa.data.checkpoints`); :func:`resolve`
looks for the file, in order, at

1. an explicit ``--weights NAME=PATH`` override (see :func:`parse_weight_overrides`),
2. ``$AQA_WEIGHTS_DIR/<filename>``,
3. ``~/.cache/aqa/weights/<filename>``,

and otherwise raises :class:`MissingWeightsError` naming the file, the directory to put it in,
its URL and the ``aqa-extract weights fetch NAME`` command. Only with ``untrained=True`` does a
missing file resolve to ``None`` (the caller then builds a randomly initialised model and must mark
its features as untrained in the cache's provenance). :func:`fetch` is the only function in the
package that downloads anything, and only when the user runs it explicitly.

Checksums: none of the upstream projects publishes a full sha256 for these files. torchvision
names its files ``<name>-<first 8 hex digits of the sha256>.pth`` and checks that prefix in
``torch.hub``; we store and verify that prefix (``sha256_prefix``). For the other files no
checksum is published, so ``sha256`` is ``None`` and :func:`verify` reports "not verifiable"
(``None``) rather than pretending; the cache still records each file's actual sha256.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.request
from pathlib import Path

from aqa.data.checkpoints import REGISTRY, WeightSpec

__all__ = [
    "WeightSpec", "REGISTRY", "WeightsError", "MissingWeightsError", "ChecksumError",
    "UnreachableError", "BadOverrideError", "ENV_VAR", "home_cache_dir", "search_dirs", "resolve", "resolve_first",
    "checkpoints_for",
    "parse_weight_overrides", "sha256_file", "verify", "fetch", "status", "weights_cli",
]

ENV_VAR = "AQA_WEIGHTS_DIR"


class WeightsError(Exception):
    """Base class of every weights-registry error."""


class MissingWeightsError(WeightsError):
    """A checkpoint was needed but is not on disk (and ``untrained`` was not requested)."""


class ChecksumError(WeightsError):
    """A file's sha256 does not match the published checksum."""


class UnreachableError(WeightsError):
    """A download that could not be made (no network, a server error): the message says where to
    put the file downloaded on another machine."""


class BadOverrideError(WeightsError, ValueError):
    """A ``--weights NAME=PATH`` value is malformed, names an unknown checkpoint or a missing file."""


def _spec_for(name: str) -> WeightSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"unknown checkpoint {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def home_cache_dir() -> Path:
    """``~/.cache/aqa/weights`` (read from ``$HOME`` at call time)."""
    return Path(os.path.expanduser("~")) / ".cache" / "aqa" / "weights"


def search_dirs() -> list[Path]:
    """The directories searched after an explicit override: ``$AQA_WEIGHTS_DIR`` (if set), then the home cache."""
    dirs = []
    env = os.environ.get(ENV_VAR)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(home_cache_dir())
    return dirs


def _default_dest() -> Path:
    return search_dirs()[0]


def _find(spec: WeightSpec, overrides: dict[str, str] | None) -> Path | None:
    if overrides and spec.name in overrides:
        p = Path(overrides[spec.name]).expanduser()
        if not p.is_file():
            raise BadOverrideError(f"--weights {spec.name}={overrides[spec.name]}: no such file")
        return p
    for d in search_dirs():
        p = d / spec.filename
        if p.is_file():
            return p
    return None


def _missing_message(spec: WeightSpec) -> str:
    dest = _default_dest()
    others = [str(d) for d in search_dirs()[1:]]
    also = f" (or {' or '.join(others)})" if others else ""
    return (
        f"missing checkpoint {spec.name!r} ({spec.description}).\n"
        f"  Put the file {spec.filename} in {dest}{also},\n"
        f"  or pass --weights {spec.name}=/path/to/{spec.filename}.\n"
        f"  Download it yourself from {spec.url}\n"
        f"  or run: aqa-extract weights fetch {spec.name}\n"
        f"  (or pass --untrained to run with random weights; the features are then marked untrained)."
    )


def resolve(name: str, overrides: dict[str, str] | None = None, untrained: bool = False,
            check: bool = True) -> Path | None:
    """Return the path of checkpoint ``name``; never downloads.

    Order: ``overrides[name]``, ``$AQA_WEIGHTS_DIR``, ``~/.cache/aqa/weights``. A missing file
    raises :class:`MissingWeightsError`, unless ``untrained`` is true, in which case ``None`` is
    returned. With ``check`` the file is verified against a published checksum where one exists
    (:class:`ChecksumError` on mismatch).
    """
    spec = _spec_for(name)
    path = _find(spec, overrides)
    if path is None:
        if untrained:
            return None
        raise MissingWeightsError(_missing_message(spec))
    if check:
        verify(name, path)
    return path


def checkpoints_for(use: str, default: str | None = None) -> list[str]:
    """Registry names whose ``used_by`` has ``use`` (e.g. ``"backbone:i3d/rgb"``), ``default`` first."""
    names = [n for n, spec in REGISTRY.items() if use in spec.used_by and n != default]
    return ([default] if default else []) + names


def resolve_first(names, overrides: dict[str, str] | None = None, untrained: bool = False,
                  check: bool = True) -> tuple[str, Path | None]:
    """Resolve the first available of several interchangeable checkpoints: ``(name, path)``.

    An override of one of ``names`` wins (overriding two is an error: which one would run?);
    otherwise the first found in the search directories. None found: :class:`MissingWeightsError`
    for ``names[0]`` (naming the alternatives), or ``(names[0], None)`` with ``untrained``.
    """
    names = list(names)
    chosen = [n for n in names if overrides and n in overrides]
    if len(chosen) > 1:
        raise BadOverrideError(f"--weights: {' and '.join(chosen)} are alternatives for the same "
                               "model; pass only one")
    for name in chosen or names:
        path = resolve(name, overrides, untrained=True, check=check)
        if path is not None:
            return name, path
    if untrained:
        return names[0], None
    alt = (f"\n  Alternatives accepted instead: {', '.join(names[1:])} (e.g. --weights "
           f"{names[1]}=/path/to/{REGISTRY[names[1]].filename})." if len(names) > 1 else "")
    raise MissingWeightsError(_missing_message(_spec_for(names[0])) + alt)


def parse_weight_overrides(items) -> dict[str, str]:
    """Parse ``["NAME=PATH", ...]`` into ``{NAME: absolute PATH}``; errors name the bad item."""
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, path = str(item).partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise BadOverrideError(f"--weights {item!r}: expected NAME=PATH")
        if name not in REGISTRY:
            raise BadOverrideError(
                f"--weights {item!r}: unknown checkpoint {name!r}; known: {', '.join(sorted(REGISTRY))}")
        if name in out:
            raise BadOverrideError(f"--weights {item!r}: {name!r} given more than once")
        p = Path(path).expanduser()
        if not p.is_file():
            raise BadOverrideError(f"--weights {item!r}: no such file {str(p)!r}")
        out[name] = str(p.resolve())
    return out


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks; memoised per (resolved path, size, mtime_ns)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    cached = _HASH_CACHE.get(key)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    digest = h.hexdigest()
    _HASH_CACHE[key] = digest
    return digest


def _check_digest(spec: WeightSpec, digest: str, where: str) -> bool | None:
    if spec.sha256:
        ok, expected = digest == spec.sha256.lower(), spec.sha256.lower()
    elif spec.sha256_prefix:
        ok, expected = digest.startswith(spec.sha256_prefix.lower()), spec.sha256_prefix.lower() + "..."
    else:
        return None
    if not ok:
        raise ChecksumError(
            f"checksum mismatch for {spec.name!r} at {where}: sha256 {digest} but expected {expected}. "
            f"The file is corrupt or not {spec.filename}; download it again from {spec.url} "
            f"(aqa-extract weights fetch {spec.name}).")
    return True


def verify(name: str, path) -> bool | None:
    """Check ``path`` against the published checksum of ``name``.

    Returns True when it matches, None when no checksum is published; raises
    :class:`ChecksumError` on a mismatch.
    """
    spec = _spec_for(name)
    if not spec.checksum_known:
        return None
    return _check_digest(spec, sha256_file(path), str(path))


def fetch(name: str, dest_dir=None, progress: bool = True) -> Path:
    """Download checkpoint ``name`` into ``dest_dir`` (default: ``$AQA_WEIGHTS_DIR`` or the home cache).

    The only place the package downloads anything. The file is written to a temporary file in
    ``dest_dir``, checked against the published checksum (if any) and then renamed into place
    atomically, so an interrupted download never leaves a file that looks complete. An existing
    file that verifies is kept and returned without downloading. A URL that cannot be reached
    (no network) or answers with an error raises :class:`UnreachableError`, which says where to
    put the file downloaded elsewhere and the checksum it must have.
    """
    spec = _spec_for(name)
    dest = Path(dest_dir).expanduser() if dest_dir is not None else _default_dest()
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / spec.filename
    if final.is_file():
        verify(name, final)
        return final
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=dest)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, _open_url(spec, final) as resp:
            total = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
            from aqa.data.logs import progress_bar

            with progress_bar(total=int(total) if total else None, unit="B", unit_scale=True,
                              desc=spec.filename, disable=not progress) as bar:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
        _check_digest(spec, h.hexdigest(), spec.url)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


#: seconds without an answer before a download gives up
URL_TIMEOUT = 60


def _open_url(spec: WeightSpec, final: Path):
    """``urlopen(spec.url)``; a failure to connect or an HTTP error is an :class:`UnreachableError`
    that says where to put the file (``final``) downloaded on another machine."""
    import urllib.error

    try:
        return urllib.request.urlopen(spec.url, timeout=URL_TIMEOUT)
    except urllib.error.HTTPError as e:
        why = f"{spec.url} answered HTTP {e.code} {e.reason}"
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        why = f"cannot reach {spec.url} ({reason})"
    checksum = (f"sha256 {spec.sha256}" if spec.sha256 else
                f"sha256 starting {spec.sha256_prefix}" if spec.sha256_prefix else
                "no published checksum (the cache records the file's sha256)")
    raise UnreachableError(
        f"{why}.\n"
        f"  Download {spec.url} on a machine with network access and put it at\n"
        f"    {final}\n"
        f"  (or anywhere, passing --weights {spec.name}=/path/to/{spec.filename}); expected: "
        f"{checksum}."
        + ("\n  `aqa-extract weights list` then shows it found." if final.parent in search_dirs()
           else "")) from None


def status(overrides: dict[str, str] | None = None) -> list[tuple[str, Path | None, bool | None]]:
    """For each registered checkpoint: (name, resolved path or None, verified).

    ``verified`` is True (checksum matches), False (mismatch), or None (file missing or no
    published checksum).
    """
    rows = []
    for name, spec in REGISTRY.items():
        path = _find(spec, overrides)
        ok: bool | None = None
        if path is not None and spec.checksum_known:
            try:
                ok = bool(verify(name, path))
            except ChecksumError:
                ok = False
        rows.append((name, path, ok))
    return rows


# ----------------------------------------------------------------------------------------------
# CLI: `aqa-extract weights ...` (a subcommand of aqa-extract, see aqa.extract.cli)
# ----------------------------------------------------------------------------------------------
import click  # noqa: E402  (click is light; torch is never imported here)


@click.group("weights")
def weights_cli():
    """List, locate and download the public checkpoints (never automatic)."""


@weights_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def _list_cmd(as_json):
    """Show every known checkpoint, where it was found and whether its checksum verifies."""
    rows = []
    for name, path, ok in status():
        spec = REGISTRY[name]
        rows.append({
            "name": name, "filename": spec.filename, "path": str(path) if path else None,
            "verified": ok, "checksum": spec.sha256 or (spec.sha256_prefix and spec.sha256_prefix + "...") or None,
            "format": spec.format, "url": spec.url, "used_by": list(spec.used_by),
            "description": spec.description,
        })
    if as_json:
        click.echo(json.dumps({"search_dirs": [str(d) for d in search_dirs()], "weights": rows}, indent=2))
        return
    click.echo("search order: --weights NAME=PATH, " + ", ".join(str(d) for d in search_dirs()))
    w = max(len(r["name"]) for r in rows)
    for r in rows:
        state = "missing" if r["path"] is None else {True: "ok", False: "CHECKSUM MISMATCH",
                                                      None: "found (no published checksum)"}[r["verified"]]
        click.echo(f"{r['name']:<{w}}  {state:<30}  {r['path'] or r['filename']}")
        if r["path"] is None and r["url"]:  # where to get it by hand on a machine without network
            click.echo(f"{'':<{w}}  from {r['url']}")
    if any(r["path"] is None for r in rows):
        click.echo(f"missing: `aqa-extract weights fetch NAME`, or put the file under "
                   f"{search_dirs()[0]}")


@weights_cli.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--dest", type=click.Path(file_okay=False), default=None,
              help="Directory to download into (default: $AQA_WEIGHTS_DIR or ~/.cache/aqa/weights).")
@click.option("--no-progress", is_flag=True, help="Hide the download progress bar.")
def _fetch_cmd(names, dest, no_progress):
    """Download the named checkpoints (explicit, checksum-verified where a checksum is published)."""
    for name in names:
        if name not in REGISTRY:
            raise click.ClickException(f"unknown checkpoint {name!r}; known: {', '.join(sorted(REGISTRY))}")
    for name in names:
        try:
            path = fetch(name, dest, progress=not no_progress)
        except (WeightsError, OSError) as e:
            raise click.ClickException(f"{name}: {e}") from e
        click.echo(f"{name}: {path}")
