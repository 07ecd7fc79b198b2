from django.apps import AppConfig


class BettingSiteConfig(AppConfig):
    name = "betting_site"
    verbose_name = "Betting integration server"

    def ready(self) -> None:
        from django.core.signals import got_request_exception

        from betting_site import checks  # noqa: F401  (registers the system checks)
        from betting_site.database import mark_if_unreachable

        got_request_exception.connect(
            mark_if_unreachable, dispatch_uid="betting_site.database_unreachable"
        )
