"""What the JSON file formats (Kiro IDE, CLIProxyAPI, AIClient-2-API, kiro-gateway) share.

Each holds one login per file. A subclass says how its tool spells and shapes a login
(`parse`, `stamp`, `new_document`, and `token_values` when it owns more than the token);
reading, compare-and-swap writing and creating a file are the same for all of them and live here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Account, AuthMethod
from kiro_tui.core.places._fields import BadField, Fields, Spelling
from kiro_tui.core.places._files import (
    PRIVATE_FILE_MODE,
    JsonDoc,
    PlaceLocked,
    PlaceMissing,
    UnsafeToWrite,
    absolute,
    atomic_write,
    is_folder,
    is_present,
    json_type,
    locked_json,
    prepare_folder,
    read_json,
    wants_folder,
)
from kiro_tui.core.places.base import (
    Created,
    PlaceChanged,
    PlaceError,
    PlaceLogin,
    PlaceSnapshot,
    TokenCopy,
    WriteOutcome,
    WriteResult,
    inode_mtime_size,
)
from kiro_tui.core.timefmt import EARLIEST


class JsonFilePlace:
    kind: str
    title: str
    what: str
    """The file in a person's words, for messages: "Kiro IDE token file"."""
    native: Spelling = "camel"
    writable = True
    is_database = False
    rereads_before_refresh: float | None = None
    finding = ""
    supports: tuple[AuthMethod, ...] = (AuthMethod.SOCIAL, AuthMethod.BUILDER_ID, AuthMethod.IDC)
    """The logins its tool can refresh, so the ones `create` writes a file for."""
    indent: int | None = 2
    sort_keys = False

    # -- what a format says about its tool ----------------------------------------------------

    def default_paths(self) -> list[Path]:
        return []

    def files_in(self, folder: Path) -> list[Path]:
        """The place files in a folder the user named."""
        return []

    def parse(self, doc: JsonDoc, now: datetime) -> PlaceLogin:
        """The login in a JSON object of this format; raises BadField naming a field it cannot use."""
        raise NotImplementedError

    def stamp(self, when: datetime) -> str:
        """A time in this tool's own format (`_fields.js_iso`, `go_rfc3339`, `python_iso`)."""
        raise NotImplementedError

    def token_values(self, copy: TokenCopy) -> dict[str, object]:
        """The fields kiro-tui owns, in this tool's timestamp format, named in snake_case (each
        is written under every spelling the file already has, else the tool's own)."""
        values: dict[str, object] = {"access_token": copy.access_token, "refresh_token": copy.refresh_token,
                                     "expires_at": self.stamp(copy.expires_at)}
        if copy.profile_arn:
            values["profile_arn"] = copy.profile_arn
        return values

    def new_document(self, account: Account) -> dict[str, object]:
        """A brand-new file for `account`, shaped and ordered as the tool writes its own (a
        field that is None is left out)."""
        raise NotImplementedError

    def file_name(self, account: Account) -> str:
        """The name `create` gives a new file in a folder the user named."""
        raise NotImplementedError

    def refuse_write(self, path: Path) -> str | None:
        """Why this file must not be written as it stands, if so."""
        return None

    def caveat(self, account: Account) -> str | None:
        """What the tool cannot do with this login by itself, for a person linking or exporting it."""
        return None

    def rewritten(self, doc: JsonDoc, values: dict[str, object]) -> bytes:
        """The file with these members set, every other byte kept."""
        return doc.with_values(values)

    def rewrite_mode(self, doc: JsonDoc) -> int:
        """The mode a rewritten file gets: private, whatever it was (a token file others can read
        is a leak; the write says so when it was wider)."""
        return PRIVATE_FILE_MODE

    # -- the same for every JSON format --------------------------------------------------------

    def discover(self, path: Path) -> list[Path]:
        path = absolute(path)
        if is_folder(path):
            return self.files_in(path)
        return [path] if is_present(path) else []

    def load(self, path: Path) -> JsonDoc:
        doc = read_json(path, self.what)
        self.check_shape(doc)
        return doc

    def check_shape(self, doc: JsonDoc) -> None:
        if not isinstance(doc.data, dict):
            raise PlaceError(f"{doc.path} holds a JSON {json_type(doc.data)}, not the object every {self.what} "
                             "holds; check that this is the right file")

    def scan(self, path: Path, now: datetime) -> PlaceSnapshot:
        path = absolute(path)
        doc = self.load(path)
        try:
            login = self.parse(doc, now)
        except BadField as exc:
            return PlaceSnapshot(self.kind, path, [], [("", str(exc))])
        return PlaceSnapshot(self.kind, path, [login], [])

    def read_entry(self, path: Path, entry: str, now: datetime, busy_timeout: float = 1.0) -> PlaceLogin | None:
        """The file's one login (`entry` is "" for these formats)."""
        path = absolute(path)
        try:
            doc = self.load(path)
        except PlaceMissing:
            return None
        try:
            return self.parse(doc, now)
        except BadField as exc:
            raise PlaceError(f"{self.what} {path}: {exc}; let its tool write it again") from exc

    def write_token(self, path: Path, entry: str, copy: TokenCopy, belongs: Callable[[str | None], bool],
                    timeout: float) -> WriteResult:
        """Compare-and-swap under the file's lock; only the owned fields change. Never through
        a symbolic link, never into a folder others can write; the file is 0600 afterwards
        (the detail says so when it was wider)."""
        path = absolute(path)
        refusal = self.refuse_write(path)
        if refusal:
            return WriteResult(WriteOutcome.FAILED, refusal)
        widened = ""
        try:
            with locked_json(path, self.what, timeout) as doc:
                self.check_shape(doc)
                fields = Fields(doc.mapping, self.native)
                held = fields.refresh_fingerprint()
                if held is not None and held == fingerprint(copy.refresh_token):
                    found = _expiry(fields)
                    if found >= copy.expires_at:
                        # The file as read under the lock holds this token: its signature is
                        # told only when that is all it holds (a later expiry is a newer access
                        # token its tool got by itself, for the next refresh to take).
                        return WriteResult(WriteOutcome.UNCHANGED, written=(
                            (inode_mtime_size(doc.st),) if found == copy.expires_at
                            else None))
                    # Our own refresh token with an older access token (a refresh that did not
                    # rotate it): bring the rest up to date.
                elif not belongs(held):
                    return WriteResult(WriteOutcome.OTHER,
                                       f"{self.what} {path} holds a refresh token kiro-tui may not replace "
                                       "(another login, one refreshed by its tool, or an older one of this "
                                       "login that kiro-tui already replaced there)")
                values: dict[str, object] = {}
                for name, value in self.token_values(copy).items():
                    for key in fields.present(name) or fields.keys_for(name)[:1]:
                        values[key] = value
                written = atomic_write(path, self.rewritten(doc, values), self.rewrite_mode(doc),
                                       owner=(doc.st.st_uid, doc.st.st_gid))
                if doc.mode & ~PRIVATE_FILE_MODE:
                    widened = f"{path} was mode {doc.mode:04o}, readable by others; it is 0600 now"
        except UnsafeToWrite as exc:
            return WriteResult(WriteOutcome.REFUSED, str(exc))
        except PlaceMissing as exc:
            return WriteResult(WriteOutcome.MISSING, str(exc))
        except PlaceLocked as exc:
            return WriteResult(WriteOutcome.LOCKED, f"{exc} for {timeout:g} s")
        except PlaceError as exc:
            return WriteResult(WriteOutcome.FAILED, str(exc))
        except OSError as exc:
            return WriteResult(WriteOutcome.FAILED, f"cannot write {self.what} {path}: {exc.strerror or exc}")
        return WriteResult(WriteOutcome.WRITTEN, widened, (written,))

    def create(self, path: Path, account: Account, held: frozenset[str] | None = None) -> Created:
        """Write a new file for `account` (mode 0600) at `path`, or in it if it is a folder.
        Never overwrites: an existing file is linked, not created. With `held` (`replace_login`)
        the file there is replaced, while it still holds those refresh tokens."""
        self.check_account(account)
        target = self.target(absolute(path), account)
        if held is None:
            self.check_target(target)
        elif refusal := self.refuse_write(target):
            raise PlaceError(refusal)
        prepare_folder(target.parent)
        document = {key: value for key, value in self.new_document(account).items() if value is not None}
        if held is None or (not held and not os.path.lexists(target)):
            atomic_write(target, self.serialize(document), 0o600, exclusive=True)
        else:
            self._swap(target, self.serialize(document), held)
        return Created(target, "")

    def replace_login(self, path: Path, account: Account, held: frozenset[str]) -> Created:
        return self.create(path, account, held)

    def _swap(self, path: Path, data: bytes, held: frozenset[str], timeout: float = 2.0) -> None:
        """Replace the whole file (its mode and owner kept) under its lock, while it holds `held`."""
        try:
            with locked_json(path, self.what, timeout) as doc:
                self.check_shape(doc)
                found = Fields(doc.mapping, self.native).refresh_fingerprint()
                if frozenset({found} - {None}) != held:
                    raise PlaceChanged(path)
                atomic_write(path, data, doc.mode, owner=(doc.st.st_uid, doc.st.st_gid))
        except PlaceMissing:
            raise PlaceChanged(path) from None

    def target(self, path: Path, account: Account) -> Path:
        """The file to create: `path`, or a new file in it when it is a folder (or names one
        to be made: no suffix)."""
        return path / self.file_name(account) if wants_folder(path) else path

    def check_account(self, account: Account) -> None:
        if account.auth_method not in self.supports:
            raise PlaceError(f"{self.title} cannot refresh {account.auth_method.label} logins, so kiro-tui does "
                             f"not write one there; link {account.name} to kiro-cli or kiro-gateway instead")
        if not account.refresh_token:
            raise PlaceError(f"{account.name} has no refresh token to write; log in again first")
        if account.auth_method in (AuthMethod.BUILDER_ID, AuthMethod.IDC) and not (
                account.client_id and account.client_secret):
            raise PlaceError(f"{account.name} has no OIDC client registration to write; log in again first")

    def check_target(self, target: Path) -> None:
        if os.path.lexists(target):
            raise PlaceError(f"{target} already exists; kiro-tui does not overwrite it: link it instead")

    def serialize(self, document: dict[str, object]) -> bytes:
        """UTF-8 as the tools write it; a lone surrogate (never in a real token) becomes its
        JSON escape rather than an error."""
        text = json.dumps(document, indent=self.indent, sort_keys=self.sort_keys, ensure_ascii=False,
                          separators=None if self.indent else (",", ":"))
        return text.encode("utf-8", "backslashreplace")


def _expiry(fields: Fields) -> datetime:
    """The expiry the file holds beside its refresh token; the beginning of time if unusable."""
    try:
        when = fields.time("expires_at", first=fields.token_spelling)
    except BadField:
        when = None
    return when or EARLIEST
