"""The usage page: sessions, minutes and rooms used per centre and per month, as
server-drawn SVG bar charts with the same figures in tables, and a CSV export.

Routes (login required; any role: the figures name no booking):

- ``GET /usage?year=YYYY``: the page (default: the current year in the viewer's
  zone). A year that is not a number between 2000 and 2100 re-renders the page for
  the current year with the error ``invalid-year`` next to the chooser (400).
- ``GET /usage.csv?year=YYYY``: ``centre,month,sessions,minutes,rooms_used``, one
  row per centre and month (zeros included), UTF-8 without BOM, RFC 4180 (CRLF
  line ends, fields with commas, quotes or line breaks quoted, quotes doubled).

The counting rules are in ``orchestrator.reports.usage``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from aiohttp import web
from babel.dates import format_date

from orchestrator.db import DbSession
from orchestrator.people.accounts import Principal
from orchestrator.reports.usage import (
    UsageReport,
    aggregate,
    first_year,
    load_centres,
    load_sessions,
    year_window,
)
from web.keys import SERVICES
from web.ui.dashboard_state import viewer_zone
from web.ui.i18n import Formatter, with_colon
from web.ui.render import gettext, language, render
from web.ui.security import now_utc, require_user
from web.ui.usage_chart import Chart, bar_chart

MIN_YEAR, MAX_YEAR = 2000, 2100
MEASURES = ("sessions", "minutes", "rooms_used")
CSV_HEADER = ("centre", "month", "sessions", "minutes", "rooms_used")


class InvalidYear(ValueError):
    code = "invalid-year"


def parse_year(value: str | None) -> int | None:
    """The requested year, None when none was asked for; ``InvalidYear`` otherwise."""
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isdigit() or not MIN_YEAR <= int(text) <= MAX_YEAR:
        raise InvalidYear(text)
    return int(text)


@dataclass(frozen=True, slots=True)
class Loaded:
    report: UsageReport
    first_year: int | None
    current_year: int


async def load(request: web.Request, user: Principal, year: int | None) -> Loaded:
    now = now_utc(request)

    def run(s: DbSession) -> Loaded:
        centres = load_centres(s)
        zone = viewer_zone(user, {c.id: c.timezone for c in centres})
        current = now.astimezone(ZoneInfo(zone)).year
        chosen = year if year is not None else current
        since, until = year_window(chosen)
        report = aggregate(load_sessions(s, since, until), centres, chosen, now)
        return Loaded(report, first_year(s), current)

    return await request.app[SERVICES].db.run(run)


def csv_text(report: UsageReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_HEADER)
    for row in report.rows():
        writer.writerow((row.centre_name, row.label, row.sessions, row.minutes, row.rooms_used))
    return out.getvalue()


def charts(request: web.Request, report: UsageReport) -> list[tuple[str, str, Chart]]:
    """(measure, heading, chart) for each measure, labelled in the viewer's language."""
    lang = language(request)

    def _(message: str) -> str:
        return gettext(request, message)

    def number(value: int) -> str:
        return Formatter(lang).number(value, 0)

    short = [format_date(date(report.year, m, 1), "LLL", locale=lang) for m in range(1, 13)]
    full = [format_date(date(report.year, m, 1), "LLLL", locale=lang) for m in range(1, 13)]
    headings = {
        "sessions": _("Sessions"),
        "minutes": _("Minutes"),
        "rooms_used": _("Rooms used"),
    }
    out = []
    for measure in MEASURES:
        heading = headings[measure]
        series = [
            (c.centre.name, [int(getattr(m, measure)) for m in c.months]) for c in report.centres
        ]
        peak = max(
            ((value, name, month) for name, values in series for month, value in enumerate(values)),
            default=(0, "", 0),
        )
        if peak[0] > 0:
            highest = _("Highest: %(centre)s in %(month)s, %(value)s.") % {
                "centre": peak[1],
                "month": full[peak[2]],
                "value": number(peak[0]),
            }
        else:
            highest = _("No usage recorded this year.")
        description = " ".join(
            [
                _("Bar chart of %(measure)s per centre and month in %(year)s.")
                % {"measure": heading.lower(), "year": report.year},
                highest,
                _("The table beside the chart lists every value."),
            ]
        )
        out.append(
            (
                measure,
                heading,
                bar_chart(
                    chart_id=f"chart-{measure.replace('_', '-')}",
                    title=_("%(measure)s per month, %(year)s")
                    % {"measure": heading, "year": report.year},
                    description=description,
                    y_title=heading,
                    x_title=_("Month"),
                    series=series,
                    month_labels=short,
                    number=number,
                    bar_label=lambda name, month, value: (
                        f"{with_colon(_, f'{name}, {full[month]}')} {number(value)}"
                    ),
                ),
            )
        )
    return out


async def usage_page(request: web.Request) -> web.Response:
    user = require_user(request)
    error = None
    try:
        year = parse_year(request.query.get("year"))
    except InvalidYear:
        year = None
        error = gettext(request, "Choose a year between %(min)s and %(max)s.") % {
            "min": MIN_YEAR,
            "max": MAX_YEAR,
        }
    loaded = await load(request, user, year)
    report = loaded.report
    lang = language(request)
    first = min(loaded.first_year or loaded.current_year, loaded.current_year, report.year)
    years = list(range(max(loaded.current_year, report.year), first - 1, -1))
    months = [format_date(date(report.year, m, 1), "LLLL", locale=lang) for m in range(1, 13)]
    return render(
        request,
        "usage/page.html",
        status=400 if error else 200,
        report=report,
        charts=charts(request, report),
        years=years,
        months=months,
        error=error,
        entered=request.query.get("year", ""),
        number=lambda value: Formatter(lang).number(value, 0),
    )


async def usage_csv(request: web.Request) -> web.Response:
    user = require_user(request)
    try:
        year = parse_year(request.query.get("year"))
    except InvalidYear:
        return web.json_response(
            {
                "error": {
                    "code": InvalidYear.code,
                    "message": f"year is a number from {MIN_YEAR} to {MAX_YEAR}",
                }
            },
            status=400,
        )
    report = (await load(request, user, year)).report
    body = csv_text(report).encode("utf-8")
    return web.Response(
        body=body,
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="telecentre-usage-{report.year}.csv"',
            "Cache-Control": "no-store",
        },
    )


routes: list[web.AbstractRouteDef] = [
    web.get("/usage", usage_page),
    web.get("/usage.csv", usage_csv),
]
