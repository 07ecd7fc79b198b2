import factory

from accounts.models import ExternalApiAccount, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"player{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.test")

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or "correct-horse-battery-staple")
        if create:
            self.save(update_fields=["password"])


class ExternalApiAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExternalApiAccount

    user = factory.SubFactory(UserFactory)
    external_user_id = factory.Sequence(lambda n: str(5000 + n))
    secret = factory.Sequence(lambda n: f"provider-secret-{n:04d}")
    link_reason = "test"
