"""Reads the evidence store: lines, cameras, and one camera's newest events with their object keys.

The key layout is line_contracts.evidence. An event id is `<topic>-<partition>-<offset>`, which says
nothing about time, so a camera's events are found by listing its newest capture days, reading the
`event.json` objects in order of write time (newest first; the worker writes within seconds of the
capture) until enough are read, and sorting those by capture time. Parsed events are cached by key and
ETag: a reload reads only objects that are new or were overwritten by a redelivery.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

from pydantic import ValidationError

from line_contracts.events import DefectEvent, Verdict
from line_contracts.evidence import EVENT_NAME, OVERLAY_NAME

# Objects the page may serve: a frame or an overlay inside one event's folder, nothing else of the bucket.
SERVABLE_KEY = re.compile(r"^[^/]+/[^/]+/\d{4}-\d{2}-\d{2}/[^/]+/(frame\.(png|jpg|raw)|overlay\.png)$")
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "raw": "application/octet-stream"}
READ_CHUNK = 32  # event.json objects read in parallel per step


class StoreError(RuntimeError):
    """The store could not be read; the message says what to check."""


@dataclass(frozen=True)
class EvidenceItem:
    """One judged frame in the store: its event and the keys of the objects that exist next to it."""

    event: DefectEvent
    frame_key: Optional[str]
    overlay_key: Optional[str]


@dataclass
class _Folder:
    names: set[str] = field(default_factory=set)
    event_modified: Any = None
    event_etag: str = ""


@dataclass(frozen=True)
class Page:
    """A slice of one camera's evidence, newest capture first."""

    items: list[EvidenceItem]
    has_more: bool


class EvidenceReader:
    """Reads one bucket through an injected boto3 S3 client (thread-safe: the page serves in threads)."""

    def __init__(self, client, bucket: str, max_days: int = 7, cache_events: int = 5000, threads: int = 8):
        self.client = client
        self.bucket = bucket
        self.max_days = max_days
        self.cache_events = cache_events
        self._cache: OrderedDict[tuple[str, str], Optional[DefectEvent]] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="evidence-read")

    def close(self) -> None:
        """Stop the reader threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- listing ---------------------------------------------------------------------------------
    def _folders(self, prefix: str) -> list[str]:
        """Names of the 'folders' directly under prefix (S3 common prefixes)."""
        names = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix,
                                                                      Delimiter="/")
        for page in pages:
            names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return [n for n in names if n]

    def lines(self) -> list[str]:
        """Line ids that have evidence, sorted."""
        return sorted(self._folders(""))

    def cameras(self, line: str) -> list[str]:
        """Camera ids of one line that have evidence, sorted."""
        return sorted(self._folders(_part(line, "line") + "/"))

    def _event_folders(self, day_prefix: str) -> dict[str, _Folder]:
        folders: dict[str, _Folder] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=day_prefix):
            for obj in page.get("Contents", []):
                folder, _, name = obj["Key"].rpartition("/")
                entry = folders.setdefault(folder + "/", _Folder())
                entry.names.add(name)
                if name == EVENT_NAME:
                    entry.event_modified, entry.event_etag = obj["LastModified"], obj.get("ETag", "")
        return folders

    # -- events ----------------------------------------------------------------------------------
    def _event(self, key: str, etag: str) -> Optional[DefectEvent]:
        """The parsed event.json (None when it is not a valid result event), cached by key and ETag."""
        with self._lock:
            if (key, etag) in self._cache:
                self._cache.move_to_end((key, etag))
                return self._cache[(key, etag)]
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        try:
            event = DefectEvent.model_validate_json(body)
        except ValidationError:
            event = None  # not written by a worker of this schema: shown nowhere, never fatal
        with self._lock:
            self._cache[(key, etag)] = event
            while len(self._cache) > self.cache_events:
                self._cache.popitem(last=False)
        return event

    def latest(self, line: str, camera: str, count: int, skip: int = 0, include_ok: bool = False) -> Page:
        """The camera's newest `count` defects (and sampled good frames if include_ok) after skipping `skip`."""
        prefix = f"{_part(line, 'line')}/{_part(camera, 'camera')}/"
        need = skip + count + 1  # one more tells whether a next page exists
        found: list[EvidenceItem] = []
        days = sorted(self._folders(prefix), reverse=True)[:self.max_days]
        for day in days:
            folders = self._event_folders(f"{prefix}{day}/")
            ordered = sorted(((p, f) for p, f in folders.items() if EVENT_NAME in f.names),
                             key=lambda pf: pf[1].event_modified, reverse=True)
            # One chunk past the point where enough were found: write order is close to, not exactly,
            # capture order (a redelivery rewrites an old frame's objects).
            extra_chunks = 1
            for start in range(0, len(ordered), READ_CHUNK):
                chunk = ordered[start:start + READ_CHUNK]
                events = self._pool.map(lambda pf: self._event(pf[0] + EVENT_NAME, pf[1].event_etag), chunk)
                for (folder_prefix, folder), event in zip(chunk, events):
                    if event is not None and (include_ok or event.verdict == Verdict.DEFECT):
                        found.append(_item(folder_prefix, folder, event))
                if len(found) >= need:
                    if extra_chunks == 0:
                        break
                    extra_chunks -= 1
            if len(found) >= need:
                break
        found.sort(key=lambda item: (item.event.frame.capture_time_ns, item.event.event_id), reverse=True)
        return Page(items=found[skip:skip + count], has_more=len(found) > skip + count)

    # -- objects ---------------------------------------------------------------------------------
    def read_object(self, key: str) -> tuple[bytes, str]:
        """(bytes, content type) of a frame or overlay; KeyError for any other key or a missing object."""
        match = SERVABLE_KEY.match(key)
        if not match:
            raise KeyError(key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise KeyError(key) from None
        return body, CONTENT_TYPES[key.rsplit(".", 1)[1]]


def _part(value: str, what: str) -> str:
    """A line or camera id used as one key part: never empty, never a path."""
    if not value or "/" in value:
        raise ValueError(f"{what} id {value!r} is not a single key part (empty or contains '/')")
    return value


def _item(prefix: str, folder: _Folder, event: DefectEvent) -> EvidenceItem:
    frames = sorted(n for n in folder.names if n.startswith("frame."))
    return EvidenceItem(event=event, frame_key=prefix + frames[0] if frames else None,
                        overlay_key=prefix + OVERLAY_NAME if OVERLAY_NAME in folder.names else None)
