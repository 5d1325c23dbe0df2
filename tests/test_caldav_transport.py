"""The CalDAV transport against a real Radicale on loopback, plus its pure helpers.

One Radicale per module (it starts in well under a second); each test gets a fresh,
empty calendar of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.calendars.caldav import transport as caldav_transport
from orchestrator.calendars.caldav.transport import (
    CalDavAccount,
    CalDavError,
    CalDavTransport,
    PullResult,
    RemoteItem,
    href_for_uid,
    parse_multistatus,
    quote_etag,
    sanitise_uid,
)
from tests.radicale_server import RadicaleInfo, RadicaleServer, radicale_server


def ics(uid: str, summary: str = "Fontainebleau - Bright City", sequence: int = 0) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\n"
        "VERSION:2.0\r\n"
        "PRODID:-//telecentre//tests//EN\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\n"
        "DTSTAMP:20250301T080000Z\r\n"
        "DTSTART:20250310T080000Z\r\n"
        "DTEND:20250310T090000Z\r\n"
        f"SEQUENCE:{sequence}\r\n"
        f"SUMMARY:{summary}\r\n"
        "END:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    ).encode()


def new_uid() -> str:
    return f"{uuid.uuid4()}@telecentre.test"


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    with radicale_server(tmp_path_factory.mktemp("radicale")) as server:
        yield server


@pytest.fixture
def calendar(radicale: RadicaleServer) -> RadicaleInfo:
    return RadicaleInfo(
        base_url=radicale.base_url,
        calendar_url=radicale.new_calendar(),
        username=radicale.username,
        password=radicale.password,
    )


def account(info: RadicaleInfo, password: str | None = None) -> CalDavAccount:
    return CalDavAccount(
        url=info.base_url,
        username=info.username,
        password=info.password if password is None else password,
        calendar_url=info.calendar_url,
    )


@pytest.fixture
def transport(calendar: RadicaleInfo) -> Iterator[CalDavTransport]:
    with CalDavTransport(account(calendar), timeout=5.0) as t:
        yield t


def only(result: PullResult) -> RemoteItem:
    assert len(result.items) == 1, result.items
    return result.items[0]


# --- against Radicale ----------------------------------------------------------------


def test_put_creates_and_a_pull_without_token_lists_it_with_its_etag(
    transport: CalDavTransport, calendar: RadicaleInfo
) -> None:
    uid = new_uid()
    href, etag = transport.put(None, uid, ics(uid), None)

    assert href == href_for_uid(calendar.calendar_url, uid)
    assert etag is not None and etag.startswith('"')
    result = transport.pull(None)
    assert result.full is True
    assert result.sync_token
    item = only(result)
    assert (item.href, item.etag) == (href, etag)
    assert item.data is not None and f"UID:{uid}" in item.data.decode()


def test_a_token_pull_returns_only_what_changed_since(transport: CalDavTransport) -> None:
    first, second = new_uid(), new_uid()
    transport.put(None, first, ics(first), None)
    before = transport.pull(None)
    href, etag = transport.put(None, second, ics(second), None)

    after = transport.pull(before.sync_token)

    assert after.full is False
    assert after.sync_token and after.sync_token != before.sync_token
    item = only(after)
    assert (item.href, item.etag) == (href, etag)
    assert item.data is not None and f"UID:{second}" in item.data.decode()
    unchanged = transport.pull(after.sync_token)
    assert (unchanged.items, unchanged.full) == ((), False)


def test_an_update_needs_the_current_etag(transport: CalDavTransport) -> None:
    uid = new_uid()
    href, v1 = transport.put(None, uid, ics(uid, "v1"), None)

    same_href, v2 = transport.put(href, uid, ics(uid, "v2", sequence=1), v1)
    assert same_href == href and v2 is not None and v2 != v1

    with pytest.raises(CalDavError) as stale:
        transport.put(href, uid, ics(uid, "v3 from stale copy", sequence=2), v1)
    assert stale.value.code == "precondition-failed"
    current = transport.get(href)
    assert current.etag == v2
    assert current.data is not None and b"SUMMARY:v2" in current.data


def test_creating_over_an_existing_object_is_refused(transport: CalDavTransport) -> None:
    uid = new_uid()
    transport.put(None, uid, ics(uid), None)
    with pytest.raises(CalDavError) as again:
        transport.put(None, uid, ics(uid, "second create"), None)
    assert again.value.code == "precondition-failed"


def test_the_same_uid_at_another_href_is_a_precondition_failure(
    transport: CalDavTransport, calendar: RadicaleInfo
) -> None:
    uid = new_uid()
    transport.put(None, uid, ics(uid), None)
    with pytest.raises(CalDavError) as clash:
        transport.put(calendar.calendar_url + "elsewhere.ics", uid, ics(uid), None)
    assert clash.value.code == "precondition-failed"
    assert "no-uid-conflict" in clash.value.message


def test_a_change_by_another_client_is_seen_on_the_next_pull(
    transport: CalDavTransport, calendar: RadicaleInfo
) -> None:
    from caldav.calendarobjectresource import CalendarObjectResource
    from caldav.collection import Calendar
    from caldav.davclient import DAVClient

    uid = new_uid()
    href, ours = transport.put(None, uid, ics(uid, "ours"), None)
    before = transport.pull(None)

    with DAVClient(
        url=calendar.base_url,
        username=calendar.username,
        password=calendar.password,
        enable_rfc6764=False,
    ) as other:
        event = Calendar(client=other, url=calendar.calendar_url).get_event_by_uid(uid)
        assert isinstance(event, CalendarObjectResource)  # a sync client: no coroutine
        event.data = ics(uid, "edited in Nextcloud", sequence=1).decode()
        event.save()

    after = transport.pull(before.sync_token)
    item = only(after)
    assert item.href == href and item.etag not in (None, ours)
    assert item.data is not None and b"edited in Nextcloud" in item.data
    # Our copy is now stale: pushing it is refused rather than overwriting theirs.
    with pytest.raises(CalDavError) as conflict:
        transport.put(href, uid, ics(uid, "ours again", sequence=1), ours)
    assert conflict.value.code == "precondition-failed"


def test_a_delete_is_seen_as_a_deleted_item_on_the_next_token_pull(
    transport: CalDavTransport,
) -> None:
    uid, kept = new_uid(), new_uid()
    href, etag = transport.put(None, uid, ics(uid), None)
    transport.put(None, kept, ics(kept), None)
    before = transport.pull(None)

    with pytest.raises(CalDavError) as stale:
        transport.delete(href, '"not-the-etag"')
    assert stale.value.code == "precondition-failed"
    transport.delete(href, etag)

    after = transport.pull(before.sync_token)
    assert after.full is False
    assert after.items == (RemoteItem(href, None, None),)
    with pytest.raises(CalDavError) as gone:
        transport.delete(href, etag)
    assert gone.value.code == "not-found"
    with pytest.raises(CalDavError) as missing:
        transport.get(href)
    assert missing.value.code == "not-found"


@pytest.mark.parametrize(
    "token",
    [
        "http://radicale.org/ns/sync/" + "0" * 64,  # well-formed, unknown to the server
        "not-a-token-at-all",
    ],
)
def test_an_invalid_sync_token_falls_back_to_a_full_listing(
    transport: CalDavTransport, token: str
) -> None:
    uid = new_uid()
    href, etag = transport.put(None, uid, ics(uid), None)

    result = transport.pull(token)

    assert result.full is True
    assert result.sync_token and result.sync_token != token
    item = only(result)
    assert (item.href, item.etag) == (href, etag)
    # and the fresh token works for the next incremental pull
    assert transport.pull(result.sync_token) == PullResult((), result.sync_token, False)


def test_a_server_without_sync_collection_is_listed_by_propfind(
    transport: CalDavTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = new_uid()
    href, etag = transport.put(None, uid, ics(uid), None)
    # Radicale answers a REPORT it does not know with 403 DAV:supported-report,
    # which is what a server without RFC 6578 says to sync-collection.
    monkeypatch.setattr(
        caldav_transport,
        "sync_collection_body",
        lambda token: '<?xml version="1.0"?><D:no-such-report xmlns:D="DAV:"/>',
    )

    result = transport.pull("some-token")

    assert (result.full, result.sync_token) == (True, None)
    item = only(result)
    assert (item.href, item.etag) == (href, etag)
    assert item.data is not None and f"UID:{uid}" in item.data.decode()


def test_an_awkward_uid_gets_a_safe_href_that_round_trips(transport: CalDavTransport) -> None:
    uid = "Évènement/../01 du_lundi@mairie-fontainebleau.fr"
    href, etag = transport.put(None, uid, ics(uid), None)
    assert href.rsplit("/", 1)[1] == sanitise_uid(uid) + ".ics"
    item = only(transport.pull(None))
    assert (item.href, item.etag) == (href, etag)
    assert transport.get(href).etag == etag


def test_an_href_chosen_by_another_client_is_used_as_the_server_spells_it(
    transport: CalDavTransport, calendar: RadicaleInfo
) -> None:
    from caldav.davclient import DAVClient

    uid = new_uid()
    with DAVClient(
        url=calendar.base_url,
        username=calendar.username,
        password=calendar.password,
        enable_rfc6764=False,
    ) as other:
        created = other.put(
            calendar.calendar_url + "Salle%20du%20conseil%40mairie.ics",
            ics(uid).decode(),
            {"Content-Type": "text/calendar"},
        )
        assert created.status == 201

    item = only(transport.pull(None))
    assert item.etag and item.data is not None and f"UID:{uid}" in item.data.decode()
    assert transport.get(item.href).etag == item.etag
    _, etag = transport.put(item.href, uid, ics(uid, "moved to 10:00", sequence=1), item.etag)
    transport.delete(item.href, etag)
    # Radicale's initial sync also reports recently deleted members, as 404s.
    assert [i for i in transport.pull(None).items if i.data is not None] == []


def test_an_empty_calendar_pulls_empty_with_a_token(transport: CalDavTransport) -> None:
    result = transport.pull(None)
    assert (result.items, result.full) == ((), True)
    assert result.sync_token


def test_a_wrong_password_is_unauthorised(calendar: RadicaleInfo) -> None:
    with CalDavTransport(account(calendar, password="wrong"), timeout=5.0) as t:
        with pytest.raises(CalDavError) as pulled:
            t.pull(None)
        assert pulled.value.code == "unauthorised"
        with pytest.raises(CalDavError) as put:
            t.put(None, "x", ics("x"), None)
        assert put.value.code == "unauthorised"


def test_the_password_never_shows_in_the_account_repr(calendar: RadicaleInfo) -> None:
    assert calendar.password not in repr(account(calendar))


def test_a_stopped_server_is_unreachable(tmp_path: Path) -> None:
    with radicale_server(tmp_path) as server:
        info = RadicaleInfo(
            server.base_url, server.new_calendar(), server.username, server.password
        )
        t = CalDavTransport(account(info), timeout=2.0)
        uid = new_uid()
        href, etag = t.put(None, uid, ics(uid), None)
    try:
        for call in (
            lambda: t.pull(None),
            lambda: t.get(href),
            lambda: t.put(href, uid, ics(uid), etag),
            lambda: t.delete(href, etag),
        ):
            with pytest.raises(CalDavError) as down:
                call()
            assert down.value.code == "unreachable"
    finally:
        t.close()


# --- pure helpers --------------------------------------------------------------------


def test_sanitised_uids_are_safe_and_distinct() -> None:
    uids = ["a@b", "a_40b", "a-b", "a.b", ".hidden", "..", "é", "a/b", "a b", "x" * 400, "x" * 401]
    names = [sanitise_uid(u) for u in uids]
    assert len(set(names)) == len(uids)
    for name in names:
        assert name and not name.startswith(".") and len(name) <= 120
        assert all(c.isascii() and (c.isalnum() or c in "-._") for c in name)
    assert sanitise_uid("040000008200E00074C5B7101A82E008") == "040000008200E00074C5B7101A82E008"


def test_etags_are_sent_as_entity_tags() -> None:
    assert quote_etag('"abc"') == '"abc"'
    assert quote_etag("abc") == '"abc"'
    assert quote_etag('W/"abc"') == 'W/"abc"'


TRUNCATED_SYNC = b"""<?xml version="1.0" encoding="utf-8"?>
<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
  <d:response><d:href>/cal/a%40x.ics</d:href>
    <d:propstat><d:prop><d:getetag>"1"</d:getetag></d:prop>
      <d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
  <d:response><d:href>/cal/gone.ics</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response>
  <d:response><d:href>/cal/</d:href><d:status>HTTP/1.1 507 Insufficient Storage</d:status></d:response>
  <d:sync-token>tok-2</d:sync-token>
</d:multistatus>"""


def test_a_truncated_sync_reply_is_recognised_with_hrefs_kept_as_written() -> None:
    ms = parse_multistatus(TRUNCATED_SYNC)
    assert ms.sync_token == "tok-2"
    assert ms.truncated is True
    assert [(r.href, r.status, r.etag) for r in ms.responses] == [
        ("/cal/a%40x.ics", 200, '"1"'),
        ("/cal/gone.ics", 404, None),
    ]


def test_a_multiget_miss_reads_as_not_found() -> None:
    body = b"""<d:multistatus xmlns:d="DAV:"><d:response><d:href>/cal/x.ics</d:href>
      <d:propstat><d:prop><d:getetag/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status>
      </d:propstat></d:response></d:multistatus>"""
    (resp,) = parse_multistatus(body).responses
    assert (resp.status, resp.etag, resp.data) == (404, None, None)


@pytest.mark.parametrize(
    "body", [b"", b"<html>login</html>", b"\x00\xff junk", b"<d:error xmlns:d='DAV:'/>"]
)
def test_what_is_not_a_multistatus_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_multistatus(body)
