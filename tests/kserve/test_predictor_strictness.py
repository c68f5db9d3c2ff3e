"""Every bad request gets a 4xx with ``{"error": ...}`` naming the problem, and the server stays up."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest

V1 = "/v1/models/boston-housing:predict"
V2 = "/v2/models/boston-housing/infer"
ROW = [0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98]
NAMES = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"]
MAX_BATCH = 1000  # the shared server's --max_batch (conftest)
MAX_BODY = 1 << 20  # its --max_body_bytes


def row_with(index: int, value: Any) -> list[Any]:
    row: list[Any] = list(ROW)
    row[index] = value
    return row


def record(**changes: Any) -> dict[str, Any]:
    rec: dict[str, Any] = dict(zip(NAMES, ROW, strict=True))
    for key, value in changes.items():
        if value is None:
            rec.pop(key)
        else:
            rec[key] = value
    return rec


def v2(shape: Any, data: Any, datatype: str = "FP32", **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "features", "shape": shape, "datatype": datatype, "data": data}], **extra}


# (id, path, body, status, words the error must contain)
CASES: list[tuple[str, str, Any, int, str]] = [
    ("malformed JSON", V1, '{"instances": [[1, 2', 400, "not valid JSON"),
    ("trailing garbage", V1, '{"instances": []} x', 400, "not valid JSON"),
    ("body is a list", V1, [ROW], 400, "JSON object"),
    ("body is a string", V1, '"hello"', 400, "JSON object"),
    ("no instances or inputs", V1, {"rows": [ROW]}, 400, 'unknown top-level key(s) "rows"'),
    ("empty object", V1, {}, 400, '"instances"'),
    ("both instances and inputs", V1, {"instances": [ROW], "inputs": [ROW]}, 400, "not both"),
    ("instances not a list", V1, {"instances": {"a": 1}}, 400, "must be a list of rows"),
    ("too few features", V1, {"instances": [ROW[:12]]}, 400, "has 12 values, expected 13"),
    ("too many features", V1, {"instances": [[*ROW, 1.0]]}, 400, "has 14 values, expected 13"),
    ("ragged rows", V1, {"instances": [ROW, ROW[:5]]}, 400, "instances[1] has 5 values"),
    ("rank 1", V1, {"instances": ROW}, 400, "instances[0] must be a list of 13 numbers"),
    ("rank 3", V1, {"instances": [[ROW]]}, 400, "rank 2"),
    ("string value", V1, {"instances": [row_with(5, "6.5")]}, 400, "feature RM must be a number, got a string"),
    ("boolean value", V1, {"instances": [row_with(3, True)]}, 400, "feature CHAS must be a number, got a boolean"),
    ("null value", V1, {"instances": [row_with(0, None)]}, 400, "feature CRIM must be a number, got null"),
    ("object value", V1, {"instances": [row_with(1, {})]}, 400, "got an object"),
    ("NaN", V1, '{"instances": [[NaN, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4.98]]}', 400,
     "feature CRIM is not finite"),
    ("Infinity", V1, '{"instances": [[0, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, -Infinity]]}',
     400, "feature LSTAT is not finite"),
    ("overflowing literal", V1,
     '{"instances": [[1e999, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4]]}', 400, "not finite"),
    ("huge integer", V1, '{"instances": [[1' + "0" * 400 + ', 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, '
     '396.9, 4]]}', 400, "too large"),
    ("unknown feature name", V1, {"instances": [record(LSTAT=None, lstat=4.98)]}, 400,
     'unknown feature name(s) "lstat"; missing feature(s) "LSTAT"'),
    ("missing feature name", V1, {"instances": [record(RM=None)]}, 400, 'missing feature(s) "RM"'),
    ("extra feature name", V1, {"instances": [record(PRICE=1.0)]}, 400, 'unknown feature name(s) "PRICE"'),
    ("keyed value not a number", V1, {"instances": [record(TAX="296")]}, 400, "feature TAX must be a number"),
    ("empty batch", V1, {"instances": []}, 400, "instances is empty"),
    ("empty columnar batch", V1, {"inputs": []}, 400, "inputs is empty"),
    ("batch over the maximum", V1, {"instances": [ROW] * (MAX_BATCH + 1)}, 413,
     f"{MAX_BATCH + 1} rows, over the limit of {MAX_BATCH}"),
    ("columns of different lengths", V1, {"inputs": {n: [1.0] * (2 if n == "B" else 1) for n in NAMES}}, 400,
     "different lengths"),
    ("columnar unknown key", V1, {"inputs": {"CRIM": [1.0]}}, 400, "missing feature(s)"),
    ("unknown signature", V1, {"instances": [ROW], "signature_name": "other"}, 400, "signature_name"),
    ("unknown model V1", "/v1/models/other:predict", {"instances": [ROW]}, 404, "'other' is not served here"),
    ("V2 body not an object", V2, [1], 400, "JSON object"),
    ("V2 no inputs", V2, {"inputs": []}, 400, "inputs must be a non-empty list"),
    ("V2 tensor without data", V2, {"inputs": [{"name": "x", "shape": [1, 13], "datatype": "FP32"}]}, 400,
     'missing "data"'),
    ("V2 boolean datatype", V2, v2([1, 13], [True] * 13, "BOOL"), 400, "FP32 or FP64"),
    ("V2 bytes datatype", V2, v2([1, 13], ROW, "BYTES"), 400, "FP32 or FP64"),
    ("V2 rank 1", V2, v2([13], ROW), 400, "must be [n, 13] (rank 2"),
    ("V2 rank 3", V2, v2([1, 13, 1], ROW), 400, "got [1, 13, 1]"),
    ("V2 wrong feature count", V2, v2([1, 12], ROW[:12]), 400, "must be [n, 13]"),
    ("V2 shape and data disagree", V2, v2([2, 13], ROW), 400, "has 13 values, but its shape needs 26"),
    ("V2 nested rows of wrong lengths", V2, v2([2, 13], [ROW[:12], [*ROW, 1.0]]), 400,
     "nested but does not match its shape [2, 13]"),
    ("V2 nested deeper than its shape", V2, v2([1, 13], [[[v] for v in ROW]]), 400, "rank 2"),
    ("V2 negative shape", V2, v2([-1, 13], ROW), 400, "non-negative integers"),
    ("V2 string in data", V2, v2([1, 13], row_with(2, "x")), 400, "feature INDUS must be a number"),
    ("V2 boolean in data", V2, v2([1, 13], row_with(2, False)), 400, "got a boolean"),
    ("V2 null in data", V2, v2([1, 13], row_with(12, None)), 400, "feature LSTAT must be a number, got null"),
    ("V2 NaN in data", V2, '{"inputs": [{"name": "f", "shape": [1, 13], "datatype": "FP64", "data": '
     '[0, 18, 2.31, 0, NaN, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4.98]}]}', 400, "feature NOX is not finite"),
    ("V2 empty batch with data", V2, v2([0, 13], [1.0]), 400, "has 1 values, but its shape needs 0"),
    ("V2 batch over the maximum", V2, v2([MAX_BATCH + 1, 13], ROW * (MAX_BATCH + 1)), 413, "over the limit"),
    ("V2 unknown feature tensor", V2, {"inputs": [{"name": n if n != "AGE" else "age", "shape": [1],
                                                   "datatype": "FP64", "data": [1.0]} for n in NAMES]}, 400,
     'unknown input(s) "age"; missing input(s) "AGE"'),
    ("V2 feature tensors missing", V2, {"inputs": [{"name": "CRIM", "shape": [1], "datatype": "FP64",
                                                    "data": [1.0]}]}, 400, "missing input(s)"),
    ("V2 unknown output", V2, v2([1, 13], ROW, outputs=[{"name": "price"}]), 400, 'unknown output(s) "price"'),
    ("V2 id not a string", V2, v2([1, 13], ROW, id=5), 400, "id must be a string"),
    ("unknown model V2", "/v2/models/other/infer", v2([1, 13], ROW), 404, "'other' is not served here"),
]


@pytest.mark.parametrize(("path", "body", "status", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request_is_a_4xx_naming_the_problem(predictor: Any, path: str, body: Any, status: int, words: str) -> None:
    response = predictor.post(path, body)
    assert response.status == status, response.body
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert list(payload) == ["error"]
    assert words in payload["error"]
    assert_no_leak(payload["error"])


def assert_no_leak(message: str) -> None:
    """No stack trace, file path or environment value in what a client sees."""
    assert "Traceback" not in message and "File " not in message
    assert "/work" not in message and "/tmp" not in message and ".py" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),  # curl -d without -H
        ("application/octet-stream", 415),
        ("application/json; charset=latin-1", 415),
        ("application/json; charset=utf-8", 200),
        ("Application/JSON", 200),
    ],
)
def test_content_types(predictor: Any, content_type: str, status: int) -> None:
    response = predictor.post(V1, {"instances": [ROW]}, headers={"Content-Type": content_type})
    assert response.status == status, response.body
    if status != 200:
        assert "application/json" in response.json()["error"]


def test_no_content_type_is_read_as_json(predictor: Any) -> None:
    sock = _connect(predictor.port)
    body = json.dumps({"instances": [ROW]}).encode()
    sock.sendall(b"POST " + V1.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert _read_status(sock) == 200


@pytest.mark.parametrize("path", [V1, V2])
def test_compressed_bodies_are_refused(path: str, predictor: Any) -> None:
    body = {"instances": [ROW]} if path == V1 else v2([1, 13], ROW)
    response = predictor.post(path, body, headers={"Content-Encoding": "gzip"})
    assert response.status == 415
    assert "compressed" in response.json()["error"]


def test_v1_has_no_binary_extension_so_its_header_is_ignored(predictor: Any) -> None:
    # As on stock KServe: only V2 reads Inference-Header-Content-Length; a V1 body is JSON whatever it says.
    response = predictor.post(V1, {"instances": [ROW]}, headers={"Inference-Header-Content-Length": "10"})
    assert response.status == 200 and len(response.json()["predictions"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({**v2([1, 13], ROW), "instances": [ROW]}, id="extra top-level key"),
        pytest.param({**v2([1, 13], ROW), "model_name": "boston-housing"}, id="model_name key (KServe's client)"),
        pytest.param(v2([1, 13], [int(v) for v in ROW], "INT64"), id="integer datatype"),
        pytest.param({**v2([1, 13], ROW), "parameters": {"custom": 1}}, id="request parameters"),
    ],
)
def test_v2_requests_stock_kserve_accepts_are_answered(predictor: Any, body: dict[str, Any]) -> None:
    """Not the fast path's own: delegated to KServe's dataplane, answered by the same model code."""
    response = predictor.post(V2, body)
    assert response.status == 200, response.body
    (output,) = response.json()["outputs"]
    assert output["shape"] == [1, 1] and output["datatype"] == "FP64" and isinstance(output["data"][0], float)


def test_v2_empty_batch_is_an_empty_answer(predictor: Any) -> None:
    # As stock KServe answers a [0, 13] tensor (V1's empty "instances" stays a 400: TF Serving refuses it).
    response = predictor.post(V2, v2([0, 13], []))
    assert response.status == 200, response.body
    assert response.json()["outputs"][0] | {"name": None} == {"name": None, "shape": [0, 1], "datatype": "FP64",
                                                               "data": []}


def test_wrong_method_and_unknown_routes(predictor: Any) -> None:
    get_predict = predictor.get(V1)
    assert get_predict.status == 405 and get_predict.headers["allow"] == "POST"
    assert "error" in get_predict.json()
    unknown_route = predictor.get("/v3/anything")
    assert unknown_route.status == 404 and "error" in unknown_route.json()
    unknown_model = predictor.get("/v2/models/other")
    assert unknown_model.status == 404 and "error" in unknown_model.json()
    assert predictor.get("/v1/models/other").status == 404


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _read_status(sock: socket.socket) -> int:
    """Reads until the status line and headers are in; returns the status code."""
    data = b""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ", 2)[1])


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_body_over_the_limit_by_content_length_is_refused_before_it_is_sent(predictor: Any) -> None:
    sock = _connect(predictor.port)
    # The headers announce 50 MB; not one byte of body follows. The answer must come anyway.
    sock.sendall(b"POST " + V1.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 50000000\r\n\r\n")
    response = _read_all(sock)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"over the limit of 1048576 bytes" in response
    assert b"connection: close" in response.lower()


def _chunked_past_the_limit(port: int, path: str) -> bytes:
    """Sends a chunked body just past the limit, never its final chunk, and returns what the server answers.

    The server must answer without the end of the body. Stopping right past the limit also means the server has
    read every byte sent when it closes, so the kernel sends FIN, not a reset that could eat the answer.
    """
    sock = _connect(port)
    sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"[" * 65536
    sent = 0
    while sent <= MAX_BODY:
        sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        sent += len(chunk)
    return _read_all(sock)


def test_chunked_body_over_the_limit_is_refused_without_reading_the_rest(predictor: Any) -> None:
    response = _chunked_past_the_limit(predictor.port, V1)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"over the limit" in response


def test_body_limit_covers_other_routes(predictor: Any) -> None:
    response = _chunked_past_the_limit(predictor.port, "/v2/repository/models/boston-housing/load")
    assert response.startswith(b"HTTP/1.1 413"), response[:200]


def test_server_survives_every_bad_request(predictor: Any) -> None:
    for _, path, body, _, _ in CASES:
        predictor.post(path, body)
    assert predictor.get("/v2/health/live").status == 200
    assert predictor.post(V1, {"instances": [ROW]}).status == 200
    assert predictor.process.poll() is None
