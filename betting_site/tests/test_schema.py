"""The OpenAPI document (drf-spectacular) and the offline Swagger UI."""

import json
import re
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator

CONTRACT_PATHS = {
    "/api/auth/login": {"post"},
    "/api/auth/refresh": {"post"},
    "/api/auth/logout": {"post"},
    "/api/auth/me": {"get"},
    "/api/auth/validate": {"get"},
    "/api/bets": {"get", "post"},
    "/api/bets/{bet_id}": {"get"},
    "/api/bets/result/{bet_id}": {"get"},
    "/api/bets/recommended": {"get"},
    "/api/balance": {"get"},
    "/api/transactions": {"get"},
    "/api/internal/auth": {"post"},
    "/api/internal/bet": {"get", "post"},
    "/api/internal/win": {"post"},
    "/api/internal/balance": {"post"},
    "/api/internal/check-balance": {"post"},
    "/api/health": {"get"},
    "/api/health/live": {"get"},
}
METHODS = {"get", "post", "put", "patch", "delete", "head", "options", "trace"}
ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _operation(schema: dict, path: str, method: str) -> dict:
    return schema["paths"][path][method]


def _response_ref(operation: dict, code: str) -> str:
    return operation["responses"][code]["content"]["application/json"]["schema"]["$ref"]


def test_the_schema_validates_without_warnings(tmp_path: Path):
    out = tmp_path / "schema.yaml"
    try:
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    except SystemExit as exit_:  # the command exits non-zero on a warning
        pytest.fail(f"spectacular --validate --fail-on-warn exited with {exit_.code}")
    document = yaml.safe_load(out.read_text())
    assert document["openapi"].startswith("3.")
    assert set(CONTRACT_PATHS) <= set(document["paths"])


def test_every_contract_path_is_documented_with_its_methods(schema):
    documented = {
        path: {method for method in item if method in METHODS}
        for path, item in schema["paths"].items()
    }
    assert documented == CONTRACT_PATHS


def test_every_operation_has_an_id_a_tag_and_the_request_id_header(schema):
    ids = []
    for path, methods in CONTRACT_PATHS.items():
        for method in methods:
            operation = _operation(schema, path, method)
            ids.append(operation["operationId"])
            assert operation["tags"], (path, method)
            for code, response in operation["responses"].items():
                assert "X-Request-ID" in response.get("headers", {}), (path, code)
    assert len(ids) == len(set(ids))


def test_post_bets_documents_its_answers_and_headers(schema):
    operation = _operation(schema, "/api/bets", "post")
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    assert headers["Idempotency-Key"].get("required", False) is False
    responses = operation["responses"]
    expected = {"201", "400", "401", "403", "409", "422", "429", "502", "503"}
    assert expected <= set(responses)
    assert _response_ref(operation, "201") == "#/components/schemas/Bet"
    for code in expected - {"201"}:
        assert _response_ref(operation, code) == ENVELOPE_REF, code
    for code in ("409", "429", "503"):
        assert "Retry-After" in responses[code]["headers"], code
    assert "Idempotent-Replayed" in responses["201"]["headers"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    request_schema = schema["components"]["schemas"][body["$ref"].split("/")[-1]]
    assert request_schema["properties"]["amount"]["type"] == "integer"
    assert operation["security"] == [{"jwtAuth": []}]


def test_the_error_envelope_is_a_shared_component(schema):
    components = schema["components"]["schemas"]
    envelope = components["ErrorEnvelope"]
    assert set(envelope["properties"]) == {"success", "error"}
    error_ref = envelope["properties"]["error"]["$ref"].split("/")[-1]
    assert set(components[error_ref]["properties"]) == {
        "code",
        "message",
        "details",
        "timestamp",
        "requestId",
    }


def test_internal_endpoints_take_the_admin_token_or_a_staff_jwt(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["jwtAuth"]["scheme"] == "bearer"
    assert schemes["adminToken"]["scheme"] == "bearer"
    for path, methods in CONTRACT_PATHS.items():
        if not path.startswith("/api/internal/"):
            continue
        for method in methods:
            operation = _operation(schema, path, method)
            assert operation["security"] == [{"adminToken": []}, {"jwtAuth": []}]
            assert {"401", "403", "404", "502", "503"} <= set(operation["responses"])
            if method == "post":
                names = {p["name"] for p in operation["parameters"]}
                assert "Idempotency-Key" in names, path
    get_bet = _operation(schema, "/api/internal/bet", "get")
    user_id = [p for p in get_bet["parameters"] if p["name"] == "user_id"]
    assert len(user_id) == 1
    assert user_id[0]["in"] == "query"
    assert user_id[0]["required"] is True


def test_list_query_parameters_are_documented(schema):
    for path, extra in (("/api/bets", "status"), ("/api/transactions", "type")):
        names = {
            p["name"]
            for p in _operation(schema, path, "get")["parameters"]
            if p["in"] == "query"
        }
        assert {"page", "limit", extra} <= names, path


def test_health_503_is_the_health_body_not_the_envelope(schema):
    operation = _operation(schema, "/api/health", "get")
    assert _response_ref(operation, "503") == _response_ref(operation, "200")
    assert _response_ref(operation, "503") != ENVELOPE_REF


@pytest.mark.parametrize("path", ["/api/schema", "/api/schema/"])
def test_the_schema_is_public_yaml_by_default(client, path):
    response = client.get(path)
    assert response.status_code == 200
    # The OpenAPI YAML media type (the JSON one is application/vnd.oai.openapi+json).
    assert response["Content-Type"].startswith("application/vnd.oai.openapi;")
    assert yaml.safe_load(response.content)["paths"]["/api/bets"]


def test_the_schema_as_json(client):
    response = client.get("/api/schema?format=json")
    assert response.status_code == 200
    assert "json" in response["Content-Type"]
    document = json.loads(response.content)
    assert set(CONTRACT_PATHS) <= set(document["paths"])
    assert response["X-Request-ID"]


@pytest.mark.parametrize("path", ["/api/docs", "/api/docs/"])
def test_swagger_ui_uses_only_local_files(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    sources = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]*)"', html)
    assert sources
    for source in sources:
        assert not re.match(r"^(https?:)?//", source), source
    assert "cdn" not in html.lower()
    # Served by whitenoise from the sidecar app's static files (STATIC_MANIFEST=0).
    local = [s for s in sources if s.startswith("/static/")]
    bundle = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    assert bundle in local
    for source in local:
        assert client.get(source).status_code == 200, source
    # No inline script (the CSP allows 'self' only): the init script is a URL.
    assert not re.search(r"<script>\s*\S", html)
    init = [s for s in sources if "script" in s and not s.startswith("/static/")]
    assert init
    script = client.get(init[0].replace("&amp;", "&"))
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.content.decode()


def _csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def test_swagger_ui_has_nothing_inline_for_the_csp_to_block(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    policy = _csp_directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    html = response.content.decode()
    # drf-spectacular's inline <style> lives in a static file (the template is
    # overridden); no inline script, style attribute or event handler either.
    assert "<style" not in html.lower()
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html)
    assert not re.search(r"\sstyle\s*=", html, re.IGNORECASE)
    assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE)
    stylesheets = re.findall(r'<link rel="stylesheet" href="([^"]*)"', html)
    page_css = "/static/api_docs/swagger-ui-page.css"
    assert page_css in stylesheets
    css = client.get(page_css)
    assert css.status_code == 200
    assert "box-sizing" in b"".join(css.streaming_content).decode()


def test_every_operation_documents_the_errors_of_the_layers_around_its_view(schema):
    for path, methods in CONTRACT_PATHS.items():
        for method in methods:
            operation = _operation(schema, path, method)
            responses = operation["responses"]
            expected = {"405", "406", "500"}
            if "requestBody" in operation:
                expected.add("413")
            if not path.startswith("/api/health"):
                expected.add("429")
            assert expected <= set(responses), (path, method)
            for code in expected:
                assert _response_ref(operation, code) == ENVELOPE_REF, (path, code)
            assert "Allow" in responses["405"]["headers"], path
            if "429" in responses:
                assert "Retry-After" in responses["429"]["headers"], path
    # The health endpoints are never rate limited, so they do not document 429.
    assert "429" not in _operation(schema, "/api/health/live", "get")["responses"]


@pytest.mark.parametrize(
    ("method", "headers", "status", "code"),
    [
        ("delete", {}, 405, "METHOD_NOT_ALLOWED"),
        ("get", {"HTTP_ACCEPT": "text/html"}, 406, "NOT_ACCEPTABLE"),
    ],
)
def test_the_documented_405_and_406_are_the_envelope(
    client, method, headers, status, code
):
    response = getattr(client, method)("/api/health/live", **headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response["X-Request-ID"]
    if status == 405:
        assert "GET" in response["Allow"]
