from decimal import Decimal

import pytest

from provider.signing import js_stringify, sign_body, verify_signature

KEY = "test-secret-key"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {},
            "cd53f52548f5098786169ab7d2daa62d400d67ab45ad7de8d96c56c34a29110a"
            "209b3823a3983c467a627b9f3875740b4d5d5198aa9c80dddd704bf5d5ea4a15",
        ),
        (
            {"bet": 3},
            "fff232f3a175e5746e42356d7b43f76a4baa5ea03898cd6f6fbb4489450a8726"
            "04d1d4007f1f02cca3275ca8e91c0bb9af7308ddaef9a23fc1a9096a44badbfe",
        ),
        (
            {"balance": 1000},
            "53a8e68f8103b3b9936b7f2430e67759db5f1b6512bff3c24bcad637cadf81d7"
            "71848b48db2a931d9d6fdf92f14cf84356cac08a8d13e0044a11046ffc48abc3",
        ),
    ],
)
def test_signature_matches_the_contract_test_vectors(body, expected):
    assert sign_body(body, KEY).signature == expected


def test_no_body_sends_nothing_and_signs_empty_object():
    signed = sign_body(None, KEY)
    assert signed.body == b""
    assert signed.signed == b"{}"
    assert signed.signature == sign_body({}, KEY).signature


def test_whole_decimals_are_written_without_fraction_like_javascript():
    assert js_stringify({"bet": Decimal("3.00")}) == b'{"bet":3}'
    assert js_stringify({"expected_balance": Decimal("1006.50")}) == (
        b'{"expected_balance":1006.5}'
    )
    assert js_stringify({"balance": Decimal("1E+3")}) == b'{"balance":1000}'


def test_keys_keep_insertion_order_and_non_ascii_stays_utf8():
    assert js_stringify({"z": 1, "a": "é"}) == '{"z":1,"a":"é"}'.encode()


def test_floats_are_refused():
    with pytest.raises(TypeError):
        js_stringify({"bet": 3.0})


def test_verify_signature_is_exact_over_the_bytes():
    signed = sign_body({"bet": 3}, KEY)
    assert verify_signature(signed.body, KEY, signed.signature)
    assert not verify_signature(b'{"bet": 3}', KEY, signed.signature)
    assert not verify_signature(signed.body, "other-key", signed.signature)


def test_repr_hides_the_signature():
    signed = sign_body({"bet": 3}, KEY)
    assert signed.signature not in repr(signed)
