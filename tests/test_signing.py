"""signature v2: the documented known-answer vector and what the signature covers."""

from __future__ import annotations

from pipeline.signing import ACCESS_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signed_headers

VECTOR_PATH = "/api/v1/workspaces/my-workspace/person-thumbnail/uploads/presigned-url"
VECTOR_SIGNATURE = "NPILVRmXxYku1LSAEOwxULdtiLygmPbwQ+LYcT0sIMI="


def test_known_answer_vector() -> None:
    assert sign("POST", VECTOR_PATH, "1700000000000", "ACCESS_KEY_ID", "ncp-secret-example") == VECTOR_SIGNATURE


def test_method_is_upper_cased() -> None:
    assert sign("post", VECTOR_PATH, "1700000000000", "ACCESS_KEY_ID", "ncp-secret-example") == VECTOR_SIGNATURE


def test_signature_covers_query_timestamp_and_key() -> None:
    base = ("POST", VECTOR_PATH, "1700000000000", "ACCESS_KEY_ID", "ncp-secret-example")
    variants = [
        ("POST", VECTOR_PATH + "?a=1", *base[2:]),
        ("POST", VECTOR_PATH, "1700000000001", *base[3:]),
        ("POST", VECTOR_PATH, "1700000000000", "OTHER_KEY", base[4]),
        ("POST", VECTOR_PATH, "1700000000000", "ACCESS_KEY_ID", "other-secret"),
    ]
    assert len({sign(*v) for v in variants} | {VECTOR_SIGNATURE}) == 5


def test_signed_headers_sign_the_sent_timestamp() -> None:
    headers = signed_headers("POST", VECTOR_PATH, "ACCESS_KEY_ID", "ncp-secret-example", timestamp="1700000000000")
    assert headers == {
        TIMESTAMP_HEADER: "1700000000000",
        ACCESS_KEY_HEADER: "ACCESS_KEY_ID",
        SIGNATURE_HEADER: VECTOR_SIGNATURE,
        "Content-Type": "application/json",
    }
    fresh = signed_headers("POST", VECTOR_PATH, "ACCESS_KEY_ID", "ncp-secret-example")
    assert fresh[TIMESTAMP_HEADER].isdigit()
    assert fresh[SIGNATURE_HEADER] == sign(
        "POST", VECTOR_PATH, fresh[TIMESTAMP_HEADER], "ACCESS_KEY_ID", "ncp-secret-example"
    )
