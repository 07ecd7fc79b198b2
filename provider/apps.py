from django.apps import AppConfig


class ProviderConfig(AppConfig):
    name = "provider"
    verbose_name = "Betting provider"

    def ready(self) -> None:
        from auditlog.selectors import outbound_endpoints_register
        from provider import policy

        outbound_endpoints_register(
            call.path for call in vars(policy).values() if isinstance(call, policy.Call)
        )
