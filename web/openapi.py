"""The OpenAPI 3.1 document of the JSON API, served at ``GET /api/v1/openapi.json``.

The document is built from the application's router: each ``/api/v1`` route is
described by its entry in ``OPERATIONS`` (keyed by method and path template), and a
route without an entry is left out, so the coverage test (tests/test_openapi.py)
fails until someone documents it. Field names follow the handlers in web/api.py
and web/calendars.py.

The document itself is readable without the bearer token: it holds the shape of
the API only (no data, no secret), and tools such as schemathesis or a Swagger UI
fetch it before they are given a token.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from common.sessions import AUTOMATIC, CONNECT_MODE_NAMES, MANUAL
from common.turn import ICE_POLICIES

API = "/api/v1"
OPENAPI_PATH = API + "/openapi.json"
JSON = "application/json"
CALENDAR = "text/calendar"
VERSION = "1.0.0"
HIDDEN_METHODS = frozenset({"HEAD", "OPTIONS"})
"""aiohttp adds HEAD beside every GET; it answers like the GET without a body."""
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


INSTANT: Schema = {
    "type": "string",
    "format": "date-time",
    "description": "An ISO 8601 instant with its UTC offset.",
}
INSTANT_IN: Schema = {
    "type": "string",
    "description": (
        "An ISO 8601 instant with its UTC offset (``Z`` allowed), between the years 1900 "
        "and 2999 in UTC; a time without an offset or outside that range (year 1 or "
        "9999 with an offset of hours) is refused with ``invalid-time``."
    ),
    "examples": ["2030-06-03T09:00:00+02:00"],
}
ID: Schema = {"type": "string", "minLength": 1}
ONE_LINE = (
    "One line of text: no control character, line break or unpaired surrogate "
    "(``invalid-name`` otherwise)."
)
NAME: Schema = {"type": "string", "minLength": 1, "maxLength": 200, "description": ONE_LINE}
ERROR_CODES = (
    "A stable code. Codes any operation may answer: ``bad-json`` (400: not JSON, nested "
    "more than 32 levels, NaN, a number beyond float range or 4300 digits, NUL or an "
    "unpaired surrogate in any string: RFC 7493 §2.1), ``bad-request`` (400: a field "
    "missing, of the wrong type, an integer beyond ±(2^53 - 1), a URL that is not "
    "http(s) or holds a control character, NUL in a query parameter), ``too-large`` (400 for a JSON body over 64 KiB, 413 for a "
    "calendar over 10 MB), ``invalid-time`` (400: see the instants' description), "
    "``invalid-name`` (400: a title or name that is empty, over 200 characters or not "
    "one line), ``invalid-alias`` (400: the same for a room's alias), ``invalid-email``, "
    "``unknown-timezone`` (400: not an IANA zone, e.g. ``../../etc/passwd``), "
    "``not-found`` (404, also for an id in the path holding a control character), "
    "``conflict`` and ``duplicate`` (409), ``unauthorised`` (401), ``internal`` (500, "
    "never expected: a bug)."
)
COUNT: Schema = {"type": "integer", "minimum": 0}
ICE_POLICY: Schema = {
    "type": "string",
    "enum": list(ICE_POLICIES),
    "description": "relay: the room's agent uses only TURN relay candidates "
    "(``invalid-ice-policy`` otherwise); applies from its next connection.",
}
SMALL_UPLINK: Schema = {
    "type": "boolean",
    "description": "The room's uplink is small: its sessions always run on the SFU "
    "(when the deployment has one), where it uploads one stream whatever the number "
    "of sites; applies from the session's next transition.",
}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "description": "Every refusal: a stable ``code`` and a human ``message``.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "examples": ["not-found"],
                        "description": ERROR_CODES,
                    },
                    "message": {"type": "string"},
                    "conflicts": {
                        "type": "array",
                        "description": "With code ``conflict``: which room, which booking.",
                        "items": ref("Conflict"),
                    },
                },
            }
        },
    },
    "Conflict": {
        "type": "object",
        "required": ["room_id", "booking_id", "session_id", "start", "end"],
        "properties": {
            "room_id": ID,
            "booking_id": nullable(ID),
            "session_id": nullable(ID),
            "start": INSTANT,
            "end": INSTANT,
        },
    },
    "Centre": {
        "type": "object",
        "required": ["id", "name", "timezone"],
        "properties": {
            "id": ID,
            "name": {"type": "string"},
            "timezone": {"type": "string", "description": "IANA time zone of the centre."},
        },
    },
    "NewCentre": {
        "type": "object",
        "required": ["name", "timezone"],
        "properties": {
            "name": {**NAME, "examples": ["Fontainebleau"]},
            "timezone": {
                "type": "string",
                "description": "IANA time zone; an unknown one is ``unknown-timezone``.",
                "examples": ["Europe/Paris"],
            },
        },
    },
    "Room": {
        "type": "object",
        "required": [
            "id",
            "centre_id",
            "name",
            "key_generation",
            "online",
            "buffer_seconds",
            "max_duration_seconds",
            "max_advance_days",
            "aliases",
            "ice_policy",
            "small_uplink",
            "readiness",
        ],
        "properties": {
            "id": ID,
            "centre_id": ID,
            "name": {"type": "string"},
            "key_generation": {"type": "integer", "minimum": 1},
            "online": {"type": "boolean", "description": "The room's agent is connected."},
            "buffer_seconds": nullable(COUNT),
            "max_duration_seconds": nullable(COUNT),
            "max_advance_days": nullable(COUNT),
            "aliases": {"type": "array", "items": {"type": "string"}},
            "ice_policy": ICE_POLICY,
            "small_uplink": SMALL_UPLINK,
            "readiness": nullable(
                {**ref("Readiness"), "description": "The room's latest readiness check."}
            ),
        },
    },
    "ReadinessCheck": {
        "type": "object",
        "required": ["name", "ok", "detail"],
        "properties": {
            "name": {
                "type": "string",
                "description": (
                    "``camera``, ``microphone``, ``signalling``, ``turn`` or ``clock``"
                    " (newer agents may add others)."
                ),
                "examples": ["camera"],
            },
            "ok": {"type": "boolean"},
            "detail": {"type": "string", "description": "What the agent saw."},
        },
    },
    "Readiness": {
        "type": "object",
        "description": (
            "A readiness check a room agent ran on itself (before each session, and when "
            "it connects)."
        ),
        "required": ["ok", "checked_at", "received_at", "session_id", "failing", "checks"],
        "properties": {
            "ok": {"type": "boolean", "description": "Every check passed."},
            "checked_at": {**INSTANT, "description": "When the agent ran it."},
            "received_at": {**INSTANT, "description": "When the service received it."},
            "session_id": nullable(
                {**ID, "description": "The session it was run for; null at connection."}
            ),
            "failing": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The names of the checks that failed.",
            },
            "checks": {"type": "array", "items": ref("ReadinessCheck")},
        },
    },
    "SessionReadiness": {
        "allOf": [ref("Readiness")],
        "type": "object",
        "required": ["alerts"],
        "properties": {
            "alerts": {
                **COUNT,
                "description": "Failure alerts sent to the staff of the room's centre.",
            }
        },
    },
    "MediaPeer": {
        "type": "object",
        "description": (
            "What a room received from one remote peer over the agent's last reporting "
            "period (docs/protocol.md, MediaStats); null when not measured."
        ),
        "required": ["peer_id"],
        "properties": {
            "peer_id": {"type": "string"},
            "fps": {"type": "number"},
            "latency_p50_ms": nullable({"type": "number"}),
            "latency_p95_ms": nullable({"type": "number"}),
            "freezes": COUNT,
            "live": {"type": "boolean"},
            "audio_level": {"type": "number"},
            "bitrate_in_kbps": nullable({"type": "number"}),
            "bitrate_out_kbps": nullable({"type": "number"}),
            "rtt_ms": nullable({"type": "number"}),
            "jitter_ms": nullable({"type": "number"}),
            "packets_lost": nullable({"type": "integer"}),
            "loss_fraction": nullable({"type": "number"}),
            "local_candidate": nullable({"enum": ["host", "srflx", "prflx", "relay"]}),
            "remote_candidate": nullable({"enum": ["host", "srflx", "prflx", "relay"]}),
        },
    },
    "RoomHealth": {
        "type": "object",
        "required": ["room_id", "online", "readiness", "media"],
        "properties": {
            "room_id": ID,
            "online": {"type": "boolean"},
            "readiness": nullable(ref("Readiness")),
            "media": nullable(
                {
                    "type": "object",
                    "description": "The agent's latest stats report (kept in memory).",
                    "required": ["session_id", "at", "process", "peers"],
                    "properties": {
                        "session_id": ID,
                        "at": nullable(INSTANT),
                        "process": nullable(
                            {
                                "type": "object",
                                "description": "The agent's own process.",
                                "required": ["cpu_percent", "rss_bytes"],
                                "properties": {
                                    "cpu_percent": {
                                        "type": "number",
                                        "description": "Percent of one core.",
                                    },
                                    "rss_bytes": nullable({"type": "integer"}),
                                },
                            }
                        ),
                        "peers": {"type": "array", "items": ref("MediaPeer")},
                    },
                }
            ),
        },
    },
    "NewRoom": {
        "type": "object",
        "required": ["centre_id", "name"],
        "properties": {
            "centre_id": ID,
            "name": {**NAME, "examples": ["Salle Bleue"]},
        },
    },
    "CreatedRoom": {
        "allOf": [ref("Room")],
        "type": "object",
        "required": ["key"],
        "properties": {
            "key": {"type": "string", "description": "The room key, shown once."},
        },
    },
    "RoomPolicy": {
        "type": "object",
        "description": "Only the fields given change; they apply to bookings made from now on.",
        "properties": {
            "buffer_seconds": {"type": "integer", "minimum": 0, "maximum": 14400},
            "max_duration_seconds": {"type": "integer", "minimum": 300, "maximum": 31622400},
            "max_advance_days": {"type": "integer", "minimum": 1, "maximum": 1095},
            "ice_policy": ICE_POLICY,
            "small_uplink": SMALL_UPLINK,
            "aliases": {
                "type": "array",
                "description": (
                    "Other names calendars use for the room, each one line of at most "
                    "200 characters (``invalid-alias`` otherwise)."
                ),
                "items": {"type": "string", "maxLength": 200},
            },
        },
    },
    "RoomKey": {
        "type": "object",
        "required": ["room_id", "key"],
        "properties": {
            "room_id": ID,
            "key": {"type": "string", "description": "The new room key, shown once."},
        },
    },
    "Booking": {
        "type": "object",
        "required": [
            "id",
            "title",
            "start",
            "end",
            "start_local",
            "end_local",
            "timezone",
            "lead_seconds",
            "connect_mode",
        ],
        "properties": {
            "id": ID,
            "title": {"type": "string"},
            "start": nullable(INSTANT),
            "end": nullable(INSTANT),
            "start_local": {
                "type": "string",
                "description": "Wall-clock start in ``timezone`` (ISO 8601, no offset).",
            },
            "end_local": {"type": "string"},
            "timezone": {"type": "string"},
            "lead_seconds": COUNT,
            "connect_mode": {
                "type": "string",
                "enum": list(CONNECT_MODE_NAMES),
            },
        },
    },
    "NewBooking": {
        "type": "object",
        "required": ["title", "start", "end", "room_ids"],
        "properties": {
            "title": {**NAME, "examples": ["Delegation meeting"]},
            "start": INSTANT_IN,
            "end": INSTANT_IN,
            "room_ids": {"type": "array", "items": ID, "minItems": 1},
            "lead_seconds": {
                "type": "integer",
                "minimum": 0,
                "maximum": 3600,
                "default": 60,
                "description": "How long before the start the rooms connect.",
            },
            "rrule": {
                "type": "string",
                "description": "An RFC 5545 RRULE value, expanded in ``timezone``.",
                "examples": ["FREQ=WEEKLY;COUNT=4"],
            },
            "on_conflict": {"type": "string", "enum": ["reject", "skip"], "default": "reject"},
            "connect_mode": {
                "type": "string",
                "enum": [*CONNECT_MODE_NAMES, MANUAL],
                "default": AUTOMATIC,
            },
            "timezone": {
                "type": "string",
                "description": "Zone of the recurrence; by default the first room's centre's.",
            },
        },
    },
    "CreatedBooking": {
        "type": "object",
        "required": ["booking", "session_id", "session_ids", "skipped"],
        "properties": {
            "booking": ref("Booking"),
            "session_id": nullable(ID),
            "session_ids": {"type": "array", "items": ID},
            "skipped": {
                "type": "array",
                "description": "Dates left out with ``on_conflict: skip``.",
                "items": {"type": "string"},
            },
        },
    },
    "Session": {
        "type": "object",
        "required": ["id", "booking_id", "start", "end", "state", "lead_seconds"],
        "properties": {
            "id": ID,
            "booking_id": ID,
            "start": nullable(INSTANT),
            "end": nullable(INSTANT),
            "state": {"type": "string", "examples": ["scheduled", "live", "ended"]},
            "lead_seconds": COUNT,
            "failure": nullable(
                {
                    "type": "string",
                    "description": "Why a failed session failed: ``room-not-held`` (a room"
                    " did not hold its slot, so it could not connect), ``unschedulable``.",
                    "examples": ["room-not-held"],
                }
            ),
        },
    },
    "SessionDetail": {
        "type": "object",
        "required": [
            "id",
            "booking_id",
            "title",
            "start",
            "end",
            "lead_seconds",
            "state",
            "connect_mode",
            "transitions",
            "rooms",
        ],
        "properties": {
            "id": ID,
            "booking_id": ID,
            "title": {"type": "string"},
            "start": nullable(INSTANT),
            "end": nullable(INSTANT),
            "lead_seconds": COUNT,
            "state": {"type": "string"},
            "connect_mode": {"type": "string"},
            "transitions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["seq", "state", "at"],
                    "properties": {
                        "seq": {"type": "integer"},
                        "state": {"type": "string"},
                        "at": nullable(INSTANT),
                    },
                },
            },
            "rooms": {"type": "array", "items": ref("Participation")},
        },
    },
    "Participation": {
        "type": "object",
        "description": "One room's record in a session (the CDR).",
        "required": [
            "room_id",
            "name",
            "centre_id",
            "joined_at",
            "first_frame_at",
            "live_at",
            "left_at",
            "released_at",
            "rejoins",
            "media",
            "readiness",
        ],
        "properties": {
            "room_id": ID,
            "name": {"type": "string"},
            "centre_id": ID,
            "joined_at": nullable(INSTANT),
            "first_frame_at": nullable(INSTANT),
            "live_at": nullable(INSTANT),
            "left_at": nullable(INSTANT),
            "released_at": nullable(
                {**INSTANT, "description": "Released after nobody joined (no-show)."}
            ),
            "rejoins": COUNT,
            "media": {
                "type": "object",
                "description": (
                    "The summary of the room's media reports (docs/protocol.md, stats): "
                    "fps_latest, fps_mean, latency_p50_ms_max, freezes_total, "
                    "bitrate_in_kbps_mean/_max, bitrate_out_kbps_mean/_max, rtt_ms_mean/_max, "
                    "jitter_ms_mean/_max, packets_lost_total, loss_fraction_max, "
                    "cpu_percent_mean/_max, rss_bytes_latest/_max."
                ),
            },
            "readiness": nullable(
                {
                    **ref("SessionReadiness"),
                    "description": "The room's latest readiness check for this session.",
                }
            ),
        },
    },
    "ImportReport": {
        "type": "object",
        "required": [
            "created",
            "updated",
            "unchanged",
            "cancelled",
            "skipped",
            "conflicts",
            "held_back",
            "warnings",
        ],
        "properties": {
            "created": COUNT,
            "updated": COUNT,
            "unchanged": COUNT,
            "cancelled": COUNT,
            "skipped": {"type": "array", "items": ref("Skip")},
            "warnings": {
                "type": "array",
                "items": ref("ImportWarning"),
                "description": "Events imported after a lenient reading.",
            },
            "conflicts": {"type": "array", "items": ref("ImportConflict")},
            "held_back": nullable(
                {
                    "type": "object",
                    "description": "The import was held back (e.g. it would cancel most series).",
                    "required": ["code", "reason"],
                    "properties": {"code": {"type": "string"}, "reason": {"type": "string"}},
                }
            ),
        },
    },
    "ImportConflict": {
        "type": "object",
        "description": "An occurrence left out because a room was taken.",
        "required": [
            "code",
            "uid",
            "room_id",
            "booking_id",
            "session_id",
            "recurrence_id",
            "start",
            "end",
        ],
        "properties": {
            "code": {
                "type": "string",
                "enum": ["conflict"],
                "description": "The code a booking door refuses a taken room with.",
            },
            "uid": {"type": "string", "description": "The imported event's UID."},
            "room_id": ID,
            "booking_id": nullable(
                {
                    **ID,
                    "description": "The booking holding the room; null when an earlier "
                    "occurrence of the same event does.",
                }
            ),
            "session_id": nullable(ID),
            "recurrence_id": INSTANT,
            "start": INSTANT,
            "end": INSTANT,
        },
    },
    "ImportWarning": {
        "type": "object",
        "required": ["uid", "code", "message"],
        "properties": {
            "uid": nullable({"type": "string"}),
            "code": {
                "type": "string",
                "description": "lenient-rrule (spaces around an RRULE's separators) or "
                "made-up-title (no SUMMARY).",
            },
            "message": {"type": "string"},
        },
    },
    "Skip": {
        "type": "object",
        "required": ["uid", "code", "reason"],
        "properties": {
            "uid": nullable({"type": "string"}),
            "code": {"type": "string"},
            "reason": {"type": "string"},
        },
    },
    "SyncReport": {
        "type": "object",
        "required": ["pulled", "pushed", "deleted", "conflicts", "imported", "error"],
        "properties": {
            "pulled": COUNT,
            "pushed": COUNT,
            "deleted": COUNT,
            "conflicts": {"type": "array", "items": {"type": "string"}},
            "imported": ref("ImportReport"),
            "error": nullable(
                {"type": "string", "description": "The CalDAV error code of a failed pass."}
            ),
        },
    },
    "Feed": {
        "type": "object",
        "required": ["id", "url", "room_id", "interval_seconds", "last_polled_at", "last_status"],
        "properties": {
            "id": ID,
            "url": {"type": "string"},
            "room_id": nullable(ID),
            "interval_seconds": {"type": "integer", "minimum": 60},
            "last_polled_at": nullable(INSTANT),
            "last_status": nullable({"type": "object"}),
        },
    },
    "NewFeed": {
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": {
                "type": "string",
                "pattern": "^(https?|webcal)://",
                "maxLength": 2000,
                "description": (
                    "An http(s) or webcal URL (webcal is fetched over https), without "
                    "space or control character (``bad-request`` otherwise)."
                ),
                "examples": ["https://calendar.example.org/room.ics"],
            },
            "room_id": nullable({**ID, "description": "Events without a room name go here."}),
            "interval_seconds": {
                "type": "integer",
                "minimum": 60,
                "maximum": 604800,
                "default": 300,
            },
        },
    },
    "NewCalDavLink": {
        "type": "object",
        "required": ["room_id", "calendar_url"],
        "properties": {
            "room_id": ID,
            "calendar_url": {
                "type": "string",
                "pattern": "^https?://",
                "maxLength": 2000,
                "description": "An http(s) URL without space or control character.",
                "examples": ["https://dav.example.org/calendars/room/"],
            },
            "username": nullable({"type": "string", "maxLength": 1000}),
            "password": nullable({"type": "string", "maxLength": 1000, "writeOnly": True}),
        },
    },
    "CalDavLink": {
        "type": "object",
        "required": ["id", "room_id", "calendar_url"],
        "properties": {"id": ID, "room_id": ID, "calendar_url": {"type": "string"}},
    },
    "PanelLink": {
        "type": "object",
        "required": ["room_id", "url"],
        "properties": {
            "room_id": ID,
            "url": {
                "type": "string",
                "description": "The room panel's page; its secret token is the credential.",
            },
        },
    },
    "CalendarToken": {
        "type": "object",
        "required": ["id", "token", "url", "freebusy_url"],
        "properties": {
            "id": ID,
            "token": {"type": "string", "description": "The secret, shown once."},
            "url": {"type": "string", "description": "The iCalendar feed (subscribe to it)."},
            "freebusy_url": {"type": "string", "description": "VFREEBUSY of the next days."},
        },
    },
}


def _list_of(key: str, item: str) -> Schema:
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": ref(item)}},
    }


def json_body(schema: Schema, description: str = "") -> dict[str, Any]:
    return {"description": description or "OK", "content": {JSON: {"schema": schema}}}


ERROR = {"$ref": "#/components/responses/Error"}
CALENDAR_BODY: dict[str, Any] = {
    "description": "An iCalendar document (RFC 5545), UTF-8.",
    "content": {CALENDAR: {"schema": {"type": "string"}}},
}


def operation(
    summary: str,
    responses: dict[str, Any],
    *,
    errors: tuple[int, ...] = (),
    body: Schema | None = None,
    body_type: str = JSON,
    query: tuple[dict[str, Any], ...] = (),
    description: str = "",
    public: bool = False,
) -> dict[str, Any]:
    """One operation; the 401 of the bearer token is added unless ``public``."""
    statuses = set(errors) | ({400} if body is not None else set())
    if not public:
        statuses.add(401)
    op: dict[str, Any] = {"summary": summary, "responses": dict(responses)}
    if description:
        op["description"] = description
    for status in sorted(statuses):
        op["responses"][str(status)] = ERROR
    if body is not None:
        op["requestBody"] = {"required": True, "content": {body_type: {"schema": body}}}
    if query:
        op["parameters"] = list(query)
    if public:
        op["security"] = []
    return op


def query_param(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", OPENAPI_PATH): operation(
        "This document",
        {"200": json_body({"type": "object"}, "The OpenAPI document")},
        public=True,
    ),
    ("GET", API + "/centres"): operation(
        "List the centres", {"200": json_body(_list_of("centres", "Centre"))}
    ),
    ("POST", API + "/centres"): operation(
        "Add a centre",
        {"201": json_body(ref("Centre"), "Created")},
        body=ref("NewCentre"),
        errors=(409,),
    ),
    ("GET", API + "/rooms"): operation(
        "List the rooms, with whether each is online and its latest readiness check",
        {"200": json_body(_list_of("rooms", "Room"))},
    ),
    ("POST", API + "/rooms"): operation(
        "Add a room to a centre",
        {"201": json_body(ref("CreatedRoom"), "Created; the key is shown once")},
        body=ref("NewRoom"),
        errors=(404, 409),
    ),
    ("PATCH", API + "/rooms/{room_id}"): operation(
        "Change a room's booking policy and aliases",
        {"200": json_body(ref("Room"))},
        body=ref("RoomPolicy"),
        errors=(404,),
    ),
    ("GET", API + "/rooms/{room_id}/health"): operation(
        "The room's latest readiness check, media figures and agent CPU and memory",
        {"200": json_body(ref("RoomHealth"))},
        errors=(404,),
    ),
    ("POST", API + "/rooms/{room_id}/rotate-key"): operation(
        "Give the room a new key (the old one stops working)",
        {"200": json_body(ref("RoomKey"))},
        errors=(404,),
    ),
    ("POST", API + "/rooms/{room_id}/calendar-token"): operation(
        "A secret feed URL for the room's calendar",
        {"201": json_body(ref("CalendarToken"), "Created; the token is shown once")},
        errors=(404,),
    ),
    ("POST", API + "/rooms/{room_id}/panel-token"): operation(
        "A link for the room's panel (tablet beside the screen); earlier links keep working",
        {"201": json_body(ref("PanelLink"), "Created; the link is shown once")},
        errors=(404,),
    ),
    ("POST", API + "/centres/{centre_id}/calendar-token"): operation(
        "A secret feed URL for every room of the centre",
        {"201": json_body(ref("CalendarToken"), "Created; the token is shown once")},
        errors=(404,),
    ),
    ("DELETE", API + "/calendar-tokens/{token_id}"): operation(
        "Revoke a calendar token",
        {"204": {"description": "Revoked"}},
        errors=(404,),
    ),
    ("GET", API + "/bookings"): operation(
        "List the bookings", {"200": json_body(_list_of("bookings", "Booking"))}
    ),
    ("POST", API + "/bookings"): operation(
        "Book rooms, once or recurring",
        {"201": json_body(ref("CreatedBooking"), "Created")},
        body=ref("NewBooking"),
        errors=(404, 409),
        description=(
            "Every door (this API, the form, ``telecentre book``, calendar imports) applies "
            "the same rules with the same codes: ``past`` (400: the first meeting has "
            "ended), ``too-long`` (400: over a room's maximum duration), "
            "``too-far-ahead`` (400: beyond a room's booking window), ``too-few-rooms`` "
            "(400), ``unknown-room`` (404). A conflict is ``409 conflict`` with the "
            "conflicting rooms and bookings; with ``on_conflict: skip`` the conflicting "
            "dates are left out and listed."
        ),
    ),
    ("GET", API + "/bookings/{booking_id}/invitation.ics"): operation(
        "The invitation (or cancellation) of a booking as iCalendar",
        {"200": CALENDAR_BODY},
        errors=(400, 404),
        query=(
            query_param(
                "method",
                {"type": "string", "enum": ["request", "cancel"], "default": "request"},
                "METHOD:REQUEST or METHOD:CANCEL.",
            ),
            query_param(
                "occurrence",
                INSTANT_IN,
                "With method=cancel: cancel this one occurrence.",
            ),
            query_param(
                "join",
                {"type": "string", "pattern": "^https?://", "maxLength": 2000},
                "The join link written into the invitation.",
            ),
            query_param(
                "sequence",
                {"type": "integer", "minimum": 0, "maximum": 999999999},
                "The SEQUENCE of an update.",
            ),
        ),
    ),
    ("GET", API + "/sessions"): operation(
        "List the sessions, optionally in a window",
        {"200": json_body(_list_of("sessions", "Session"))},
        errors=(400,),
        query=(
            query_param("from", INSTANT_IN, "Sessions ending after this instant."),
            query_param("to", INSTANT_IN, "Sessions starting before this instant."),
        ),
    ),
    ("GET", API + "/sessions/{session_id}"): operation(
        "A session with its transitions and each room's record",
        {"200": json_body(ref("SessionDetail"))},
        errors=(404,),
    ),
    ("POST", API + "/calendars/import"): operation(
        "Import an iCalendar file",
        {"200": json_body(ref("ImportReport"))},
        body={"type": "string", "description": "An iCalendar file (at most 10 MB)."},
        body_type=CALENDAR,
        errors=(404, 409, 413),
        query=(
            {
                "name": "room_id",
                "in": "query",
                "required": False,
                "schema": {"type": "array", "items": ID},
                "style": "form",
                "explode": True,
                "description": "The rooms booked (repeatable); by default the rooms the events name.",
            },
            query_param(
                "name", {"type": "string"}, "A name for the source (re-imports update it)."
            ),
        ),
    ),
    ("GET", API + "/feeds"): operation(
        "List the calendar feeds polled", {"200": json_body(_list_of("feeds", "Feed"))}
    ),
    ("POST", API + "/feeds"): operation(
        "Poll a calendar feed",
        {"201": json_body(ref("Feed"), "Created")},
        body=ref("NewFeed"),
        errors=(404,),
    ),
    ("POST", API + "/caldav-links"): operation(
        "Link a room to a CalDAV calendar (two-way sync)",
        {"201": json_body(ref("CalDavLink"), "Created")},
        body=ref("NewCalDavLink"),
        errors=(404,),
    ),
    ("POST", API + "/caldav-links/{link_id}/sync"): operation(
        "Sync a CalDAV link now",
        {"200": json_body(ref("SyncReport"))},
        errors=(404,),
    ),
}

PATH_PARAMETERS: dict[str, str] = {
    "room_id": "A room's id.",
    "centre_id": "A centre's id.",
    "booking_id": "A booking's id.",
    "session_id": "A session's id.",
    "token_id": "A calendar token's id (not the secret).",
    "link_id": "A CalDAV link's id.",
}


def path_template(route: web.AbstractRoute) -> str:
    """The route's path with its parameters named and their patterns dropped."""
    return _PARAM.sub(r"{\1}", route.resource.canonical) if route.resource else ""


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    """Every (method, path template) the router serves under /api/v1."""
    found = set()
    for route in app.router.routes():
        path = path_template(route)
        if path.startswith(API + "/") and route.method not in HIDDEN_METHODS:
            found.add((route.method, path))
    return found


def undocumented(app: web.Application) -> set[tuple[str, str]]:
    return api_routes(app) - OPERATIONS.keys()


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": ID,
            "description": PATH_PARAMETERS.get(name, ""),
        }
        for name in _PARAM.findall(path)
    ]


def build_document(app: web.Application) -> dict[str, Any]:
    """The document for the routes this application serves (documented ones only)."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path in sorted(api_routes(app) & OPERATIONS.keys()):
        op = dict(OPERATIONS[(method, path)])
        op["operationId"] = _operation_id(method, path)
        op["parameters"] = _path_parameters(path) + list(op.get("parameters", []))
        if not op["parameters"]:
            del op["parameters"]
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "telecentre",
            "version": VERSION,
            "description": (
                "Centres, rooms, bookings across centres, sessions and calendars. Every "
                'call needs an admin bearer token (`telecentre token create`); every error is `{"error": '
                '{"code", "message"}}` with a stable code.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": {
                "Error": {
                    "description": "Refused, with a stable error code",
                    "content": {JSON: {"schema": ref("Error")}},
                }
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin API token.",
                }
            },
        },
        "security": [{"bearer": []}],
    }


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[{}]", "", path.removeprefix(API + "/")).replace(".", "-")
    return method.lower() + "-" + re.sub(r"[^A-Za-z0-9]+", "-", words).strip("-")


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(build_document(request.app))
