"""Fetching files: plain HTTP(S) with timeouts and retries, the Hugging Face hub, Kaggle.

- :func:`download` fetches a URL (or ``file://``) to a path: a timeout on every read, a bounded
  number of retries, a progress bar on a terminal, written to a temporary name and renamed, so an
  interrupted or failed download leaves nothing behind. A file that turns out to be an HTML page
  (Google Drive's quota, virus-scan or sign-in pages) is refused with :class:`HTMLPageError`.
- :func:`hf_download` goes through ``huggingface_hub`` (its shared cache, ``HF_ENDPOINT``,
  ``HF_HUB_OFFLINE``, resumable downloads) and says which revision the file came from.
- :func:`fetch_preset` brings a preset folder (``hf://org/name[@revision]``,
  ``kaggle://owner/model/keras/variation[/version]`` or a local folder) and checks every file
  against the ``SHA256SUMS`` manifest published with it, fetching a corrupted cached file again.
"""

import os
import re
import time
import urllib.error
import urllib.request

from eca_keras.files import sha256_of

DEFAULT_TIMEOUT = 60.0  # seconds without a byte before a read fails
DEFAULT_RETRIES = 3
MANIFEST = "SHA256SUMS"
HUB_SCHEMES = ("hf://", "kaggle://")
_CHUNK = 1 << 20


class DownloadError(OSError):
    """A file could not be fetched (after its retries), or is not what was expected."""


class HTMLPageError(DownloadError):
    """A web page arrived where a file was expected (a host's quota or confirmation page)."""


def looks_like_html(head):
    """Whether the first bytes of a file are an HTML page rather than a binary checkpoint."""
    text = head.lstrip()[:256].lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def html_reason(head):
    """What a Google Drive (or other) HTML page says, in a few words."""
    text = head.decode("utf-8", "replace").lower()
    if "too many users have viewed or downloaded" in text or "quota" in text:
        return "the host's download quota for this file is exceeded"
    if "virus" in text and "scan" in text:
        return "the host asks to confirm a download it cannot scan for viruses"
    if "sign in" in text or "accounts.google.com" in text:
        return "the host asks to sign in"
    return "the host answered with a web page instead of the file"


def download(url, path, timeout=DEFAULT_TIMEOUT, retries=DEFAULT_RETRIES, progress=None):
    """Fetches ``url`` to ``path`` (see the module docstring); returns ``path``.

    ``progress``: show a progress bar (default: when stderr is a terminal).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, f".{os.path.basename(path)}.partial-{os.getpid()}")
    last_error = None
    try:
        for attempt in range(1, retries + 1):
            try:
                _fetch(url, partial, timeout, progress)
                break
            except HTMLPageError:
                raise
            except (urllib.error.URLError, OSError, ValueError) as error:
                if isinstance(error, urllib.error.HTTPError) and 400 <= error.code < 500:
                    raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
                last_error = error
                if attempt < retries:
                    time.sleep(min(2**attempt, 10))
        else:
            reason = getattr(last_error, "reason", None) or last_error
            raise DownloadError(
                f"Could not download {url} after {retries} attempts: {reason}"
            ) from None
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def _fetch(url, partial, timeout, progress):
    request = urllib.request.Request(url, headers={"User-Agent": "eca-keras"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except TimeoutError:
        raise OSError(f"no answer within {timeout:g} s") from None
    with response:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = _progress_bar(os.path.basename(partial).split(".partial-")[0][1:], total, progress)
        try:
            with open(partial, "wb") as handle:
                first = True
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except TimeoutError:
                        raise OSError(f"no data for {timeout:g} s") from None
                    if not chunk:
                        break
                    if first and (
                        "text/html" in response.headers.get("Content-Type", "")
                        or looks_like_html(chunk)
                    ):
                        raise HTMLPageError(f"{url}: {html_reason(chunk)}")
                    first = False
                    handle.write(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
    if total is not None and os.path.getsize(partial) != total:
        raise OSError(f"the transfer stopped at {os.path.getsize(partial)} of {total} bytes")


class _NoBar:
    def update(self, count):
        pass

    def close(self):
        pass


def _progress_bar(name, total, progress):
    import sys

    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name)


# --------------------------------------------------------------------------- Hugging Face hub


def hf_download(repo_id, filename, revision=None, force=False):
    """``(local path, revision)`` of ``filename`` in ``repo_id`` through ``huggingface_hub``.

    The file lands in the hub's shared cache; ``revision`` (a branch, tag or commit; default
    ``main``) resolves to the commit the file came from. Failures raise :class:`DownloadError`
    naming the repository, with ``HF_HUB_OFFLINE`` in mind.
    """
    import huggingface_hub
    from huggingface_hub import errors

    try:
        path = huggingface_hub.hf_hub_download(
            repo_id, filename, revision=revision, force_download=force
        )
    except errors.LocalEntryNotFoundError:
        offline = "HF_HUB_OFFLINE is set" if os.environ.get("HF_HUB_OFFLINE") else "no connection"
        raise DownloadError(
            f"{filename} of hf://{repo_id} is not in the cache and the hub cannot be reached "
            f"({offline})"
        ) from None
    except errors.RevisionNotFoundError:
        raise DownloadError(f"hf://{repo_id}: no revision {revision!r}") from None
    except (errors.RemoteEntryNotFoundError, errors.RepositoryNotFoundError) as error:
        raise DownloadError(
            f"hf://{repo_id}: no {filename} there ({type(error).__name__})"
        ) from None
    except (errors.HfHubHTTPError, errors.OfflineModeIsEnabled, OSError, ValueError) as error:
        offline = " (HF_HUB_OFFLINE is set and the file is not cached)"
        hint = offline if os.environ.get("HF_HUB_OFFLINE") else ""
        message = " ".join(str(error).split())[:300]
        raise DownloadError(
            f"Could not fetch {filename} of hf://{repo_id}{hint}: {message}"
        ) from None
    return path, _commit_of(path) or revision


def _commit_of(path):
    """The commit a file of the hub's cache belongs to: ``.../snapshots/<commit>/...``."""
    match = re.search(r"[/\\]snapshots[/\\]([0-9a-f]{40})[/\\]", path)
    return match.group(1) if match else None


# --------------------------------------------------------------------------- presets


def is_hub_handle(reference):
    return isinstance(reference, str) and reference.startswith(HUB_SCHEMES)


def parse_hf_handle(handle):
    """``hf://org/name[@revision]`` -> ``(repo_id, revision or None)``."""
    body = handle.removeprefix("hf://")
    repo_id, _, revision = body.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"A Hugging Face handle looks like hf://org/name[@revision]; got {handle}")
    return repo_id, revision or None


def read_manifest(folder):
    """``{relative path: sha256}`` of a preset's ``SHA256SUMS``."""
    entries = {}
    with open(os.path.join(folder, MANIFEST)) as handle:
        for line in handle:
            if line.strip():
                digest, name = line.rstrip("\n").split("  ", 1)
                entries[name] = digest
    return entries


def write_manifest(folder):
    """Writes ``SHA256SUMS`` (``sha256sum -c`` format) over every other file of ``folder``."""
    lines = []
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, folder).replace(os.sep, "/")
            if relative != MANIFEST:
                lines.append(f"{sha256_of(path)}  {relative}")
    with open(os.path.join(folder, MANIFEST), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return lines


def damaged_files(folder):
    """The files of a preset whose sha256 differs from its manifest (or that are missing)."""
    return [
        name
        for name, digest in read_manifest(folder).items()
        if not os.path.isfile(os.path.join(folder, name))
        or sha256_of(os.path.join(folder, name)) != digest
    ]


def fetch_preset(reference):
    """A local, verified folder for a preset reference; returns ``(folder, revision)``.

    ``hf://org/name[@revision]``: every file listed in the repository's ``SHA256SUMS`` through
    the hub's cache; a file whose hash does not match (a corrupted cache) is fetched again once.
    ``kaggle://...``: through ``kagglehub``. A local folder is checked as it is.
    """
    if reference.startswith("hf://"):
        return _fetch_hf_preset(reference)
    if reference.startswith("kaggle://"):
        return _fetch_kaggle_preset(reference), None
    if not os.path.isdir(reference):
        raise FileNotFoundError(f"No such preset folder: {reference}")
    if os.path.isfile(os.path.join(reference, MANIFEST)):
        bad = damaged_files(reference)
        if bad:
            raise DownloadError(f"{reference}: {', '.join(bad)} do not match its {MANIFEST}")
    return reference, None


def _fetch_hf_preset(handle):
    repo_id, revision = parse_hf_handle(handle)
    manifest, commit = hf_download(repo_id, MANIFEST, revision)
    revision = commit or revision  # every file from the manifest's commit
    folder = os.path.dirname(manifest)
    for name, digest in read_manifest(folder).items():
        path, _ = hf_download(repo_id, name, revision)
        if sha256_of(path) != digest:
            path, _ = hf_download(repo_id, name, revision, force=True)
            if sha256_of(path) != digest:
                raise DownloadError(f"{handle}: {name} does not match its published sha256")
    return folder, revision


def _fetch_kaggle_preset(handle):
    try:
        import kagglehub
    except ImportError:
        raise ImportError(
            "kaggle:// handles need kagglehub: pip install 'eca-keras[hub]'"
        ) from None
    try:
        folder = kagglehub.model_download(handle.removeprefix("kaggle://"))
    except Exception as error:  # kagglehub raises its own HTTP and resolver errors
        raise DownloadError(
            f"Could not fetch {handle}: {' '.join(str(error).split())[:300]}"
        ) from None
    if os.path.isfile(os.path.join(folder, MANIFEST)):
        bad = damaged_files(folder)
        if bad:
            raise DownloadError(f"{handle}: {', '.join(bad)} do not match its {MANIFEST}")
    return folder
