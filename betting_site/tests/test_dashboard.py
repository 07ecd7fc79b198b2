"""The staff dashboard on the admin index: its figures, their cost, the page."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.tests.factories import UserFactory
from betting_site.dashboard import (
    CHART_HOURS,
    HourCount,
    dashboard_figures,
    hourly_chart,
)
from betting_site.tests.backoffice_data import bet, make_backoffice_data, provider_call

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 10, 14, 30, tzinfo=UTC)


@pytest.fixture
def data():
    return make_backoffice_data(NOW)


def test_figures_count_today_settled_open_and_discrepant_balances(data):
    figures = dashboard_figures(now=NOW)

    assert figures.today_start == datetime(2026, 5, 10, tzinfo=UTC)
    assert figures.bets_today == 3  # the bet settled today but placed yesterday
    assert figures.volume_today == Decimal("6.50")  # is not counted; the old one
    assert isinstance(figures.volume_today, Decimal)  # neither
    assert figures.settled_today == 3
    assert figures.won_today == 2
    assert figures.win_rate == Decimal("66.7")
    assert (figures.pending, figures.unknown) == (1, 1)
    assert figures.discrepancies == 1  # alice; carol's bet is open


def test_provider_figures_count_outbound_attempts_only_in_their_window(data):
    figures = dashboard_figures(now=NOW)

    hour = figures.provider_last_hour
    assert (hour.calls, hour.failed) == (5, 1)
    assert hour.error_rate == 20
    assert hour.by_outcome == {"refused": 0, "unknown": 1, "unreachable": 0}
    assert hour.avg_ms == pytest.approx(220)
    assert (hour.p50_ms, hour.p95_ms) == (30, 1000)

    day = figures.provider_last_day
    assert (day.calls, day.failed) == (7, 2)
    assert day.by_outcome == {"refused": 1, "unknown": 1, "unreachable": 0}
    assert day.avg_ms == pytest.approx(1210 / 7)
    assert (day.p50_ms, day.p95_ms) == (40, 1000)
    assert day.failures_text == "1 refused, 1 unknown"


def test_hours_cover_the_last_day_oldest_first_with_empty_hours(data):
    figures = dashboard_figures(now=NOW)

    assert len(figures.hours) == CHART_HOURS
    assert figures.hours[0].start == datetime(2026, 5, 9, 15, tzinfo=UTC)
    assert figures.hours[-1].start == datetime(2026, 5, 10, 14, tzinfo=UTC)
    counts = {hour.start.hour: hour.count for hour in figures.hours if hour.count}
    # yesterday 18:30 (unknown), 23:30; today 08:05, 09:10, 14:00 (pending)
    assert counts == {18: 1, 23: 1, 8: 1, 9: 1, 14: 1}


def test_figures_of_an_empty_database_are_zero_and_undefined_rates():
    figures = dashboard_figures(now=NOW)

    assert figures.bets_today == 0
    assert figures.volume_today == Decimal("0")
    assert figures.win_rate is None
    assert figures.discrepancies == 0
    assert figures.provider_last_hour.calls == 0
    assert figures.provider_last_hour.error_rate is None
    assert figures.provider_last_hour.p95_ms is None
    assert all(hour.count == 0 for hour in figures.hours)


def test_a_call_without_status_or_with_a_non_2xx_status_counts_as_failed(data):
    provider_call(created_at=NOW - timedelta(minutes=2), duration_ms=5, status_code=503)
    hour = dashboard_figures(now=NOW).provider_last_hour
    assert (hour.calls, hour.failed) == (6, 2)


def test_figures_take_a_fixed_number_of_queries_whatever_the_data_size(
    data, django_assert_max_num_queries
):
    with django_assert_max_num_queries(10):
        dashboard_figures(now=NOW)
    for n in range(30):
        bet(
            data.players["erin"],
            amount="1",
            created_at=NOW - timedelta(minutes=n),
            win="0",
            completed_at=NOW - timedelta(minutes=n),
            external_bet_id=f"more-{n}",
        )
        provider_call(created_at=NOW - timedelta(minutes=n), duration_ms=n)
    with django_assert_max_num_queries(10):
        figures = dashboard_figures(now=NOW)
    assert figures.bets_today == 33


def test_chart_scales_bars_to_the_busiest_hour():
    start = datetime(2026, 5, 10, tzinfo=UTC)
    hours = tuple(
        HourCount(start=start + timedelta(hours=n), count=count)
        for n, count in enumerate([0, 1, 200, 100])
    )
    chart = hourly_chart(hours, bar_width=10, gap=2, plot_height=100, label_every=2)

    assert chart.peak == 200
    assert [bar.height for bar in chart.bars] == [0, 1, 100, 50]  # 1 bet: 1 px
    assert [bar.x for bar in chart.bars] == [2, 14, 26, 38]
    assert all(bar.y + bar.height == chart.baseline for bar in chart.bars)
    assert chart.width == 2 + 4 * 12
    assert [bar.label for bar in chart.bars] == [True, False, True, True]


# --- the page ---------------------------------------------------------------------


def dashboard_html(response) -> str:
    html = response.content.decode()
    start = html.index('<div id="backoffice-dashboard"')
    return html[start : html.index('<div id="content-main">', start)]


def test_staff_see_the_dashboard_above_the_app_list(
    client, boss, data, django_assert_max_num_queries
):
    with django_assert_max_num_queries(25):
        response = client.get(reverse("admin:index"))

    assert response.status_code == 200
    html = response.content.decode()
    assert html.index('id="backoffice-dashboard"') < html.index('id="content-main"')
    assert "backoffice/admin.css" in html
    section = dashboard_html(response)
    for title in (
        "Bets today",
        "Volume today",
        "Win rate today",
        "Pending bets",
        "Unknown bets",
        "Balance discrepancies",
        "Provider calls",
        "Bets per hour",
    ):
        assert title in section
    assert section.count('class="backoffice-bar"') == CHART_HOURS
    assert "?status__exact=pending" in section
    assert "?status__exact=unknown" in section
    assert "?provider=differs" in section
    assert "?direction__exact=outbound&amp;failed=yes" in section
    # the content security policy forbids inline styles and scripts
    assert not re.search(r"\sstyle=", section)
    assert "<script" not in section


def test_the_dashboard_page_is_served_under_the_strict_policy(client, boss):
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "style-src 'self'" in policy
    assert "unsafe-inline" not in policy


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_see_only_the_sections_they_may_view(client, data):
    clerk = UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_bet"))
    client.force_login(clerk)

    section = dashboard_html(client.get(reverse("admin:index")))

    assert "Bets today" in section
    assert "Balance discrepancies" not in section
    assert "Provider calls" not in section


def test_staff_without_any_of_the_permissions_see_no_dashboard(client, data):
    client.force_login(UserFactory(username="intern", is_staff=True))
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert "backoffice-dashboard" not in response.content.decode()
