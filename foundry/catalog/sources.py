"""Readers that turn a submitted catalog into candidate rows, one per image.

Three layouts are understood: a generic manifest (CSV or JSONL) beside a folder or zip of
images, the OpenMoji package (``data/openmoji.json`` + ``color/svg``, as a tarball or a
folder), and a bare folder or zip whose images carry their rights embedded (XMP/IPTC).
Readers never extract archives to disk, follow no symbolic links and resolve every manifest
path inside its root, so a hostile manifest or archive cannot read or write outside what was
submitted. A member that cannot be read (corrupt, encrypted, a link, a compressed SVG) becomes
a row rejected with a code; only an archive that cannot be opened at all is fatal.

``label`` / ``images_label`` name the submitted files in messages (the API passes the uploaded
file names, so no server path ever reaches a caller).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath

from foundry.errors import InvalidInput
from foundry.licensing.terms import ALL_USES, Use, parse_uses

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".tif", ".tiff", ".svg"}
# Listed so that they are reported, not silently skipped: compressed SVG is not accepted.
REFUSED_SUFFIXES = {".svgz"}
# What reading one archive member may raise when the member is damaged.
_MEMBER_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError,
                       ValueError)

Problem = tuple[str, str]
OPENMOJI_CREDIT = "OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0"
MANIFEST_REQUIRED_COLUMNS = {"path", "contributor", "license", "uses"}
_HEXCODE = re.compile(r"^[0-9A-F]{2,8}(-[0-9A-F]{2,8})*$")


@dataclass
class CandidateRow:
    """One image as the source describes it, before any verification."""

    row_number: int
    source_ref: str
    path: str | None = None
    data: bytes | None = None
    problem: tuple[str, str] | None = None
    contributor_name: str | None = None
    contributor_ref: str | None = None
    payout_identity: str | None = None
    license: str | None = None
    uses: frozenset[Use] | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    caption: str = ""
    tags: list[str] = field(default_factory=list)
    credit_line: str | None = None
    rights_from_file: bool = False


class ImageRoot:
    """Where a manifest's images live: a folder or a zip, read with size limits and no escapes."""

    def __init__(self, location: Path, max_bytes: int, label: str | None = None):
        self.location = location
        self.label = label or str(location)
        self.max_bytes = max_bytes
        self._zip: zipfile.ZipFile | None = None
        self._zip_members: dict[str, zipfile.ZipInfo] = {}
        if location.is_file():
            if not zipfile.is_zipfile(location):
                raise InvalidInput(f"{self.label} is neither a folder nor a zip archive", code="images_root_invalid")
            try:
                self._zip = zipfile.ZipFile(location)
                self._zip_members = {info.filename: info for info in self._zip.infolist() if not info.is_dir()}
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
                raise InvalidInput(f"{self.label} is not a readable zip archive: {exc}", code="archive_corrupt") from None
        elif not location.is_dir():
            raise InvalidInput(f"images folder {self.label} does not exist", code="images_root_missing")
        else:
            self._resolved = location.resolve()

    def entries(self) -> list[tuple[str, Problem | None]]:
        """Every image-like path under the root, each with the problem that refuses it (or None).

        Symbolic links (to files or folders) and compressed SVGs are listed with their problem
        rather than skipped, so the import report accounts for them.
        """
        found = self._zip_entries() if self._zip is not None else self._folder_entries()
        return sorted(found)

    def _zip_entries(self) -> list[tuple[str, Problem | None]]:
        found = []
        for name, info in self._zip_members.items():
            suffix = PurePosixPath(name).suffix.lower()
            if stat.S_ISLNK(info.external_attr >> 16):
                found.append((name, _symlink_problem(name)))
            elif suffix in REFUSED_SUFFIXES:
                found.append((name, _svgz_problem(name)))
            elif suffix in IMAGE_SUFFIXES:
                found.append((name, None))
        return found

    def _folder_entries(self) -> list[tuple[str, Problem | None]]:
        found = []
        for directory, folders, files in os.walk(self.location):  # os.walk never descends into links
            base = Path(directory)
            for name in folders:
                if (base / name).is_symlink():
                    relative = (base / name).relative_to(self.location).as_posix()
                    found.append((relative, _symlink_problem(relative, folder=True)))
            for name in files:
                path = base / name
                relative = path.relative_to(self.location).as_posix()
                suffix = path.suffix.lower()
                if suffix not in IMAGE_SUFFIXES | REFUSED_SUFFIXES:
                    continue
                if path.is_symlink():
                    found.append((relative, _symlink_problem(relative)))
                elif suffix in REFUSED_SUFFIXES:
                    found.append((relative, _svgz_problem(relative)))
                else:
                    found.append((relative, None))
        return found

    def read(self, relative: str) -> tuple[bytes | None, Problem | None]:
        """The bytes at ``relative``, or a (code, message) problem. Never raises for bad paths or members."""
        clean = safe_relative_path(relative)
        if clean is None:
            return None, ("path_traversal", f"path {relative!r} is absolute or leaves the images root")
        if self._zip is not None:
            info = self._zip_members.get(clean)
            if info is None:
                return None, ("file_missing", f"{clean} is not in the archive")
            if info.file_size > self.max_bytes:
                return None, ("file_too_large", f"{info.file_size} bytes exceeds the limit of {self.max_bytes}")
            if stat.S_ISLNK(info.external_attr >> 16):
                return None, _symlink_problem(clean)
            if info.flag_bits & 0x1:
                return None, ("archive_member_encrypted", f"{clean} is encrypted in the archive; submit it unencrypted")
            try:
                with self._zip.open(info) as handle:
                    data = handle.read(self.max_bytes + 1)
            except _MEMBER_READ_ERRORS as exc:
                return None, ("archive_member_corrupt", f"{clean} cannot be read from the archive: {exc}")
        else:
            candidate = (self.location / clean).resolve()
            if not candidate.is_relative_to(self._resolved):
                return None, ("path_traversal", f"path {relative!r} resolves outside the images root")
            if not candidate.is_file():
                return None, ("file_missing", f"{clean} does not exist")
            if candidate.stat().st_size > self.max_bytes:
                return None, ("file_too_large", f"{candidate.stat().st_size} bytes exceeds the limit of {self.max_bytes}")
            data = candidate.read_bytes()
        if len(data) > self.max_bytes:
            return None, ("file_too_large", f"more than {self.max_bytes} bytes")
        return data, None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _symlink_problem(relative: str, *, folder: bool = False) -> Problem:
    what = "a folder" if folder else "a file"
    return "symlink_not_followed", f"{relative} is a symbolic link to {what}; links are not followed"


def _svgz_problem(relative: str) -> Problem:
    return "unsupported_format", f"{relative} is a compressed SVG (.svgz), which is not accepted; submit the .svg"


def safe_relative_path(raw: str) -> str | None:
    """A normalised POSIX path inside its root, or None for absolute paths and ``..`` escapes."""
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        return None
    text = raw.strip().replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        return None
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if not parts or any(part == ".." for part in parts):
        return None
    return "/".join(parts)


def _parse_datetime(value: object, column: str) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{column} must be an ISO 8601 date or datetime")  # noqa: TRY004 - a row problem
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{column} {value!r} is not an ISO 8601 date or datetime") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_tags(value: object) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return [str(tag).strip() for tag in value if str(tag).strip()]
    if isinstance(value, str):
        return [tag.strip() for tag in re.split(r"[;,|]", value) if tag.strip()]
    raise ValueError("tags must be text or a list")


def _openmoji_label_tags(entry: dict, hexcode: str) -> list[str]:
    """The package's classification as namespaced tags: ``group:``, ``subgroup:`` and ``family:``.

    ``family`` names the emoji a skin-tone variant was drawn from (itself otherwise), so a
    held-out split can keep every variant of one drawing on the same side.
    """
    labels = []
    for key, prefix in (("group", "group"), ("subgroups", "subgroup")):
        value = _text(entry.get(key), key)
        if value:
            labels.append(f"{prefix}:{value}")
    base = _text(entry.get("skintone_base_hexcode"), "skintone_base_hexcode")
    labels.append(f"family:{base if base and _HEXCODE.match(base) else hexcode}")
    return labels


def _text(value: object, column: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, int, float)):
        raise ValueError(f"{column} must be text")  # noqa: TRY004 - a row problem, reported as such
    text = str(value).strip()
    return text or None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class CatalogSource(ABC):
    """A submitted catalog: knows its format, how many rows it has, and how to read them."""

    format: str
    description: str

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def rows(self) -> Iterator[CandidateRow]: ...

    def fingerprint(self) -> str | None:
        return None

    def close(self) -> None:
        """Release open archives."""


class ManifestSource(CatalogSource):
    format = "manifest"

    def __init__(self, manifest: Path, images: Path | None, max_bytes: int, *, label: str | None = None,
                 images_label: str | None = None):
        self.description = label or str(manifest)
        if not manifest.is_file():
            raise InvalidInput(f"manifest {self.description} does not exist", code="manifest_missing")
        self.manifest = manifest
        self.root = ImageRoot(images if images is not None else manifest.parent, max_bytes, images_label)
        self._records = self._load_records()

    def _load_records(self) -> list[tuple[int, dict | None, str | None]]:
        raw = self.manifest.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("the manifest is not UTF-8 text", code="manifest_malformed") from None
        if not text.strip():
            raise InvalidInput("the manifest has no rows", code="manifest_malformed")
        if self.manifest.suffix.lower() in (".jsonl", ".ndjson") or text.lstrip().startswith("{"):
            return self._jsonl_records(text)
        return self._csv_records(text)

    @staticmethod
    def _jsonl_records(text: str) -> list[tuple[int, dict | None, str | None]]:
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                records.append((number, None, f"line {number} is not valid JSON: {exc.msg}"))
                continue
            if not isinstance(record, dict):
                records.append((number, None, f"line {number} is not a JSON object"))
                continue
            records.append((number, record, None))
        if not records:
            raise InvalidInput("the manifest has no rows", code="manifest_malformed")
        return records

    @staticmethod
    def _csv_records(text: str) -> list[tuple[int, dict | None, str | None]]:
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
            header = reader.fieldnames or []
            missing = MANIFEST_REQUIRED_COLUMNS - {h.strip().lower() for h in header}
            if missing:
                raise InvalidInput(
                    f"the manifest lacks required columns: {', '.join(sorted(missing))}",
                    code="manifest_malformed",
                )
            records = []
            for record in reader:
                number = reader.line_num
                if None in record:
                    records.append((number, None, f"line {number} has more cells than the header"))
                    continue
                records.append((number, {k.strip().lower(): v for k, v in record.items()}, None))
        except csv.Error as exc:
            raise InvalidInput(f"the manifest is not valid CSV: {exc}", code="manifest_malformed") from None
        if not records:
            raise InvalidInput("the manifest has no rows", code="manifest_malformed")
        return records

    def count(self) -> int:
        return len(self._records)

    def fingerprint(self) -> str | None:
        return file_sha256(self.manifest)

    def rows(self) -> Iterator[CandidateRow]:
        for number, record, problem in self._records:
            if record is None:
                yield CandidateRow(row_number=number, source_ref=f"manifest:line:{number}",
                                   problem=("row_malformed", problem or "unreadable row"))
                continue
            yield self._row(number, record)

    def _row(self, number: int, record: dict) -> CandidateRow:
        path = record.get("path")
        row = CandidateRow(row_number=number, source_ref=f"manifest:{path}", path=str(path) if path else None)
        try:
            row.contributor_name = _text(record.get("contributor"), "contributor")
            row.contributor_ref = _text(record.get("contributor_ref"), "contributor_ref")
            row.payout_identity = _text(record.get("payout_identity"), "payout_identity")
            row.license = _text(record.get("license"), "license")
            uses = record.get("uses")
            row.uses = parse_uses(uses) if uses not in (None, "") else frozenset()
            row.valid_from = _parse_datetime(record.get("valid_from"), "valid_from")
            row.valid_until = _parse_datetime(record.get("valid_until"), "valid_until")
            row.caption = _text(record.get("caption"), "caption") or ""
            row.tags = _parse_tags(record.get("tags"))
            row.credit_line = _text(record.get("credit_line"), "credit_line")
        except ValueError as exc:
            row.problem = ("row_malformed", str(exc))
            return row
        if not isinstance(path, str) or not path.strip():
            row.problem = ("row_malformed", "the row has no image path")
            return row
        row.data, row.problem = self.root.read(path)
        return row

    def close(self) -> None:
        self.root.close()


class EmbeddedRightsSource(CatalogSource):
    """A folder or zip of images whose creator and license are read from the files themselves."""

    format = "embedded"

    def __init__(self, images: Path, max_bytes: int, *, label: str | None = None):
        self.root = ImageRoot(images, max_bytes, label)
        self.description = self.root.label
        self._entries = self.root.entries()
        if not self._entries:
            raise InvalidInput(f"no images found in {self.root.label}", code="source_empty")

    def count(self) -> int:
        return len(self._entries)

    def rows(self) -> Iterator[CandidateRow]:
        for number, (path, problem) in enumerate(self._entries, start=1):
            data = None
            if problem is None:
                data, problem = self.root.read(path)
            yield CandidateRow(row_number=number, source_ref=f"embedded:{path}", path=path, data=data,
                               problem=problem, rights_from_file=True)

    def close(self) -> None:
        self.root.close()


class OpenMojiSource(CatalogSource):
    """The OpenMoji npm package: one row per ``openmoji.json`` entry, its colour SVG as the image."""

    format = "openmoji"

    def __init__(self, location: Path, max_bytes: int, *, label: str | None = None):
        self.location = location
        self.description = label or str(location)
        self.max_bytes = max_bytes
        self._problems: dict[str, Problem] = {}
        if location.is_file():
            self._members = self._read_tarball(location)
        elif location.is_dir():
            self._members = self._read_folder(location)
        else:
            raise InvalidInput(f"{self.description} does not exist", code="source_missing")
        metadata = self._members.pop("data/openmoji.json", None)
        if metadata is None:
            raise InvalidInput(f"{self.description} has no data/openmoji.json", code="manifest_missing")
        try:
            entries = json.loads(metadata)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"data/openmoji.json is not valid JSON: {exc}", code="manifest_malformed") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise InvalidInput("data/openmoji.json is not a list of objects", code="manifest_malformed")
        self._entries = entries

    def _wanted(self, name: str) -> str | None:
        parts = PurePosixPath(name).parts
        if parts and parts[0] == "package":
            parts = parts[1:]
        relative = "/".join(parts)
        if relative == "data/openmoji.json" or (relative.startswith("color/svg/") and relative.endswith(".svg")):
            return relative
        return None

    def _read_tarball(self, path: Path) -> dict[str, bytes]:
        members: dict[str, bytes] = {}
        try:
            with tarfile.open(path, mode="r:*") as archive:
                for member in archive:
                    relative = self._wanted(member.name)
                    if relative is None:
                        continue
                    if member.issym() or member.islnk():
                        self._problems[relative] = _symlink_problem(relative)
                        continue
                    if not member.isfile():
                        continue
                    if member.size > self.max_bytes:
                        members[relative] = b""
                        continue
                    handle = archive.extractfile(member)
                    members[relative] = handle.read() if handle else b""
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise InvalidInput(f"{self.description} is not a readable tar archive: {reason}",
                               code="archive_corrupt") from None
        return members

    def _read_folder(self, folder: Path) -> dict[str, bytes]:
        base = folder / "package" if (folder / "package" / "data" / "openmoji.json").is_file() else folder
        members: dict[str, bytes] = {}
        metadata = base / "data" / "openmoji.json"
        if metadata.is_file():
            members["data/openmoji.json"] = metadata.read_bytes()
        svg_folder = base / "color" / "svg"
        if svg_folder.is_dir():
            for svg in svg_folder.glob("*.svg"):
                relative = f"color/svg/{svg.name}"
                if svg.is_symlink():
                    self._problems[relative] = _symlink_problem(relative)
                elif svg.is_file():
                    members[relative] = svg.read_bytes() if svg.stat().st_size <= self.max_bytes else b""
        return members

    def count(self) -> int:
        return len(self._entries)

    def fingerprint(self) -> str | None:
        return file_sha256(self.location) if self.location.is_file() else None

    def rows(self) -> Iterator[CandidateRow]:
        for number, entry in enumerate(self._entries, start=1):
            yield self._row(number, entry)

    def _row(self, number: int, entry: dict) -> CandidateRow:
        hexcode = str(entry.get("hexcode") or "")
        row = CandidateRow(row_number=number, source_ref=f"openmoji:{hexcode}")
        if not _HEXCODE.match(hexcode):
            row.problem = ("row_malformed", f"hexcode {hexcode!r} is not a code point sequence")
            return row
        row.path = f"color/svg/{hexcode}.svg"
        author = _text(entry.get("openmoji_author"), "openmoji_author")
        row.contributor_name = author
        row.contributor_ref = f"openmoji:{author}" if author else None
        row.license = "CC-BY-SA-4.0"
        row.uses = ALL_USES
        row.credit_line = OPENMOJI_CREDIT
        published = entry.get("openmoji_date")
        try:
            row.valid_from = datetime.combine(date.fromisoformat(published), datetime.min.time(), UTC) if published else None
        except (TypeError, ValueError):
            row.valid_from = None
        row.caption = _text(entry.get("annotation"), "annotation") or ""
        tags = _parse_tags(entry.get("tags")) + _parse_tags(entry.get("openmoji_tags"))
        row.tags = list(dict.fromkeys(tags)) + _openmoji_label_tags(entry, hexcode)
        data = self._members.get(row.path)
        if row.path in self._problems:
            row.problem = self._problems[row.path]
        elif data is None:
            row.problem = ("file_missing", f"{row.path} is not in the package")
        elif not data:
            row.problem = ("file_too_large", f"{row.path} exceeds the limit of {self.max_bytes} bytes")
        else:
            row.data = data
        return row


def detect_format(location: Path) -> str:
    """Guess the layout of ``location`` when the caller did not say."""
    if location.is_dir():
        if (location / "data" / "openmoji.json").is_file() or (location / "package" / "data" / "openmoji.json").is_file():
            return "openmoji"
        if any((location / name).is_file() for name in ("manifest.csv", "manifest.jsonl")):
            return "manifest"
        return "embedded"
    name = location.name.lower()
    if name.endswith((".tgz", ".tar.gz", ".tar")):
        return "openmoji"
    if name.endswith((".csv", ".jsonl", ".ndjson")):
        return "manifest"
    if name.endswith(".zip"):
        return "embedded"
    raise InvalidInput(f"cannot tell the format of {location}; pass --format", code="format_unknown")


def open_source(location: Path, *, source_format: str = "auto", images: Path | None = None,
                max_bytes: int, label: str | None = None, images_label: str | None = None) -> CatalogSource:
    """Open a submitted catalog; InvalidInput (with a code) when it cannot be read as a whole."""
    shown = label or str(location)
    if not location.exists():
        raise InvalidInput(f"{shown} does not exist", code="source_missing")
    chosen = detect_format(location) if source_format == "auto" else source_format
    if chosen == "openmoji":
        return OpenMojiSource(location, max_bytes, label=label)
    if chosen == "manifest":
        if location.is_dir():
            found = [location / n for n in ("manifest.csv", "manifest.jsonl") if (location / n).is_file()]
            if not found:
                raise InvalidInput(f"{shown} holds no manifest.csv or manifest.jsonl", code="manifest_missing")
            return ManifestSource(found[0], images or location, max_bytes, label=label, images_label=images_label)
        return ManifestSource(location, images, max_bytes, label=label, images_label=images_label)
    if chosen == "embedded":
        return EmbeddedRightsSource(location, max_bytes, label=label)
    raise InvalidInput(f"unknown catalog format {source_format!r} (auto, manifest, openmoji, embedded)",
                       code="format_unknown")
