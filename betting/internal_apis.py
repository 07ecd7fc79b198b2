"""Internal endpoints: staff calls to the provider on behalf of a linked account.

Each one names the account by the provider's external user id, calls the provider
through the same client as everything else (signed, retried by the one policy,
written to the API log with the account's local user) and answers
``{"success": true, "external_response": <the provider's JSON>}``. Provider errors
are ``ApplicationError``s already and propagate: a refusal is 502 with the
provider's status and body in ``error.details``, unreachable is 503 with
``Retry-After``, an unknown outcome 502.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpResponse
from drf_spectacular.utils import (
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ExternalApiAccount
from betting.idempotency import idempotent
from betting.models import Bet
from betting.onboarding import OnboardResult, account_onboard
from betting.serializers import BetSerializer
from betting.services import bet_place, bet_settle_by_external_id
from betting.wire import bet_as_dict
from betting_site.api.fields import MoneyField, money_field
from betting_site.api.schema import (
    AUTHED,
    BODY,
    IDEMPOTENT,
    INTERNAL_AUTH,
    PROVIDER,
    TAG_INTERNAL,
    USER_ID_QUERY,
    InternalAnswerSerializer,
    api_headers,
    error_responses,
    idempotent_headers,
)
from betting_site.errors import ApplicationError, NotFound
from provider.client import ProviderClient
from provider.permissions import INTERNAL_AUTHENTICATION, INTERNAL_PERMISSIONS
from provider.types import ProviderResult


class UserIdSerializer(serializers.Serializer[Any]):
    user_id = serializers.CharField(max_length=64)


def _linked_account(external_user_id: str) -> ExternalApiAccount:
    """The active account linked to this provider user id, or 404 NOT_FOUND."""
    account = (
        ExternalApiAccount.objects.select_related("user")
        .filter(external_user_id=external_user_id, is_active=True)
        .first()
    )
    if account is None:
        raise NotFound("No active provider account is linked to this user_id")
    return account


def _answer(external_response: Any, **extra: Any) -> Response:
    return Response({"success": True, "external_response": external_response, **extra})


def _provider_answer(result: ProviderResult) -> Response:
    return _answer(result.raw_dict())


# The answers of the internal endpoints (documentation only).
_POST_ERRORS = (*BODY, *AUTHED, 403, 404, *IDEMPOTENT, *PROVIDER)
_GET_ERRORS = (400, *AUTHED, 403, 404, *PROVIDER)
_ERROR_TEXT = {
    "e401": "UNAUTHORIZED: no or invalid credentials",
    "e403": "FORBIDDEN: neither the admin token nor a staff user",
    "e404": "NOT_FOUND: no active account linked to this user_id",
    "e409": "IDEMPOTENCY_KEY_IN_USE or BET_IN_PROGRESS",
    "e502": "PROVIDER_ERROR: the provider's status and body in error.details",
}


def _bet_answer(name: str) -> Any:
    return inline_serializer(
        name=name,
        fields={
            "success": serializers.BooleanField(help_text="Always true."),
            "external_response": serializers.JSONField(
                help_text="The provider's JSON."
            ),
            "bet": BetSerializer(),
            "note": serializers.CharField(
                required=False,
                help_text="Present when the bet was already final and the "
                "provider was not called.",
            ),
        },
    )


_View = TypeVar("_View", bound=Callable[..., Any])


def _internal_post(
    operation_id: str,
    summary: str,
    request: Any,
    *,
    ok: int = 200,
    answer: Any = InternalAnswerSerializer,
    description: str | None = None,
) -> Callable[[_View], _View]:
    return extend_schema(
        operation_id=operation_id,
        tags=[TAG_INTERNAL],
        summary=summary,
        description=description,
        auth=INTERNAL_AUTH,
        request=request,
        responses={ok: answer, **error_responses(*_POST_ERRORS, **_ERROR_TEXT)},
        parameters=idempotent_headers([ok, *_POST_ERRORS], replayable=[ok]),
    )


class InternalApi(APIView):
    """Base of the internal endpoints: the admin token or a staff JWT."""

    authentication_classes = INTERNAL_AUTHENTICATION
    permission_classes = INTERNAL_PERMISSIONS


class ProviderAuthApi(InternalApi):
    """``POST /auth`` at the provider for the account."""

    @_internal_post("internal_auth", "POST /auth at the provider", UserIdSerializer)
    def post(self, request: Request) -> HttpResponse:
        data = UserIdSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = _linked_account(data.validated_data["user_id"])
        return idempotent(
            request,
            endpoint="POST /api/internal/auth",
            run=lambda _: _provider_answer(ProviderClient(account=account).auth()),
            stored_statuses=(200,),
        )


class ProviderBetApi(InternalApi):
    """``GET``: the provider's recommended stake (``?user_id=``). ``POST``
    ``{"user_id", "bet"}``: place a bet for the account through the bet lifecycle
    (a bet row, the stake hold, the ledger rules), without fetching its result;
    ``POST /api/internal/win`` settles it. Accepts ``Idempotency-Key``."""

    class InputSerializer(UserIdSerializer):
        bet = serializers.JSONField()

    @extend_schema(
        operation_id="internal_bet_recommend",
        tags=[TAG_INTERNAL],
        summary="GET /bet at the provider (recommended stake)",
        auth=INTERNAL_AUTH,
        parameters=[USER_ID_QUERY, *api_headers([200, *_GET_ERRORS])],
        responses={
            200: InternalAnswerSerializer,
            **error_responses(*_GET_ERRORS, **_ERROR_TEXT),
        },
    )
    def get(self, request: Request) -> Response:
        data = UserIdSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        account = _linked_account(data.validated_data["user_id"])
        return _provider_answer(ProviderClient(account=account).bet_recommend())

    @_internal_post(
        "internal_bet_place",
        "Place a bet for the account (no result fetched)",
        inline_serializer(
            name="InternalBetRequest",
            fields={
                "user_id": serializers.CharField(max_length=64),
                "bet": serializers.IntegerField(help_text="The stake."),
            },
        ),
        ok=201,
        answer=_bet_answer("InternalBetAnswer"),
        description="A bet row, the stake hold and the ledger rules, as for POST "
        "/api/bets, without the result; POST /api/internal/win settles it. A bet "
        "the provider did not confirm is 502 with the bet in error.details.bet.",
    )
    def post(self, request: Request) -> HttpResponse:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = _linked_account(data.validated_data["user_id"])

        def place(on_open: Callable[[Bet], None] | None) -> Response:
            placed = bet_place(
                user=account.user,
                amount=data.validated_data["bet"],
                settle=False,
                on_open=on_open,
            )
            if placed.provider_response is None:
                raise ApplicationError(
                    "The provider did not confirm the bet; it is recorded as unknown",
                    code="PROVIDER_ERROR",
                    http_status=502,
                    details={"bet": bet_as_dict(placed.bet)},
                )
            return Response(
                {
                    "success": True,
                    "external_response": placed.provider_response,
                    "bet": bet_as_dict(placed.bet),
                },
                status=201,
            )

        return idempotent(request, endpoint="POST /api/internal/bet", run=place)


class ProviderWinApi(InternalApi):
    """``POST /win`` for a bet placed through this server, booked by the same
    settlement rules (exactly once). A bet already final is answered from the
    ledger with a ``note``, without calling the provider again. Accepts
    ``Idempotency-Key``."""

    @extend_schema_serializer(component_name="InternalWin")
    class InputSerializer(UserIdSerializer):
        bet_id = serializers.CharField(max_length=64)

    @_internal_post(
        "internal_win",
        "POST /win at the provider for a bet placed here",
        InputSerializer,
        ok=201,
        answer=_bet_answer("InternalWinAnswer"),
        description="Settled by the same rules, exactly once. A bet already final "
        "is answered from the ledger with a note, without calling the provider.",
    )
    def post(self, request: Request) -> HttpResponse:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = _linked_account(data.validated_data["user_id"])

        def settle(on_open: Callable[[Bet], None] | None) -> Response:
            bet, provider_response = bet_settle_by_external_id(
                account=account, external_bet_id=data.validated_data["bet_id"]
            )
            extra: dict[str, Any] = {"bet": bet_as_dict(bet)}
            if provider_response is None:
                extra["note"] = (
                    f"The bet is already {bet.status}; the provider was not called"
                )
                provider_response = {"win": bet.win_amount}
            return Response(
                {"success": True, "external_response": provider_response, **extra},
                status=201,
            )

        return idempotent(request, endpoint="POST /api/internal/win", run=settle)


class ProviderBalanceApi(InternalApi):
    """Read the provider balance, or set the initial balance once.

    Without ``balance``: ``POST /balance`` (read); ``external_response`` is the
    provider's answer.

    With ``balance``: ``account_onboard``, so that the ledger records the initial
    balance exactly once, as for every other way of funding an account. The
    answer's ``external_response`` is ``{"balance": X}``, X being what the ledger
    recorded, which is the balance the provider answered or holds (onboarding keeps
    only that figure of the provider's answer). When the provider did not take the
    balance from this call, a top-level ``note`` says why and the requested
    amount was not applied: either it was already set at the provider (the
    balance found there was recorded) or the ledger already held an initial
    balance (nothing was sent to the provider's ``/balance``).
    """

    class InputSerializer(UserIdSerializer):
        balance = MoneyField(required=False)

    @_internal_post(
        "internal_balance",
        "Read the provider balance, or set the initial balance once",
        inline_serializer(
            name="InternalBalanceRequest",
            fields={
                "user_id": serializers.CharField(max_length=64),
                "balance": money_field(
                    required=False,
                    help_text="The initial balance (a JSON number, > 0); omitted "
                    "to read the balance.",
                ),
            },
        ),
        description="With balance, external_response is {balance: X}, X being "
        "what the ledger recorded; a note says when the requested amount was not "
        "applied.",
    )
    def post(self, request: Request) -> HttpResponse:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = _linked_account(data.validated_data["user_id"])

        def run(_: Callable[[Bet], None] | None) -> Response:
            if "balance" not in data.validated_data:
                return _provider_answer(ProviderClient(account=account).balance_read())
            result = account_onboard(
                account=account, initial_balance=data.validated_data["balance"]
            )
            return _answer({"balance": result.initial_balance}, **_balance_note(result))

        return idempotent(
            request,
            endpoint="POST /api/internal/balance",
            run=run,
            stored_statuses=(200,),
        )


def _balance_note(result: OnboardResult) -> dict[str, str]:
    if result.already_recorded:
        return {
            "note": "The initial balance was already recorded; nothing was set at "
            "the provider"
        }
    if not result.balance_was_set_here:
        return {
            "note": "The balance was already set at the provider; the ledger "
            "recorded the balance found there"
        }
    return {}


class ProviderBalanceCheckApi(InternalApi):
    """``POST /check-balance`` at the provider with ``expected_balance``."""

    class InputSerializer(UserIdSerializer):
        expected_balance = MoneyField(allow_zero=True)

    @_internal_post(
        "internal_check_balance",
        "POST /check-balance at the provider",
        inline_serializer(
            name="InternalCheckBalanceRequest",
            fields={
                "user_id": serializers.CharField(max_length=64),
                "expected_balance": money_field(
                    help_text="A JSON number, >= 0.",
                ),
            },
        ),
    )
    def post(self, request: Request) -> HttpResponse:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = _linked_account(data.validated_data["user_id"])
        expected = data.validated_data["expected_balance"]
        return idempotent(
            request,
            endpoint="POST /api/internal/check-balance",
            run=lambda _: _provider_answer(
                ProviderClient(account=account).balance_check(expected)
            ),
            stored_statuses=(200,),
        )
