"""The back-office dashboard: today's betting figures, the provider's health as
the API log saw it, what needs staff, and bets per hour over the last day.

``dashboard_figures`` reads everything in a fixed number of queries whatever the
data size; ``hourly_chart`` turns the hours into SVG bar geometry, so the page
draws its chart with no script (the content security policy allows none inline).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

from auditlog.selectors import ProviderCallStats, provider_call_stats
from betting.selectors import (
    balances_with_discrepancy,
    bets_per_hour,
    bets_settled_since,
    open_bet_counts,
)
from betting_site.money import ZERO

CHART_HOURS = 24


@dataclass(frozen=True)
class HourCount:
    start: datetime  # UTC, on the hour
    count: int


@dataclass(frozen=True)
class DashboardFigures:
    generated_at: datetime
    today_start: datetime
    bets_today: int
    volume_today: Decimal
    settled_today: int
    won_today: int
    pending: int
    unknown: int
    discrepancies: int
    provider_last_hour: ProviderCallStats
    provider_last_day: ProviderCallStats
    hours: tuple[HourCount, ...]  # the last CHART_HOURS hours, oldest first

    @property
    def win_rate(self) -> Decimal | None:
        """Won share of today's settled bets in percent (one decimal)."""
        if not self.settled_today:
            return None
        rate = Decimal(100 * self.won_today) / self.settled_today
        return rate.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)

    @property
    def provider_windows(self) -> tuple[tuple[str, ProviderCallStats], ...]:
        return (
            ("Last hour", self.provider_last_hour),
            ("Last 24 hours", self.provider_last_day),
        )


def dashboard_figures(*, now: datetime | None = None) -> DashboardFigures:
    """Every dashboard figure as of ``now`` (default: the current time); "today"
    starts at midnight in the current time zone."""
    now = now or timezone.now()
    today_start = timezone.localtime(now).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    current_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    first_hour = current_hour - timedelta(hours=CHART_HOURS - 1)
    # The chart's window starts before midnight, so it holds all of today's bets.
    since = min(first_hour, today_start)
    rows = bets_per_hour(since=since, today_start=today_start)
    per_hour = {row["hour"]: row["count"] for row in rows}
    settled = bets_settled_since(since=today_start)
    open_bets = open_bet_counts()
    return DashboardFigures(
        generated_at=now,
        today_start=today_start,
        bets_today=sum(row["today"] for row in rows),
        volume_today=sum((row["today_volume"] or ZERO for row in rows), ZERO),
        settled_today=settled["settled"],
        won_today=settled["won"],
        pending=open_bets.get("pending", 0),
        unknown=open_bets.get("unknown", 0),
        discrepancies=balances_with_discrepancy().count(),
        provider_last_hour=provider_call_stats(since=now - timedelta(hours=1)),
        provider_last_day=provider_call_stats(since=now - timedelta(days=1)),
        hours=tuple(
            HourCount(start=hour, count=per_hour.get(hour, 0))
            for hour in (first_hour + timedelta(hours=n) for n in range(CHART_HOURS))
        ),
    )


# --- the chart ------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    start: datetime
    count: int
    x: int
    y: int
    width: int
    height: int
    label: bool  # whether the hour is written under the bar


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: int  # y of the axis
    bars: tuple[Bar, ...]
    peak: int  # the tallest bar's count


def hourly_chart(
    hours: tuple[HourCount, ...],
    *,
    bar_width: int = 20,
    gap: int = 4,
    plot_height: int = 120,
    label_every: int = 3,
) -> Chart:
    """SVG geometry of one bar per hour, scaled to the busiest hour (a bar of at
    least one pixel for any hour with bets); every ``label_every``-th hour, and
    the last, get a label."""
    peak = max((hour.count for hour in hours), default=0)
    top = 8  # room above the tallest bar
    baseline = top + plot_height
    bars = []
    for index, hour in enumerate(hours):
        height = round(plot_height * hour.count / peak) if peak else 0
        if hour.count and not height:
            height = 1
        bars.append(
            Bar(
                start=hour.start,
                count=hour.count,
                x=gap + index * (bar_width + gap),
                y=baseline - height,
                width=bar_width,
                height=height,
                label=index % label_every == 0 or index == len(hours) - 1,
            )
        )
    return Chart(
        width=gap + len(hours) * (bar_width + gap),
        height=baseline + 20,  # the labels under the axis
        baseline=baseline,
        bars=tuple(bars),
        peak=peak,
    )
