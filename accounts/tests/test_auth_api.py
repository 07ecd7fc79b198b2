import time
from datetime import timedelta

import jwt
import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import RevokedSession
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def login(client, username, password):
    return client.post(
        "/api/auth/login", {"username": username, "password": password}, format="json"
    )


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def assert_envelope(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["error"]["requestId"] == response["X-Request-ID"]
    return body["error"]


class TestLogin:
    def test_login_returns_a_bearer_pair_and_updates_last_login(
        self, api_client, user, password
    ):
        assert user.last_login is None
        response = login(api_client, user.username, password)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"token", "refresh", "expiresIn", "tokenType"}
        assert body["tokenType"] == "Bearer"
        assert body["expiresIn"] == 15 * 60
        user.refresh_from_db()
        assert user.last_login is not None

    def test_unknown_user_and_wrong_password_look_the_same(
        self, api_client, user, password
    ):
        wrong_password = assert_envelope(
            login(api_client, user.username, "not-the-password"),
            401,
            "INVALID_CREDENTIALS",
        )
        unknown_user = assert_envelope(
            login(api_client, "nobody-here", password), 401, "INVALID_CREDENTIALS"
        )
        assert wrong_password["message"] == unknown_user["message"]
        assert wrong_password["details"] is None is unknown_user["details"]

    def test_inactive_user_cannot_log_in(self, api_client, user, password):
        user.is_active = False
        user.save()
        assert_envelope(
            login(api_client, user.username, password), 401, "INVALID_CREDENTIALS"
        )

    def test_missing_fields_are_a_validation_error_per_field(self, api_client):
        error = assert_envelope(
            api_client.post("/api/auth/login", {}, format="json"),
            400,
            "VALIDATION_ERROR",
        )
        assert set(error["details"]) == {"username", "password"}

    def test_trailing_slash_is_served_without_redirect(
        self, api_client, user, password
    ):
        response = api_client.post(
            "/api/auth/login/",
            {"username": user.username, "password": password},
            format="json",
        )
        assert response.status_code == 200


class TestTokens:
    def test_access_token_claims_pin_algorithm_issuer_and_audience(self, tokens):
        header = jwt.get_unverified_header(tokens["token"])
        claims = jwt.decode(tokens["token"], options={"verify_signature": False})
        assert header["alg"] == "HS256"
        assert claims["iss"] == "betting-api"
        assert claims["aud"] == "betting-client"
        assert claims["token_type"] == "access"
        assert claims["sid"]

    def test_me_with_a_valid_token(self, tokens, user):
        response = bearer(tokens["token"]).get("/api/auth/me")
        assert response.status_code == 200
        assert response.json() == {
            "id": user.pk,
            "username": user.username,
            "email": user.email,
            "is_admin": False,
            "last_login": response.json()["last_login"],
            "external_account": None,
        }
        assert response.json()["last_login"].endswith("Z")

    def test_me_shows_the_active_provider_link_only(self, tokens, user):
        from accounts.tests.factories import ExternalApiAccountFactory

        ExternalApiAccountFactory(user=user, external_user_id="77")
        body = bearer(tokens["token"]).get("/api/auth/me").json()
        assert body["external_account"] == {"external_user_id": "77", "is_active": True}

    def test_validate_answers_user_and_expiry(self, tokens, user):
        response = bearer(tokens["token"]).get("/api/auth/validate")
        assert response.status_code == 200
        body = response.json()
        assert body["valid"] is True
        assert body["user_id"] == user.pk
        claims = jwt.decode(tokens["token"], options={"verify_signature": False})
        assert body["expires_at"].endswith("Z")
        expires = timezone.datetime.fromisoformat(
            body["expires_at"].replace("Z", "+00:00")
        )
        assert int(expires.timestamp()) == claims["exp"]

    def test_validate_without_token_is_401(self, api_client):
        assert_envelope(api_client.get("/api/auth/validate"), 401, "UNAUTHORIZED")

    def test_missing_token_is_unauthorized(self, api_client):
        response = api_client.get("/api/auth/me")
        assert_envelope(response, 401, "UNAUTHORIZED")
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_refresh_token_is_refused_as_an_access_token(self, tokens):
        assert_envelope(
            bearer(tokens["refresh"]).get("/api/auth/me"), 401, "UNAUTHORIZED"
        )

    def test_access_token_is_refused_as_a_refresh_token(self, api_client, tokens):
        response = api_client.post(
            "/api/auth/refresh", {"refresh": tokens["token"]}, format="json"
        )
        assert_envelope(response, 401, "UNAUTHORIZED")

    def test_expired_access_token_is_refused(self, settings, tokens):
        claims = jwt.decode(tokens["token"], options={"verify_signature": False})
        claims["exp"] = int(time.time()) - 5
        expired = jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm="HS256")
        assert_envelope(bearer(expired).get("/api/auth/me"), 401, "UNAUTHORIZED")

    def test_tampered_token_is_refused(self, tokens):
        header, payload, signature = tokens["token"].split(".")
        flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
        assert_envelope(
            bearer(f"{header}.{payload}.{flipped}").get("/api/auth/me"),
            401,
            "UNAUTHORIZED",
        )

    def test_token_signed_with_another_key_is_refused(self, tokens):
        claims = jwt.decode(tokens["token"], options={"verify_signature": False})
        forged = jwt.encode(claims, "another-key-of-sufficient-length-000000", "HS256")
        assert_envelope(bearer(forged).get("/api/auth/me"), 401, "UNAUTHORIZED")

    def test_alg_none_is_refused(self, tokens):
        claims = jwt.decode(tokens["token"], options={"verify_signature": False})
        unsigned = jwt.encode(claims, key=None, algorithm="none")
        assert_envelope(bearer(unsigned).get("/api/auth/me"), 401, "UNAUTHORIZED")

    @pytest.mark.parametrize("claim", ["iss", "aud"])
    def test_wrong_issuer_or_audience_is_refused(self, settings, tokens, claim):
        claims = jwt.decode(tokens["token"], options={"verify_signature": False})
        claims[claim] = "someone-else"
        forged = jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm="HS256")
        assert_envelope(bearer(forged).get("/api/auth/me"), 401, "UNAUTHORIZED")

    def test_token_without_session_claim_is_refused(self, user):
        token = AccessToken.for_user(user)  # simplejwt's own token: no sid
        assert_envelope(bearer(str(token)).get("/api/auth/me"), 401, "UNAUTHORIZED")

    @pytest.mark.parametrize(
        "header",
        ["Bearer", "Bearer a b", "Bearer not-a-jwt", "Token abc", "Basic Zm9v"],
    )
    def test_malformed_authorization_headers_are_refused(self, api_client, header):
        api_client.credentials(HTTP_AUTHORIZATION=header)
        assert_envelope(api_client.get("/api/auth/me"), 401, "UNAUTHORIZED")

    @pytest.mark.parametrize("user_id", ["abc", "1.5", None])
    def test_a_signed_token_with_a_malformed_user_id_is_refused(self, user, user_id):
        token = AccessToken.for_user(user)
        token["sid"] = "some-session"
        token["user_id"] = user_id
        assert_envelope(bearer(str(token)).get("/api/auth/me"), 401, "UNAUTHORIZED")

    def test_the_user_query_names_the_models_tables(self):
        from accounts.callers import USER_SQL as _USER_SQL
        from accounts.models import User

        assert f"FROM {User._meta.db_table} u" in _USER_SQL
        assert f"FROM {RevokedSession._meta.db_table} r" in _USER_SQL

    def test_a_token_of_a_deleted_user_is_refused(self, tokens, user):
        RevokedSession.objects.all().delete()
        user.delete()
        assert_envelope(
            bearer(tokens["token"]).get("/api/auth/me"), 401, "UNAUTHORIZED"
        )

    def test_token_of_a_deactivated_user_is_refused(self, tokens, user):
        user.is_active = False
        user.save()
        assert_envelope(
            bearer(tokens["token"]).get("/api/auth/me"), 401, "UNAUTHORIZED"
        )


class TestRefresh:
    def test_refresh_rotates_and_the_old_refresh_token_is_rejected(
        self, api_client, tokens
    ):
        first = api_client.post(
            "/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json"
        )
        assert first.status_code == 200
        new = first.json()
        assert set(new) == {"token", "refresh", "expiresIn", "tokenType"}
        assert new["refresh"] != tokens["refresh"]
        assert bearer(new["token"]).get("/api/auth/me").status_code == 200
        again = api_client.post(
            "/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json"
        )
        assert_envelope(again, 401, "UNAUTHORIZED")

    def test_reusing_a_rotated_refresh_token_revokes_the_whole_session(
        self, api_client, tokens
    ):
        new = api_client.post(
            "/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json"
        ).json()
        api_client.post(
            "/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json"
        )
        assert_envelope(bearer(new["token"]).get("/api/auth/me"), 401, "UNAUTHORIZED")
        reuse = api_client.post(
            "/api/auth/refresh", {"refresh": new["refresh"]}, format="json"
        )
        assert_envelope(reuse, 401, "UNAUTHORIZED")

    @pytest.mark.parametrize("value", ["", "garbage", "a.b.c"])
    def test_malformed_refresh_tokens_are_refused(self, api_client, value):
        response = api_client.post(
            "/api/auth/refresh", {"refresh": value}, format="json"
        )
        assert response.status_code in (400, 401)
        assert response.json()["success"] is False

    def test_expired_refresh_token_is_refused(self, api_client, settings, tokens):
        claims = jwt.decode(tokens["refresh"], options={"verify_signature": False})
        claims["exp"] = int(time.time()) - 1
        expired = jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm="HS256")
        response = api_client.post(
            "/api/auth/refresh", {"refresh": expired}, format="json"
        )
        assert_envelope(response, 401, "UNAUTHORIZED")

    def test_refresh_token_not_issued_by_us_is_refused(self, api_client, user):
        stranger = RefreshToken()  # valid signature, never recorded as outstanding
        stranger["user_id"] = user.pk
        stranger["sid"] = "x" * 32
        response = api_client.post(
            "/api/auth/refresh", {"refresh": str(stranger)}, format="json"
        )
        assert_envelope(response, 401, "UNAUTHORIZED")

    def test_refresh_of_a_deactivated_user_is_refused(self, api_client, tokens, user):
        user.is_active = False
        user.save()
        response = api_client.post(
            "/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json"
        )
        assert_envelope(response, 401, "UNAUTHORIZED")


class TestLogout:
    def test_logout_revokes_both_tokens(self, api_client, tokens):
        client = bearer(tokens["token"])
        response = client.post(
            "/api/auth/logout", {"refresh": tokens["refresh"]}, format="json"
        )
        assert response.status_code == 204
        assert response.content == b""
        assert_envelope(client.get("/api/auth/me"), 401, "UNAUTHORIZED")
        refresh = api_client.post(
            "/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json"
        )
        assert_envelope(refresh, 401, "UNAUTHORIZED")

    def test_logout_survives_a_cache_restart(self, tokens):
        from django.core.cache import cache

        bearer(tokens["token"]).post(
            "/api/auth/logout", {"refresh": tokens["refresh"]}, format="json"
        )
        cache.clear()
        assert_envelope(
            bearer(tokens["token"]).get("/api/auth/me"), 401, "UNAUTHORIZED"
        )

    def test_logout_ends_only_that_session(self, api_client, user, password, tokens):
        other = login(api_client, user.username, password).json()
        bearer(tokens["token"]).post(
            "/api/auth/logout", {"refresh": tokens["refresh"]}, format="json"
        )
        assert bearer(other["token"]).get("/api/auth/me").status_code == 200

    def test_logout_also_revokes_access_tokens_issued_before_rotation(
        self, api_client, tokens
    ):
        rotated = api_client.post(
            "/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json"
        ).json()
        bearer(rotated["token"]).post(
            "/api/auth/logout", {"refresh": rotated["refresh"]}, format="json"
        )
        assert_envelope(
            bearer(tokens["token"]).get("/api/auth/me"), 401, "UNAUTHORIZED"
        )

    def test_logout_needs_authentication(self, api_client, tokens):
        response = api_client.post(
            "/api/auth/logout", {"refresh": tokens["refresh"]}, format="json"
        )
        assert_envelope(response, 401, "UNAUTHORIZED")

    def test_logout_with_someone_elses_refresh_token_changes_nothing(
        self, api_client, tokens, password
    ):
        other_user = UserFactory(password=password)
        other = login(api_client, other_user.username, password).json()
        response = bearer(tokens["token"]).post(
            "/api/auth/logout", {"refresh": other["refresh"]}, format="json"
        )
        error = assert_envelope(response, 400, "VALIDATION_ERROR")
        assert "refresh" in error["details"]
        assert not RevokedSession.objects.exists()
        assert bearer(other["token"]).get("/api/auth/me").status_code == 200

    def test_logout_without_refresh_is_a_validation_error(self, tokens):
        response = bearer(tokens["token"]).post("/api/auth/logout", {}, format="json")
        assert_envelope(response, 400, "VALIDATION_ERROR")

    def test_pruning_forgets_only_expired_revocations(self, tokens, user):
        from accounts.services import revoked_sessions_prune

        bearer(tokens["token"]).post(
            "/api/auth/logout", {"refresh": tokens["refresh"]}, format="json"
        )
        RevokedSession.objects.create(
            sid="old", user=user, expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert revoked_sessions_prune() == 1
        assert RevokedSession.objects.count() == 1
