from django.apps import AppConfig


class BettingSiteConfig(AppConfig):
    name = "betting_site"
    verbose_name = "Betting integration server"

    def ready(self) -> None:
        from betting_site import checks  # noqa: F401  (registers the system checks)
