import json
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.http import QueryDict

from betting_site.api.pagination import page_params, paginate
from betting_site.durations import parse_duration
from betting_site.errors import ValidationFailed
from betting_site.logging import JsonFormatter, RedactingFilter, RequestIdFilter
from betting_site.money import round_money, to_money
from betting_site.redaction import REDACTED, redact, redact_text


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("90", 90),
            ("90s", 90),
            ("15m", 900),
            ("12h", 43200),
            ("7d", 604800),
            ("2w", 1209600),
        ],
    )
    def test_units(self, text, seconds):
        assert parse_duration(text) == timedelta(seconds=seconds)

    @pytest.mark.parametrize("text", ["", "0", "0m", "-5m", "5y", "m", "1.5h"])
    def test_refused(self, text):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(text)


class TestMoney:
    def test_exact_two_places(self):
        assert to_money(3) == Decimal("3.00")
        assert to_money("2.5") == Decimal("2.50")

    @pytest.mark.parametrize("value", ["2.505", "NaN", "Infinity", "abc"])
    def test_refused(self, value):
        with pytest.raises(ValueError, match=r"not an amount|more than two"):
            to_money(value)

    def test_floats_refused(self):
        with pytest.raises(TypeError):
            to_money(2.5)

    def test_round_money_drops_the_float_error_of_a_database_sum(self):
        # What SQLite's SUM of 0.10, 0.20 and 0.70 comes back as.
        assert round_money(Decimal("0.999999999999999")) == Decimal("1.00")
        assert round_money(Decimal("2.77555756156289E-17")) == Decimal("0.00")
        assert round_money(3) == Decimal("3.00")


class TestPagination:
    def test_defaults_and_cap(self):
        assert page_params(QueryDict("")) == (1, 10)
        assert page_params(QueryDict("page=3&limit=500")) == (3, 100)

    @pytest.mark.parametrize(
        "query", ["page=0", "limit=-1", "page=abc", "limit=1.5", "page="]
    )
    def test_not_positive_integers_are_400(self, query):
        with pytest.raises(ValidationFailed) as excinfo:
            page_params(QueryDict(query))
        assert excinfo.value.details

    @pytest.mark.django_db
    def test_page_shape_and_past_the_end(self):
        from accounts.models import User
        from accounts.tests.factories import UserFactory

        UserFactory.create_batch(5)
        page = paginate(User.objects.order_by("id"), QueryDict("page=2&limit=2"))
        assert len(page.items) == 2
        assert page.as_dict("users", [])["pagination"] == {
            "total": 5,
            "page": 2,
            "limit": 2,
            "pages": 3,
        }
        assert paginate(User.objects.order_by("id"), QueryDict("page=9")).items == []


class TestRedaction:
    def test_sensitive_keys_are_masked_at_any_depth(self):
        value = {
            "username": "bob",
            "password": "hunter2",
            "nested": [{"refresh": "x", "x-signature": "y", "amount": 3}],
        }
        assert redact(value) == {
            "username": "bob",
            "password": REDACTED,
            "nested": [{"refresh": REDACTED, "x-signature": REDACTED, "amount": 3}],
        }

    def test_secret_shaped_text_is_masked(self):
        jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
        signature = "ab" * 64
        text = f"token {jwt_like} sig {signature} Bearer abc.def"
        masked = redact_text(text)
        assert jwt_like not in masked
        assert signature not in masked
        assert "abc.def" not in masked

    def test_known_secret_values_are_masked(self):
        assert "s3cr3t-value" not in redact_text(
            "key=s3cr3t-value", secrets=("s3cr3t-value",)
        )


class TestLogging:
    def _record(self, msg, *args, **extra):
        record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)
        record.__dict__.update(extra)
        RequestIdFilter().filter(record)
        RedactingFilter().filter(record)
        return record

    def test_json_line_with_request_context_and_no_secret(self):
        signature = "cd" * 64
        record = self._record(
            "signed %s", signature, headers={"x-signature": signature}
        )
        line = JsonFormatter().format(record)
        data = json.loads(line)
        assert data["level"] == "INFO"
        assert data["request_id"] == "-"
        assert data["timestamp"].endswith("Z")
        assert signature not in line

    def test_exceptions_are_redacted(self):
        token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
        try:
            raise ValueError(f"bad {token}")
        except ValueError:
            import sys

            record = logging.LogRecord(
                "t", logging.ERROR, __file__, 1, "x", (), sys.exc_info()
            )
        RedactingFilter().filter(record)
        assert token not in JsonFormatter().format(record)
