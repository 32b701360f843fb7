"""Moving a run directory to another machine in a few bounded files: `rewardsearch pack` / `unpack`.

Why: GPU time often comes in short leases on machines that keep nothing (a device call carries at most 64 MiB in
at most 8 files of 16 MiB). A packed run holds the store (a consistent SQLite snapshot, WAL included), every
trial's records (spec, train.json, evaluations, steps.log, logs) and as many in-flight checkpoints as fit,
newest first; `resume` on the other machine continues it. Left out by default: adapters of finished trials
(their evaluations are stored; nothing later reads them) and checkpoints that do not fit, which are named, so
those trials restart from their start; nothing finished is ever lost.
"""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

STORE = "run.sqlite"
_SKIP_SUFFIXES = (".lock", ".tmp", ".partial", "-wal", "-shm")


@dataclass
class PackReport:
    parts: list[Path]
    bytes: int
    kept_checkpoints: list[str] = field(default_factory=list)
    dropped_checkpoints: list[str] = field(default_factory=list)
    dropped_adapters: int = 0


def _trial_done(trial_dir: Path) -> bool:
    try:
        return json.loads((trial_dir / "train.json").read_text()).get("state") in ("done", "failed")
    except (OSError, ValueError):
        return False


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def pack(run_dir: Path, out_dir: Path, budget_mb: float = 60.0, part_mb: float = 15.0, max_parts: int = 8,
         with_adapters: bool = False) -> PackReport:
    """Write `<name>.rspack.NN` parts of at most `part_mb` MiB into `out_dir`; refuse rather than exceed."""
    run_dir = Path(run_dir)
    if not (run_dir / STORE).is_file():
        raise ValueError(f"{str(run_dir)!r} is not a run directory (no {STORE})")
    if part_mb * max_parts < budget_mb:
        budget_mb = part_mb * max_parts
    budget = int(budget_mb * 2**20)
    report = PackReport(parts=[], bytes=0)
    with tempfile.TemporaryDirectory() as tmp:
        snap = Path(tmp) / STORE
        # The backup API copies a consistent state even while a driver writes (the WAL is folded in).
        src = sqlite3.connect(run_dir / STORE)
        dst = sqlite3.connect(snap)
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        files: list[tuple[Path, str]] = [(snap, STORE)]
        checkpoints: list[tuple[float, Path]] = []
        for f in sorted(run_dir.rglob("*")):
            rel = f.relative_to(run_dir)
            if not f.is_file() or rel.parts[0].startswith(STORE) or f.name.endswith(_SKIP_SUFFIXES):
                continue
            if "__pycache__" in rel.parts:
                continue
            if len(rel.parts) > 2 and rel.parts[0] == "trials":
                trial = run_dir / rel.parts[0] / rel.parts[1]
                if rel.parts[2] == "hf":          # checkpoints: chosen below, whole or not at all
                    continue
                if rel.parts[2] == "adapter" and not with_adapters and _trial_done(trial):
                    continue
                if rel.parts[2].startswith("lost-") and len(rel.parts) > 3 and rel.parts[3] in ("adapter", "hf"):
                    continue   # withdrawn results (`search/finals.py`): their logs travel, their NaN weights not
            files.append((f, str(rel)))
        report.dropped_adapters = sum(
            1 for t in (run_dir / "trials").glob("*") if (t / "adapter").is_dir() and _trial_done(t)
        ) if not with_adapters else 0
        for t in sorted((run_dir / "trials").glob("*")):
            # an empty hf/ (no checkpoint written yet) is not a checkpoint to report as kept
            if (t / "hf").is_dir() and any((t / "hf").glob("checkpoint-*")) and not _trial_done(t):
                checkpoints.append(((t / "hf").stat().st_mtime, t))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
            for f, arc in files:
                tar.add(f, arcname=arc)
            for _, t in sorted(checkpoints, reverse=True):
                # Checked against the compressed size so far: checkpoints barely compress, so their raw size
                # is what they will add.
                if buf.tell() + _size(t / "hf") <= budget:
                    tar.add(t / "hf", arcname=str((t / "hf").relative_to(run_dir)))
                    report.kept_checkpoints.append(t.name)
                else:
                    report.dropped_checkpoints.append(t.name)
        data = buf.getvalue()
    if len(data) > budget:
        raise ValueError(
            f"run {str(run_dir)!r} packs to {len(data) / 2**20:.1f} MiB, over the {budget_mb:.0f} MiB budget; "
            "pack on a larger budget (--budget-mb) or move the directory as it is"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = int(part_mb * 2**20)
    chunks = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    for old in out_dir.glob(f"{run_dir.name}.rspack.*"):
        old.unlink()
    for i, chunk in enumerate(chunks):
        part = out_dir / f"{run_dir.name}.rspack.{i:02d}-of-{len(chunks):02d}"
        part.write_bytes(chunk)
        report.parts.append(part)
    report.bytes = len(data)
    return report


def unpack(parts: list[Path], run_dir: Path) -> Path:
    """Rebuild a packed run in `run_dir` (which must not hold a run already): parts in order, all present."""
    parts = sorted(Path(p) for p in parts)
    if not parts:
        raise ValueError("no pack parts given")
    try:
        total = int(parts[0].name.rsplit("-of-", 1)[1])
    except (IndexError, ValueError):
        raise ValueError(f"{parts[0].name!r} is not a pack part (expected NAME.rspack.NN-of-MM)") from None
    if len(parts) != total:
        raise ValueError(f"{len(parts)} of {total} pack parts given; all are needed, in any order")
    run_dir = Path(run_dir)
    if (run_dir / STORE).exists():
        raise ValueError(f"{str(run_dir)!r} already holds a run; unpack into a new directory")
    data = b"".join(p.read_bytes() for p in parts)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(run_dir, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(f"the pack parts are corrupt or incomplete ({type(exc).__name__}: {exc})") from None
    return run_dir
