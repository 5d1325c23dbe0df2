"""CalDAV transport: pull a calendar's changes, push and delete objects, conditionally.

Only the wire. What to import, what to push and who wins a conflict is decided
above this module; here a calendar is a set of objects (``href`` -> ETag, bytes).

- ``pull`` uses the WebDAV sync-collection REPORT (RFC 6578) and fetches the
  changed objects with one calendar-multiget REPORT (RFC 4791 section 7.9) per
  batch. A token the server no longer accepts (403/409 with ``DAV:valid-sync-token``,
  RFC 6578 section 3.2; 412 on some servers) gives a full listing, and so does a
  server without sync-collection (a Depth 1 PROPFIND of the ETags); ``full=True``
  then tells the caller that an object absent from the list is gone.
- ``put`` and ``delete`` are conditional (RFC 9110 section 13.1): ``If-Match`` with
  the ETag the caller last saw, ``If-None-Match: *`` to create, so a change made by
  another client in between is refused (412, ``precondition-failed``) instead of
  overwritten.
- Every error of caldav, of its HTTP library (niquests or requests) and every
  unexpected HTTP status is translated here into ``CalDavError`` with a stable
  ``code`` (STYLE rule 9).

The caldav library's ``DAVClient`` carries the requests (authentication
negotiation, TLS, proxies, rate-limit answers); the few WebDAV bodies are built and
read here, so that hrefs come back exactly as the server wrote them and a full
listing is never mistaken for a list of changes. Synchronous: callers run it in a
thread, one transport per thread at a time.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Literal, cast
from urllib.parse import unquote, urljoin, urlsplit

from caldav.davclient import DAVClient
from caldav.lib import error as caldav_error

ErrorCode = Literal["unreachable", "unauthorised", "not-found", "precondition-failed", "protocol"]

DAV: Final = "DAV:"
CALDAV: Final = "urn:ietf:params:xml:ns:caldav"
VALID_SYNC_TOKEN: Final = "{DAV:}valid-sync-token"
# RFC 4791 section 5.3.2.1 and RFC 6638 section 3.2.4.1: another resource holds the UID.
UID_CONFLICT: Final = frozenset(
    {f"{{{CALDAV}}}no-uid-conflict", f"{{{CALDAV}}}unique-scheduling-object-resource"}
)
ICS_CONTENT_TYPE: Final = "text/calendar; charset=utf-8"
MULTIGET_BATCH: Final = 100
# A server truncating a sync reply (RFC 6578 section 3.6) is asked again from the new
# token; Google pages about 230 objects at a time, so this bounds ~20k objects.
MAX_SYNC_PAGES: Final = 100
MAX_NAME_LENGTH: Final = 120


class CalDavError(Exception):
    """A CalDAV operation failed; ``code`` is stable, the message is for people."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: ErrorCode = code
        self.message = message


@dataclass(frozen=True)
class CalDavAccount:
    """Where a room calendar lives and who we are there."""

    url: str
    username: str | None
    password: str | None = field(repr=False)
    calendar_url: str


@dataclass(frozen=True)
class RemoteItem:
    """One calendar object as the server has it; ``data is None`` means deleted.

    ``href`` is an absolute URL; ``etag`` is the opaque ETag exactly as the server
    sent it (quotes included), to be handed back unchanged in ``If-Match``.
    ``data`` is the object as the server stores it, in UTF-8; line ends may come
    back as LF (calendar data travels inside XML, which normalises CRLF).
    """

    href: str
    etag: str | None
    data: bytes | None


@dataclass(frozen=True)
class PullResult:
    """What changed since ``sync_token``; with ``full=True``, everything there is.

    A full listing may still carry deleted items (Radicale's initial sync reports
    members deleted in the last weeks as 404s); absent or ``data is None``, the
    object is gone either way. ``sync_token`` is None when the server cannot sync:
    every pull is then full.
    """

    items: tuple[RemoteItem, ...]
    sync_token: str | None
    full: bool


# --- pure helpers: names, bodies, multistatus -------------------------------------


def sanitise_uid(uid: str) -> str:
    """A resource name for ``uid``: injective, URL- and filesystem-safe.

    Letters, digits, ``-`` and ``.`` (not first) are kept; every other UTF-8 byte,
    ``_`` included, becomes ``_XX`` (hex), so two UIDs never share a name. Very
    long UIDs are cut and suffixed with a hash of the whole UID.
    """
    out: list[str] = []
    for i, ch in enumerate(uid):
        if (ch.isascii() and ch.isalnum()) or ch == "-" or (ch == "." and i > 0):
            out.append(ch)
        else:
            out.extend(f"_{b:02X}" for b in ch.encode("utf-8"))
    name = "".join(out) or "_"
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha256(uid.encode("utf-8")).hexdigest()[:24]
        name = f"{name[: MAX_NAME_LENGTH - 25]}_{digest}"
    return name


def href_for_uid(calendar_url: str, uid: str) -> str:
    """``<calendar_url>/<sanitised uid>.ics``: where a new object is created."""
    return f"{calendar_url.rstrip('/')}/{sanitise_uid(uid)}.ics"


def quote_etag(etag: str) -> str:
    """The ETag as an entity-tag (RFC 9110 section 8.8.3): quoted unless it already is."""
    etag = etag.strip()
    if etag.startswith('"') or etag.startswith('W/"'):
        return etag
    return f'"{etag}"'


def _xml(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def sync_collection_body(sync_token: str | None) -> str:
    """RFC 6578 section 3.2 request: members' ETags since ``sync_token`` ("" = all)."""
    root = ET.Element(f"{{{DAV}}}sync-collection")
    ET.SubElement(root, f"{{{DAV}}}sync-token").text = sync_token or ""
    ET.SubElement(root, f"{{{DAV}}}sync-level").text = "1"
    prop = ET.SubElement(root, f"{{{DAV}}}prop")
    ET.SubElement(prop, f"{{{DAV}}}getetag")
    return _xml(root)


def multiget_body(hrefs: Iterable[str]) -> str:
    """RFC 4791 section 7.9 calendar-multiget: ETag and data of each href (a path)."""
    root = ET.Element(f"{{{CALDAV}}}calendar-multiget")
    prop = ET.SubElement(root, f"{{{DAV}}}prop")
    ET.SubElement(prop, f"{{{DAV}}}getetag")
    ET.SubElement(prop, f"{{{CALDAV}}}calendar-data")
    for href in hrefs:
        ET.SubElement(root, f"{{{DAV}}}href").text = href
    return _xml(root)


def propfind_etags_body() -> str:
    root = ET.Element(f"{{{DAV}}}propfind")
    prop = ET.SubElement(root, f"{{{DAV}}}prop")
    ET.SubElement(prop, f"{{{DAV}}}getetag")
    ET.SubElement(prop, f"{{{DAV}}}resourcetype")
    return _xml(root)


@dataclass(frozen=True)
class DavResponse:
    """One ``DAV:response`` of a multistatus, reduced to what the transport needs."""

    href: str  # as the server wrote it (usually an escaped absolute path)
    status: int  # of the response, or of the propstat holding the properties
    etag: str | None = None
    data: str | None = None
    is_collection: bool = False


@dataclass(frozen=True)
class Multistatus:
    responses: tuple[DavResponse, ...]
    sync_token: str | None
    truncated: bool  # RFC 6578 section 3.6: a 507 for the request URL


def _status_code(text: str | None) -> int:
    """``HTTP/1.1 404 Not Found`` -> 404 (a missing status reads as 200)."""
    parts = (text or "").split()
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return 200


def parse_multistatus(body: str | bytes) -> Multistatus:
    """Read a 207 body (RFC 4918 section 13); ``ValueError`` if it is not one.

    Only a ``404`` marks a member removed (RFC 6578 section 3.5.2). A propstat
    that is not 200 (a property the server lacks) leaves that property unset.
    """
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from exc
    if root.tag != f"{{{DAV}}}multistatus":
        raise ValueError(f"expected DAV:multistatus, got {root.tag}")
    token_el = root.find(f"{{{DAV}}}sync-token")
    sync_token = token_el.text.strip() if token_el is not None and token_el.text else None
    responses: list[DavResponse] = []
    truncated = False
    for resp in root.iterfind(f"{{{DAV}}}response"):
        href_el = resp.find(f"{{{DAV}}}href")
        if href_el is None or not href_el.text:
            continue
        href = href_el.text.strip()
        status_el = resp.find(f"{{{DAV}}}status")
        propstats = resp.findall(f"{{{DAV}}}propstat")
        if status_el is not None and not propstats:
            status = _status_code(status_el.text)
            if status == 507 and sync_token is not None:
                truncated = True
                continue
            responses.append(DavResponse(href=href, status=status))
            continue
        etag: str | None = None
        data: str | None = None
        is_collection = False
        status = 200 if status_el is None else _status_code(status_el.text)
        ok = False
        for propstat in propstats:
            if _status_code(propstat.findtext(f"{{{DAV}}}status")) != 200:
                continue
            ok = True
            prop = propstat.find(f"{{{DAV}}}prop")
            if prop is None:
                continue
            etag_text = prop.findtext(f"{{{DAV}}}getetag")
            if etag_text and etag_text.strip():
                etag = etag_text.strip()
            data_el = prop.find(f"{{{CALDAV}}}calendar-data")
            if data_el is not None and data_el.text:
                data = data_el.text
            rtype = prop.find(f"{{{DAV}}}resourcetype")
            if rtype is not None and rtype.find(f"{{{DAV}}}collection") is not None:
                is_collection = True
        if propstats and not ok:
            # Every propstat failed: a multiget answers 404 per missing href this way.
            status = max(_status_code(p.findtext(f"{{{DAV}}}status")) for p in propstats)
        responses.append(DavResponse(href, status, etag, data, is_collection))
    return Multistatus(tuple(responses), sync_token, truncated)


def _path_key(url: str) -> str:
    """Servers differ in what they escape (``%40`` or ``@``): compare unescaped paths."""
    return unquote(urlsplit(url).path).rstrip("/")


def _same_resource(a: str, b: str) -> bool:
    return _path_key(a) == _path_key(b)


# --- the transport ------------------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    status: int
    etag: str | None
    body: str
    preconditions: tuple[str, ...]


class _TokenRejected(Exception):
    """The server no longer knows the sync token: list everything instead."""


class _SyncUnsupported(Exception):
    """The server does not do sync-collection: list with a PROPFIND instead."""


def _error_for(reply: _Reply, what: str) -> CalDavError:
    """Map an unexpected HTTP answer to our stable codes."""
    status = reply.status
    detail = f"{what}: HTTP {status}"
    if reply.preconditions:
        detail += f" ({', '.join(reply.preconditions)})"
    if status == 412:
        return CalDavError("precondition-failed", detail)
    if status in (403, 409) and UID_CONFLICT.intersection(reply.preconditions):
        return CalDavError(
            "precondition-failed", f"{detail}: another object of the calendar has this UID"
        )
    if status in (401, 403):
        return CalDavError("unauthorised", detail)
    if status in (404, 410):
        return CalDavError("not-found", detail)
    if status in (502, 503, 504):
        return CalDavError("unreachable", detail)
    return CalDavError("protocol", detail)


class CalDavTransport:
    """Conditional reads and writes of one calendar collection over CalDAV."""

    def __init__(self, account: CalDavAccount, timeout: float = 10.0) -> None:
        self.account = account
        self.calendar_url = urljoin(account.url, account.calendar_url).rstrip("/") + "/"
        self._client = DAVClient(
            url=account.url,
            username=account.username,
            password=account.password,
            # niquests takes a float; caldav annotates ``int`` only.
            timeout=cast(int, timeout),
            enable_rfc6764=False,  # the URL is given: no DNS discovery
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> CalDavTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public operations --

    def pull(self, sync_token: str | None) -> PullResult:
        """Changes since ``sync_token``, or everything (``full=True``) when there is
        no token, the server rejects it, or the server cannot sync."""
        if sync_token:
            try:
                return self._sync(sync_token)
            except (_TokenRejected, _SyncUnsupported):
                pass  # expired or unknown: the full listing below starts afresh
        try:
            return self._sync(None)
        except (_TokenRejected, _SyncUnsupported):
            return self._list_all()

    def get(self, href: str) -> RemoteItem:
        url = self._url(href)
        reply = self._send("GET", url, "", {"Accept": "text/calendar"})
        if reply.status != 200:
            raise _error_for(reply, f"GET {url}")
        return RemoteItem(url, reply.etag, reply.body.encode("utf-8"))

    def put(
        self, href: str | None, uid: str, data: bytes, etag: str | None
    ) -> tuple[str, str | None]:
        """Create (``href`` None, or no ``etag``: ``If-None-Match: *``) or replace
        (``If-Match: etag``) an object; returns its URL and new ETag.

        The new ETag is None when the server did not send one (RFC 4791 section
        5.3.4: it changed the data as it stored it); ``get`` then reads it back.
        """
        url = href_for_uid(self.calendar_url, uid) if href is None else self._url(href)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:  # RFC 5545 section 3.1.4: UTF-8 only
            raise CalDavError("protocol", f"calendar data for {uid!r} is not UTF-8") from exc
        headers = {"Content-Type": ICS_CONTENT_TYPE}
        if etag is None:
            headers["If-None-Match"] = "*"
        else:
            headers["If-Match"] = quote_etag(etag)
        reply = self._send("PUT", url, text, headers)
        if reply.status not in (200, 201, 204):
            raise _error_for(reply, f"PUT {url}")
        return url, reply.etag

    def delete(self, href: str, etag: str | None) -> None:
        """Delete an object, only if it still has ``etag`` (unconditional when None)."""
        url = self._url(href)
        headers = {} if etag is None else {"If-Match": quote_etag(etag)}
        reply = self._send("DELETE", url, "", headers)
        if reply.status not in (200, 202, 204):
            raise _error_for(reply, f"DELETE {url}")

    # -- pull internals --

    def _sync(self, sync_token: str | None) -> PullResult:
        """sync-collection from ``sync_token`` (None = initial, full), following
        truncated replies (RFC 6578 section 3.6) until the server says it is done."""
        changed: dict[str, str | None] = {}
        deleted: set[str] = set()
        token = sync_token
        for _page in range(MAX_SYNC_PAGES):
            reply = self._send(
                "REPORT", self.calendar_url, sync_collection_body(token), {"Depth": "0"}
            )
            if reply.status != 207:
                self._raise_sync_failure(reply, token)
            ms = self._parse(reply, "sync-collection")
            if ms.sync_token is None:
                raise _SyncUnsupported  # a multistatus without a token is no sync reply
            for item in ms.responses:
                url = urljoin(self.calendar_url, item.href)
                if _same_resource(url, self.calendar_url) or item.is_collection:
                    continue  # iCloud lists the collection itself among the changes
                if item.status == 404:
                    deleted.add(url)
                    changed.pop(url, None)
                elif item.status == 200:
                    changed[url] = item.etag
                    deleted.discard(url)
            if ms.truncated and ms.sync_token == token:
                raise CalDavError("protocol", "sync-collection truncated without progress")
            token = ms.sync_token
            if not ms.truncated:
                break
        else:
            raise CalDavError(
                "protocol", f"sync-collection still truncated after {MAX_SYNC_PAGES} pages"
            )
        items = self._fetch(changed)
        items.extend(RemoteItem(url, None, None) for url in sorted(deleted))
        return PullResult(tuple(items), token, full=sync_token is None)

    def _raise_sync_failure(self, reply: _Reply, token: str | None) -> None:
        if token and (
            VALID_SYNC_TOKEN in reply.preconditions
            # 409 and 412 answer nothing else a sync REPORT could be refused for
            or (reply.status in (409, 412) and not reply.preconditions)
        ):
            raise _TokenRejected
        if reply.status in (400, 405, 415, 422, 501) or (
            reply.status == 403 and "{DAV:}supported-report" in reply.preconditions
        ):
            raise _SyncUnsupported
        raise _error_for(reply, "sync-collection REPORT")

    def _list_all(self) -> PullResult:
        """Depth 1 PROPFIND of the members' ETags, for servers without sync."""
        reply = self._send("PROPFIND", self.calendar_url, propfind_etags_body(), {"Depth": "1"})
        if reply.status != 207:
            raise _error_for(reply, "PROPFIND")
        ms = self._parse(reply, "PROPFIND")
        members: dict[str, str | None] = {}
        for item in ms.responses:
            url = urljoin(self.calendar_url, item.href)
            if (
                item.status == 200
                and not item.is_collection
                and not _same_resource(url, self.calendar_url)
            ):
                members[url] = item.etag
        return PullResult(tuple(self._fetch(members)), None, full=True)

    def _fetch(self, wanted: Mapping[str, str | None]) -> list[RemoteItem]:
        """ETag and data of each URL by calendar-multiget; the ETag comes with the
        data, so it is the one the data has. An object gone meanwhile reads as deleted."""
        urls = sorted(wanted)
        items: list[RemoteItem] = []
        for start in range(0, len(urls), MULTIGET_BATCH):
            batch = urls[start : start + MULTIGET_BATCH]
            body = multiget_body(urlsplit(u).path for u in batch)
            # RFC 4791 section 7.9: no Depth header on a multiget.
            reply = self._send("REPORT", self.calendar_url, body, {})
            if reply.status != 207:
                raise _error_for(reply, "calendar-multiget REPORT")
            found: dict[str, DavResponse] = {}
            for item in self._parse(reply, "calendar-multiget").responses:
                found[_path_key(urljoin(self.calendar_url, item.href))] = item
            for url in batch:
                got = found.get(_path_key(url))
                if got is not None and got.status == 200 and got.data is not None:
                    items.append(RemoteItem(url, got.etag or wanted[url], got.data.encode("utf-8")))
                elif got is None or got.status in (404, 410):
                    items.append(RemoteItem(url, None, None))
                else:
                    raise CalDavError(
                        "protocol", f"calendar-multiget of {url}: status {got.status}"
                    )
        return items

    # -- HTTP --

    def _url(self, href: str) -> str:
        """An absolute URL for an href that may be a path or already absolute."""
        return urljoin(self.calendar_url, href)

    @staticmethod
    def _parse(reply: _Reply, what: str) -> Multistatus:
        try:
            return parse_multistatus(reply.body)
        except ValueError as exc:
            raise CalDavError("protocol", f"{what}: unreadable multistatus: {exc}") from exc

    def _send(self, method: str, url: str, body: str, headers: Mapping[str, str]) -> _Reply:
        """One request; any HTTP answer is a ``_Reply``, any failure a ``CalDavError``."""
        try:
            response = self._client.request(url, method, body, headers)
        except caldav_error.AuthorizationError as exc:
            # caldav raises on 401/403 (after negotiating the auth scheme); a 403 may
            # still be a precondition such as DAV:valid-sync-token, so keep it a reply.
            text = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
            return _Reply(exc.status or 401, None, text or "", tuple(exc.preconditions))
        except caldav_error.RateLimitError as exc:
            raise CalDavError("unreachable", f"{method} {url}: server busy ({exc})") from exc
        except caldav_error.DAVError as exc:
            raise CalDavError("protocol", f"{method} {url}: {exc}") from exc
        except NotImplementedError as exc:  # no authentication scheme caldav can speak
            raise CalDavError("unauthorised", f"{method} {url}: {exc}") from exc
        except OSError as exc:  # niquests/requests errors are OSErrors: refused, DNS, TLS, timeout
            raise CalDavError(
                "unreachable", f"{method} {url}: {type(exc).__name__}: {exc}"
            ) from exc
        except Exception as exc:  # e.g. lxml refusing a body announced as XML
            raise CalDavError("protocol", f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        text = response.raw
        etag = response.headers.get("ETag") if response.headers is not None else None
        preconditions: tuple[str, ...] = ()
        if response.status >= 400:
            preconditions = tuple(caldav_error.parse_preconditions(text))
        return _Reply(
            response.status, etag if isinstance(etag, str) and etag else None, text, preconditions
        )
