"""Template tags of the back office (templates/admin/)."""

from django import template

from betting_site.dashboard import dashboard_figures, hourly_chart

register = template.Library()

# What each dashboard section shows, and the permission needed to see it.
SECTION_PERMISSIONS = {
    "bets": "betting.view_bet",
    "provider": "auditlog.view_apilog",
    "balances": "wallet.view_userbalance",
}


@register.simple_tag(takes_context=True)
def admin_dashboard(context) -> dict | None:
    """The dashboard's figures and chart for the admin index, or None for staff
    who may see none of its sections."""
    user = context["request"].user
    sections = {
        name: user.has_perm(permission)
        for name, permission in SECTION_PERMISSIONS.items()
    }
    if not any(sections.values()):
        return None
    figures = dashboard_figures()
    return {
        "figures": figures,
        "chart": hourly_chart(figures.hours),
        "show": sections,
    }
