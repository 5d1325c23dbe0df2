"""The staff-only administration pages through the running service: a centre's rooms
with their online state and policy, changing the policy (errors beside their field,
nothing half-saved), adding a room and rotating its key (each shown once, the old
key refused by signalling), panel links, and the people page."""

from __future__ import annotations

import asyncio
import html as html_lib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientSession

from orchestrator.centres import get_room, list_rooms, set_room_policy
from orchestrator.credentials import hash_room_key
from orchestrator.errors import DomainError
from orchestrator.models import Room
from orchestrator.people import accounts
from orchestrator.sessions import panels
from signalling import protocol as p
from signalling.client import SignallingClient, SignallingError
from tests.accounts_support import (
    ADMIN,
    PARIS_STAFF,
    Network,
    add_network,
    browser_like,
    log_in,
    post_form,
)
from tests.ui_support import RunningApp, running_app
from web.settings import Settings

SECRET_RE = re.compile(r'id="secret-value"[^>]* value="([^"]+)"')
PASSWORD_RE = re.compile(r'id="added-password"[^>]* value="([^"]+)"')


@pytest_asyncio.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[RunningApp, Network]]:
    async with running_app(Settings(data_dir=tmp_path)) as app:
        yield app, await add_network(app.services.db)


@pytest_asyncio.fixture
async def staff(site: tuple[RunningApp, Network]) -> AsyncIterator[ClientSession]:
    app, _ = site
    async with browser_like() as http:
        assert await log_in(http, app.url, PARIS_STAFF) == 303
        yield http


@pytest_asyncio.fixture
async def admin(site: tuple[RunningApp, Network]) -> AsyncIterator[ClientSession]:
    app, _ = site
    async with browser_like() as http:
        assert await log_in(http, app.url, ADMIN) == 303
        yield http


async def _get(http: ClientSession, url: str) -> tuple[int, str, str]:
    async with http.get(url, allow_redirects=False) as response:
        return response.status, await response.text(), response.headers.get("Location", "")


async def _room(app: RunningApp, room_id: str) -> Room:
    room: Room = await app.services.db.run(lambda s: get_room(s, room_id))
    return room


def _secret(html: str) -> str:
    match = SECRET_RE.search(html)
    assert match, html[-2000:]
    return html_lib.unescape(match.group(1))


# --- the centre page ----------------------------------------------------------------------


async def test_staff_see_their_centres_rooms_with_state_and_policy(
    site: tuple[RunningApp, Network], staff: ClientSession
) -> None:
    app, net = site
    await app.services.db.run(
        lambda s: set_room_policy(
            s, net.paris_room, buffer_seconds=900, aliases=["Blue room", "SB"]
        )
    )
    status, html, _ = await _get(staff, f"{app.url}/admin/centres/{net.paris}")
    assert status == 200
    assert "<h1>Fontainebleau</h1>" in html and "Europe/Paris" in html
    row = html[html.index(f'<tr data-room="{net.paris_room}">') :]
    row = row[: row.index("</tr>")]
    assert "Salle Bleue" in row and 'data-online="false"' in row
    assert "15 min" in row and "No limit" in row and "180 days" in row
    assert "Blue room, SB" in row
    # The other centre's room is not on this page.
    assert "Smart Work Room" not in html
    # /admin takes staff to their own centre.
    status, _, location = await _get(staff, f"{app.url}/admin")
    assert (status, location) == (303, f"/admin/centres/{net.paris}")


def _cells(html: str, row_start: str) -> list[str]:
    """The text of a table row's cells, tags stripped."""
    row = html[html.index(row_start) :]
    row = row[: row.index("</tr>")]
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells]


STATE_LABELS = {
    "en": ("Offline", "Not required", "No limit", "Active", "Disabled"),
    "fr": ("Hors ligne", "Non requise", "Sans limite", "Actif", "Désactivé"),
    "nl": ("Offline", "Niet vereist", "Geen limiet", "Actief", "Uitgeschakeld"),
}


async def test_room_and_account_states_are_translated_and_capitalised(
    site: tuple[RunningApp, Network], admin: ClientSession
) -> None:
    # Issue 10: the room table said "online"/"offline" (and the people table
    # "active"/"disabled") in lower case, like raw states.
    app, net = site
    staff_id = (await app.services.db.run(lambda s: accounts.user_by_email(s, PARIS_STAFF))).id
    await post_form(admin, app.url, f"/admin/users/{staff_id}/disable", {}, page="/admin/users")
    for lang, labels in STATE_LABELS.items():
        offline, approval, limit, active, disabled = labels
        headers = {"Accept-Language": lang}
        async with admin.get(f"{app.url}/admin/centres/{net.paris}", headers=headers) as response:
            html = await response.text()
        cells = _cells(html, f'<tr data-room="{net.paris_room}">')
        assert (cells[1], cells[2], cells[4]) == (offline, approval, limit), lang
        async with admin.get(f"{app.url}/admin/users", headers=headers) as response:
            html = await response.text()
        assert _cells(html, f'<tr data-user="{ADMIN}">')[5] == active, lang
        assert _cells(html, f'<tr class="disabled-row" data-user="{PARIS_STAFF}">')[5] == disabled
        assert all(label[0].isupper() for label in labels)


async def test_a_policy_change_is_saved_and_an_empty_maximum_means_no_limit(
    site: tuple[RunningApp, Network], staff: ClientSession
) -> None:
    app, net = site
    path = f"/admin/centres/{net.paris}/rooms/{net.paris_room}"
    form = {
        "requires_approval": "1",
        "buffer": "10",
        "max_duration": "90",
        "max_advance": "30",
        "aliases": " Blue room , SB, ,SB",
    }
    status, _, location = await post_form(
        staff, app.url, path, form, page=f"/admin/centres/{net.paris}"
    )
    assert status == 303
    assert location == f"/admin/centres/{net.paris}?saved={net.paris_room}#room-{net.paris_room}"
    room = await _room(app, net.paris_room)
    assert room.requires_approval is True
    assert (room.buffer_seconds, room.max_duration_seconds, room.max_advance_days) == (
        600,
        5400,
        30,
    )
    assert json.loads(room.aliases) == ["Blue room", "SB"]
    status, html, _ = await _get(staff, app.url + location)
    assert 'role="status"' in html and "Required for other centres" in html
    assert room.ice_policy == "all"
    # Ticked: the room's media go only through the TURN relay.
    status, _, _ = await post_form(
        staff, app.url, path, {**form, "relay_only": "1"}, page=f"/admin/centres/{net.paris}"
    )
    assert status == 303 and (await _room(app, net.paris_room)).ice_policy == "relay"
    assert room.small_uplink is False
    # Ticked: the room's sessions always run on the SFU.
    status, _, location = await post_form(
        staff, app.url, path, {**form, "small_uplink": "1"}, page=f"/admin/centres/{net.paris}"
    )
    assert status == 303 and (await _room(app, net.paris_room)).small_uplink is True
    status, html, _ = await _get(staff, app.url + location)
    assert re.search(r'<input[^>]*name="small_uplink"[^>]*checked', html)
    # Unticked and emptied: approval off, relay off, small uplink off, no maximum.
    form = {"buffer": "0", "max_duration": "", "max_advance": "30", "aliases": ""}
    status, _, _ = await post_form(staff, app.url, path, form, page=f"/admin/centres/{net.paris}")
    room = await _room(app, net.paris_room)
    assert status == 303 and room.requires_approval is False and room.ice_policy == "all"
    assert room.small_uplink is False
    assert room.max_duration_seconds is None and json.loads(room.aliases) == []


async def test_bad_policy_values_are_shown_beside_their_fields_and_nothing_is_saved(
    site: tuple[RunningApp, Network], staff: ClientSession
) -> None:
    app, net = site
    path = f"/admin/centres/{net.paris}/rooms/{net.paris_room}"
    page = f"/admin/centres/{net.paris}"
    form = {
        "requires_approval": "1",
        "buffer": "20",
        "max_duration": "2",
        "max_advance": "5000",
        "aliases": "X",
    }
    status, html, _ = await post_form(staff, app.url, path, form, page=page)
    assert status == 400
    prefix = f"r-{net.paris_room}-"
    assert f'id="{prefix}max-duration-error" role="alert"' in html
    assert f'id="{prefix}max-advance-error" role="alert"' in html
    assert f'id="{prefix}buffer-error"' not in html
    # The typed values stay in the form.
    assert f'id="{prefix}max-advance" name="max_advance" type="number" value="5000"' in html
    room = await _room(app, net.paris_room)
    assert (room.buffer_seconds, room.requires_approval, room.aliases) == (0, False, "[]")
    status, html, _ = await post_form(
        staff,
        app.url,
        path,
        {**form, "buffer": "ten", "max_duration": "", "max_advance": "3"},
        page=page,
    )
    assert status == 400 and f'id="{prefix}buffer-error" role="alert"' in html
    assert "Enter a whole number." in html


async def test_a_room_of_another_centre_cannot_be_changed_through_this_centres_page(
    site: tuple[RunningApp, Network], staff: ClientSession
) -> None:
    app, net = site
    path = f"/admin/centres/{net.paris}/rooms/{net.amsterdam_room}"
    page = f"/admin/centres/{net.paris}"
    form = {"buffer": "30", "max_duration": "", "max_advance": "30", "aliases": ""}
    status, html, _ = await post_form(staff, app.url, path, form, page=page)
    assert status == 404 and "not-found" in html
    for action in ("key", "panel-link", "panel-links/revoke"):
        status, _, _ = await post_form(staff, app.url, f"{path}/{action}", {}, page=page)
        assert status == 404
    assert (await _room(app, net.amsterdam_room)).buffer_seconds == 0


async def test_a_new_room_shows_its_key_once_and_rotation_revokes_the_old_key(
    site: tuple[RunningApp, Network], staff: ClientSession
) -> None:
    app, net = site
    page = f"/admin/centres/{net.paris}"
    status, html, _ = await post_form(
        staff, app.url, f"{page}/rooms", {"name": "Salle Verte"}, page=page
    )
    assert status == 201
    key = _secret(html)
    room_id = next(
        r.id
        for r in await app.services.db.run(lambda s: list_rooms(s, net.paris))
        if r.name == "Salle Verte"
    )
    assert (await _room(app, room_id)).key_hash == hash_room_key(key)
    assert key not in (await _get(staff, app.url + page))[1]

    await app.services.scheduler.step()  # credentials reach signalling
    ws = app.url.replace("http", "ws") + "/ws"
    async with ClientSession() as agent_http:
        agent = SignallingClient(agent_http, ws, key=key)
        assert (await agent.connect()).peer_id == f"room:{room_id}"
        _, html, _ = await _get(staff, app.url + page)
        row = html[html.index(f'<tr data-room="{room_id}">') :]
        assert 'data-online="true"' in row[: row.index("</tr>")]
        assert _cells(html, f'<tr data-room="{room_id}">')[1] == "Online"

        status, html, _ = await post_form(
            staff, app.url, f"{page}/rooms/{room_id}/key", {}, page=page
        )
        assert status == 200
        new_key = _secret(html)
        assert new_key != key and "generation 2" in html
        await app.services.scheduler.step()
        await asyncio.wait_for(agent.closed.wait(), 5)
        assert agent.close_reason == p.ErrorCode.KEY_REVOKED
        stale = SignallingClient(agent_http, ws, key=key)
        with pytest.raises(SignallingError):
            await stale.connect()
        fresh = SignallingClient(agent_http, ws, key=new_key)
        assert (await fresh.connect()).peer_id == f"room:{room_id}"
        await asyncio.gather(agent.close(), stale.close(), fresh.close())


async def test_adding_a_room_twice_is_explained_beside_the_name(
    site: tuple[RunningApp, Network], staff: ClientSession
) -> None:
    app, net = site
    status, html, _ = await post_form(
        staff,
        app.url,
        f"/admin/centres/{net.paris}/rooms",
        {"name": "Salle Bleue"},
        page=f"/admin/centres/{net.paris}",
    )
    assert status == 400
    assert 'id="new-room-name-error" role="alert"' in html
    assert 'value="Salle Bleue"' in html
    status, html, _ = await post_form(
        staff,
        app.url,
        f"/admin/centres/{net.paris}/rooms",
        {"name": "   "},
        page=f"/admin/centres/{net.paris}",
    )
    assert status == 400 and 'id="new-room-name-error" role="alert"' in html


async def test_panel_links_are_shown_once_and_can_all_be_revoked(
    site: tuple[RunningApp, Network], staff: ClientSession
) -> None:
    app, net = site
    page = f"/admin/centres/{net.paris}"
    base = f"{page}/rooms/{net.paris_room}"
    links = []
    for _ in range(2):
        status, html, _ = await post_form(staff, app.url, f"{base}/panel-link", {}, page=page)
        assert status == 200
        links.append(_secret(html))
    assert all(link.startswith(f"{app.url}/panel/tcp_") for link in links)
    token = links[0].rsplit("/", 1)[1]
    assert (
        await app.services.db.run(lambda s: panels.resolve_panel(s, token))
    ).id == net.paris_room
    status, _, location = await post_form(
        staff, app.url, f"{base}/panel-links/revoke", {}, page=page
    )
    assert status == 303
    _, html, _ = await _get(staff, app.url + location)
    assert "2 panel links of the room stopped working." in html
    with pytest.raises(DomainError):
        await app.services.db.run(lambda s: panels.resolve_panel(s, token))


# --- centres and people (administrators) ----------------------------------------------------


async def test_an_administrator_lists_and_adds_centres(
    site: tuple[RunningApp, Network], admin: ClientSession
) -> None:
    app, _ = site
    status, html, _ = await _get(admin, f"{app.url}/admin/centres")
    assert status == 200 and "Fontainebleau" in html and "Amsterdam Bright City" in html
    status, html, _ = await post_form(
        admin, app.url, "/admin/centres", {"name": "Fontainebleau", "timezone": "Europe/Paris"}
    )
    assert status == 400 and 'id="centre-name-error" role="alert"' in html
    status, html, _ = await post_form(
        admin, app.url, "/admin/centres", {"name": "Mulhouse", "timezone": "Mars/Base"}
    )
    assert status == 400 and 'id="centre-timezone-error" role="alert"' in html
    status, _, location = await post_form(
        admin, app.url, "/admin/centres", {"name": "Mulhouse", "timezone": "Europe/Paris"}
    )
    assert status == 303 and location.startswith("/admin/centres/")
    status, html, _ = await _get(admin, app.url + location)
    assert status == 200 and "<h1>Mulhouse</h1>" in html


async def test_an_administrator_adds_a_person_who_logs_in_with_the_generated_password(
    site: tuple[RunningApp, Network], admin: ClientSession
) -> None:
    app, net = site
    form = {
        "email": "Nina@Example.org",
        "name": "Nina",
        "role": "organiser",
        "centre_id": net.amsterdam,
    }
    status, html, _ = await post_form(admin, app.url, "/admin/users", form)
    assert status == 201
    match = PASSWORD_RE.search(html)
    assert match, html[-1500:]
    password = html_lib.unescape(match.group(1))
    assert len(password) >= 10
    assert 'data-user="nina@example.org"' in html
    async with browser_like() as nina:
        assert await log_in(nina, app.url, "nina@example.org", password) == 303
    # Shown once: the list does not show it again.
    assert password not in (await _get(admin, f"{app.url}/admin/users"))[1]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not an address"}, "user-email"),
        ({"email": PARIS_STAFF}, "user-email"),
        ({"name": " "}, "user-name"),
        ({"role": "emperor"}, "user-role"),
        ({"role": "staff", "centre_id": ""}, "user-centre"),
        ({"centre_id": "no-such-centre"}, "user-centre"),
        ({"password": "short"}, "user-password"),
    ],
)
async def test_adding_a_person_explains_each_refusal_beside_its_field(
    site: tuple[RunningApp, Network], admin: ClientSession, change: dict[str, str], field: str
) -> None:
    app, net = site
    form = {
        "email": "new@example.org",
        "name": "New",
        "role": "organiser",
        "centre_id": net.paris,
        "password": "",
        **change,
    }
    status, html, _ = await post_form(admin, app.url, "/admin/users", form)
    assert status == 400
    assert f'id="{field}-error" role="alert"' in html
    assert 'id="added-password"' not in html
    if "password" in change:
        assert change["password"] not in html.split('id="user-password"')[1][:200]


async def test_a_disabled_person_is_logged_out_and_cannot_log_in_until_enabled(
    site: tuple[RunningApp, Network], admin: ClientSession
) -> None:
    app, _ = site
    staff_id = (await app.services.db.run(lambda s: accounts.user_by_email(s, PARIS_STAFF))).id
    async with browser_like() as paul:
        assert await log_in(paul, app.url, PARIS_STAFF) == 303
        status, _, location = await post_form(
            admin, app.url, f"/admin/users/{staff_id}/disable", {}, page="/admin/users"
        )
        assert (status, location) == (303, "/admin/users?done=disabled")
        assert (await _get(paul, f"{app.url}/account"))[0] == 303
        assert await log_in(paul, app.url, PARIS_STAFF) == 400
        await post_form(admin, app.url, f"/admin/users/{staff_id}/enable", {}, page="/admin/users")
        assert await log_in(paul, app.url, PARIS_STAFF) == 303


async def test_an_administrator_cannot_disable_their_own_account(
    site: tuple[RunningApp, Network], admin: ClientSession
) -> None:
    app, _ = site
    me = (await app.services.db.run(lambda s: accounts.user_by_email(s, ADMIN))).id
    status, html, _ = await post_form(
        admin, app.url, f"/admin/users/{me}/disable", {}, page="/admin/users"
    )
    assert status == 400 and "You cannot disable your own account." in html
    user: Any = await app.services.db.run(lambda s: accounts.user_by_email(s, ADMIN))
    assert user.disabled is False
