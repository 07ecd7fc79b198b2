"""JSON output with money as exact JSON numbers.

The standard library can only write a ``Decimal`` through a float or a string, and
DRF's encoder does one or the other; simplejson's ``use_decimal`` writes the decimal's
own digits, so ``Decimal("1006.10")`` goes on the wire as ``1006.10``.
"""

from typing import Any

import simplejson
from rest_framework import renderers
from rest_framework.utils.encoders import JSONEncoder as DrfJSONEncoder


class _Encoder(simplejson.JSONEncoder):
    _drf = DrfJSONEncoder()

    def default(self, o: Any) -> Any:
        return self._drf.default(o)


def json_dumps(data: Any) -> bytes:
    return simplejson.dumps(
        data,
        cls=_Encoder,
        use_decimal=True,
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    ).encode("utf-8")


class JSONRenderer(renderers.JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return json_dumps(data)
