"""The authors' released FlowFeat weights: names, local cache and download."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from flowfeat_core.home import flowfeat_home
from flowfeat_core.hub.errors import WeightsUnavailableError
from flowfeat_core.process.atomic_io import write_atomically

RELEASE_URL = "https://cvg.cit.tum.de/webshare/g/papers/flowfeat/"

# Released file -> registered encoder it was trained with.
RELEASED_WEIGHTS: dict[str, str] = {
    "dino_s16_flowfeat_yt.pth": "dino_vits16",
    "dino_b16_flowfeat_yt.pth": "dino_vitb16",
    "dino_b16_flowfeat_kt.pth": "dino_vitb16",
    "dino2_s14_flowfeat_yt.pth": "dinov2_vits14",
    "dino2_b14_flowfeat_yt.pth": "dinov2_vitb14",
    "dino2_b14_flowfeat_kt.pth": "dinov2_vitb14",
}


def cache_dir() -> Path:
    """Where released weights are looked up (and downloaded to): ``flowfeat_home()``."""
    return flowfeat_home()


def as_released_name(name: str) -> str | None:
    """The released file ``name`` refers to (``dino2_s14_flowfeat_yt``, with or without ``.pth``,
    and no folder), or None when it names no release."""
    file_name = f"{name.removesuffix('.pth')}.pth"
    return file_name if file_name in RELEASED_WEIGHTS else None


def released_file_name(name: str) -> str:
    """Like :func:`as_released_name`, but an unknown name is a ValueError listing the known ones."""
    file_name = as_released_name(name)
    if file_name is None:
        known = ", ".join(sorted(RELEASED_WEIGHTS))
        raise ValueError(f"unknown released FlowFeat weights {name!r}; known: {known}")
    return file_name


def resolve_released_weights(name: str, download: bool = True, timeout_s: float = 30.0) -> Path:
    """Local path of released weights: the cache dir first, then a download into it."""
    file_name = released_file_name(name)
    target = cache_dir() / file_name
    if target.is_file():
        return target
    if download:
        try:
            return download_file(RELEASE_URL + file_name, target, timeout_s)
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise WeightsUnavailableError(
                f"cannot download {file_name} ({reason}); download {RELEASE_URL}{file_name} "
                f"on a machine with internet and put it at {target} (or set FLOWFEAT_HOME)"
            ) from error
    raise WeightsUnavailableError(f"{file_name} is not at {target}; download {RELEASE_URL}{file_name}")


def download_file(url: str, target: Path, timeout_s: float) -> Path:
    """Download ``url`` to ``target`` with a progress bar; the file appears only when complete."""

    def fetch(temporary: str) -> None:
        with open(temporary, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as progress:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    progress.update(len(chunk))

    return write_atomically(target, fetch)
