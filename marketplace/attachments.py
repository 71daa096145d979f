"""Application attachments on disk: streamed with a byte cap, checked by extension and magic bytes."""
from __future__ import annotations

import codecs
import hashlib
import os
import secrets
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hub.errors import DomainError, N_

CHUNK = 64 * 1024
MAX_FILES = 5

# extension -> (content type sent on download, the check its bytes must pass)
OOXML = {".docx": "word/", ".xlsx": "xl/", ".pptx": "ppt/"}
CONTENT_TYPES = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".txt": "text/plain; charset=utf-8",
}
ALLOWED_LABEL = "PDF, Word (.docx), Excel (.xlsx), PowerPoint (.pptx), PNG, JPEG, TXT"


@dataclass
class Upload:
    """One file as the request delivered it: the name the user's computer gave it and its bytes."""

    filename: str
    stream: BinaryIO


@dataclass
class StoredFile:
    filename: str
    stored_name: str
    content_type: str
    size: int
    sha256: str


def clean_filename(name: str) -> str:
    """The last path component, without control characters, at most 255 characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().lstrip(".")
    if len(name) > 255:
        stem, ext = os.path.splitext(name)
        name = stem[: 255 - len(ext)] + ext
    return name


def extension_of(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _looks_like(path: Path, ext: str) -> bool:
    with path.open("rb") as fh:
        head = fh.read(16)
    if ext == ".pdf":
        return head.startswith(b"%PDF-")
    if ext == ".png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if ext in (".jpg", ".jpeg"):
        return head.startswith(b"\xff\xd8\xff")
    if ext in OOXML:
        if not head.startswith(b"PK\x03\x04"):
            return False
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return False
        return "[Content_Types].xml" in names and any(n.startswith(OOXML[ext]) for n in names)
    if ext == ".txt":
        return _is_text(path)
    return False


def _is_text(path: Path) -> bool:
    """UTF-8 or GB18030 (what Chinese Windows saves), and no NUL bytes (binary files have them)."""
    for encoding in ("utf-8-sig", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    if b"\x00" in chunk:
                        return False
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            return True
        except UnicodeDecodeError:
            continue
    return False


class AttachmentStore:
    """Files under DATA_DIR/attachments, each under a random name; the database keeps the rest."""

    def __init__(self, data_dir: str | os.PathLike[str], max_bytes: int) -> None:
        self.root = Path(data_dir) / "attachments"
        self.max_bytes = max_bytes

    def check_name(self, filename: str) -> tuple[str, str]:
        """The cleaned name and its extension, or a DomainError before a byte is read."""
        name = clean_filename(filename)
        if not name:
            raise DomainError(N_("A file has no name."), field="attachments")
        ext = extension_of(name)
        if ext not in CONTENT_TYPES:
            raise DomainError(N_("%(name)s: this file type is not accepted. Accepted: %(types)s."),
                              field="attachments", name=name, types=ALLOWED_LABEL)
        return name, ext

    def save(self, upload: Upload) -> StoredFile:
        name, ext = self.check_name(upload.filename)
        self.root.mkdir(parents=True, exist_ok=True)
        stored_name = secrets.token_hex(16) + ext
        partial = self.root / (stored_name + ".part")
        digest = hashlib.sha256()
        size = 0
        try:
            with partial.open("xb") as out:
                while chunk := upload.stream.read(CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise DomainError(N_("%(name)s is larger than %(mb)s MB."), field="attachments", name=name,
                                          mb=_mb(self.max_bytes))
                    digest.update(chunk)
                    out.write(chunk)
            if size == 0:
                raise DomainError(N_("%(name)s is empty."), field="attachments", name=name)
            if not _looks_like(partial, ext):
                raise DomainError(N_("%(name)s is not really a %(ext)s file."), field="attachments", name=name,
                                  ext=ext.lstrip(".").upper())
            partial.rename(self.root / stored_name)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return StoredFile(filename=name, stored_name=stored_name, content_type=CONTENT_TYPES[ext], size=size,
                          sha256=digest.hexdigest())

    def path(self, stored_name: str) -> Path:
        # Stored names are ours (hex + extension), but never trust a value read back from storage.
        if "/" in stored_name or "\\" in stored_name or stored_name.startswith("."):
            raise ValueError("bad stored name")
        return self.root / stored_name

    def discard(self, stored_name: str) -> None:
        self.path(stored_name).unlink(missing_ok=True)


def _mb(n: int) -> str:
    value = n / (1024 * 1024)
    return f"{value:.0f}" if value >= 1 else f"{value:.2f}"
