"""Which folders had a file change since the last look: Linux inotify, read without blocking.

Why: the watch pass must notice a tool rewriting one of a thousand place files, every few
seconds, for days. Stat-ing every file each pass costs a thousand system calls a pass; the
kernel can instead tell which folders saw a write, a rename or a delete, and the pass looks
only at those. Where inotify is missing (macOS, a container without it, a watch limit reached)
`touched` says it cannot tell (None) and the caller stats every file, as before. Network file
systems may not report changes made on another machine, so the caller still looks at every
file now and then (`place_sync.FULL_LOOK_EVERY`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import struct
import sys
from collections.abc import Set as AbstractSet

log = logging.getLogger("kiro_tui.places")

_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE = 0x002, 0x004, 0x008
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x040, 0x080, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF = 0x400, 0x800
_IN_Q_OVERFLOW, _IN_IGNORED, _IN_ONLYDIR = 0x4000, 0x8000, 0x01000000
_MASK = (_IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
         | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "inotify_init1") and hasattr(libc, "inotify_add_watch") else None


class FolderEvents:
    """An inotify instance watching folders. `touched()` drains what happened since the last
    call: the folders that saw a change, or None when it cannot tell (not available, the
    kernel's queue overflowed, a watched folder went away): then look at everything."""

    def __init__(self) -> None:
        self._libc = _libc()
        self._fd = -1
        if self._libc is not None:
            fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
            if fd < 0:
                log.info("inotify is not available (%s): place files are looked at every pass",
                         os.strerror(ctypes.get_errno()))
            self._fd = fd
        self._folders: dict[int, str] = {}  # watch descriptor -> folder
        self._watched: dict[str, int] = {}
        self._refused: set[str] = set()
        self._lost = False
        self._full = False

    @property
    def working(self) -> bool:
        return self._fd >= 0

    def watching(self, folder: str) -> bool:
        """`folder` is watched already: a change there since would be told by `touched`."""
        return folder in self._watched

    def watching_all(self, folders: AbstractSet[str]) -> bool:
        """Every one of `folders` is watched (one set operation, for a pass that changed nothing)."""
        return folders <= self._watched.keys()

    def watches(self, folder: str) -> bool:
        """Watch `folder` (once); False when it cannot be watched (its files must be stat-ed)."""
        if folder in self._watched:
            return True
        if not self.working or folder in self._refused:
            return False
        assert self._libc is not None
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), _MASK)
        if wd < 0:
            code = ctypes.get_errno()
            if code == errno.ENOSPC and not self._full:  # said once: it is tried again every pass
                self._full = True
                log.info("inotify watch limit reached (fs.inotify.max_user_watches): %s and folders past "
                         "the limit are looked at every pass", folder)
            self._refused.add(folder)  # missing, unreadable or over the limit: stat its files
            return False
        self._folders[wd] = folder
        self._watched[folder] = wd
        return True

    def touched(self) -> set[str] | None:
        """The watched folders that saw a change since the last call, or None: cannot tell."""
        if not self.working:
            return None
        found: set[str] = set()
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                break
            except OSError as exc:
                log.info("reading inotify events failed (%s): looking at every place file", exc)
                self._lost = True
                break
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _, size = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + size
                if mask & _IN_Q_OVERFLOW:
                    self._lost = True
                folder = self._folders.get(wd)
                if mask & (_IN_IGNORED | _IN_DELETE_SELF | _IN_MOVE_SELF):
                    self._forget(wd)  # the folder went away or moved: watch it again when it is back
                    self._lost = True
                elif folder is not None:
                    found.add(folder)
        self._refused.clear()  # a folder that was missing may be there now
        if self._lost:
            self._lost = False
            return None
        return found

    def _forget(self, wd: int) -> None:
        folder = self._folders.pop(wd, None)
        if folder is not None:
            self._watched.pop(folder, None)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._folders.clear()
        self._watched.clear()
