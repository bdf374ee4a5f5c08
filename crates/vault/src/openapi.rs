//! The OpenAPI 3.1 document served at `/v1/openapi.json`. A test checks that it lists exactly the
//! router's routes.

use serde_json::{Value, json};

pub(crate) fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

/// `429`: with the seconds to wait in `Retry-After`.
pub(crate) fn rate_limited_response(description: &str) -> Value {
    json!({
        "description": description,
        "headers": { "Retry-After": { "description": "Seconds to wait before retrying", "schema": { "type": "integer", "minimum": 1 } } },
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

/// The document.
pub fn document() -> Value {
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "fieldseal vault",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Opens envelopes sealed in the browser, stores values encrypted, issues tokens, reveals values by role. Every tokenize, reveal, deletion and denial is audited."
        },
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "http", "scheme": "bearer", "description": "An API key (fsk_<id>_<secret>), or an operator's session token (fso_<token>) from POST /v1/operators/sign-in." },
                "operatorSession": { "type": "apiKey", "in": "cookie", "name": "fieldseal_session", "description": "An operator's session, as the cookie POST /v1/operators/sign-in sets (HttpOnly; Secure; SameSite=Strict)." }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "$ref": "#/components/schemas/ItemError" } }
                },
                "ItemError": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": { "type": "string", "examples": ["replayed"] },
                        "message": { "type": "string" }
                    }
                },
                "KeySet": {
                    "type": "object",
                    "required": ["keys", "server_time"],
                    "properties": {
                        "keys": { "type": "array", "items": { "$ref": "#/components/schemas/Jwk" } },
                        "server_time": { "type": "integer", "description": "The vault's clock, Unix seconds." }
                    }
                },
                "Jwk": {
                    "type": "object",
                    "required": ["kty", "crv", "use", "alg", "kid", "x", "y", "nbf", "exp"],
                    "properties": {
                        "kty": { "const": "EC" }, "crv": { "const": "P-256" }, "use": { "const": "enc" },
                        "alg": { "const": "HPKE-7" }, "kid": { "type": "string" },
                        "x": { "type": "string" }, "y": { "type": "string" },
                        "nbf": { "type": "integer" }, "exp": { "type": "integer" }
                    }
                },
                "TokenizeRequest": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["items"],
                    "properties": {
                        "items": {
                            "type": "array", "minItems": 1, "maxItems": 100,
                            "items": {
                                "type": "object",
                                "additionalProperties": false,
                                "required": ["envelope"],
                                "properties": {
                                    "envelope": { "type": "string", "description": "An envelope v1 (fse1.…)." },
                                    "format": { "enum": ["random", "format_preserving", "deterministic", null], "default": "random", "description": "`deterministic` only for kinds under the role's `deterministic` permission; absent or null: `random`." },
                                    "ttl_secs": { "type": ["integer", "null"], "minimum": 0, "maximum": i64::MAX, "description": "Seconds to keep the value; at most the kind's retention period (the item is refused with ttl_exceeds_retention otherwise, and 0 is refused as ttl_invalid); absent or null: the kind's retention period." },
                                    "subject": { "type": ["string", "null"], "description": "The merchant's id of the customer the value belongs to (stored only as a keyed hash); erasure and export work per subject. 1 to 256 characters without control characters, not only white space: any other is refused for the item (subject_invalid); absent or null: no subject." }
                                }
                            }
                        },
                        "atomic": { "type": "boolean", "default": false, "description": "Store every item or none: if any item is refused, the others answer batch_aborted and no envelope is consumed." }
                    }
                },
                "TokenizeResult": {
                    "type": "object",
                    "required": ["ok"],
                    "properties": {
                        "ok": { "type": "boolean" },
                        "token": { "type": "string" }, "kind": { "type": "string" },
                        "format": { "type": "string" },
                        "fingerprint": { "type": "string", "description": "Only for kinds under the role's `fingerprint` permission. `fp_…` (lookup keys version 1), `fpN_…` (version N, after `keys rotate-lookup`): compare fingerprints of one version only." },
                        "brand": { "type": "string", "description": "Card numbers, if the role's `hints` include `brand`." },
                        "bin": { "type": "string", "description": "Card numbers, if the role's `hints` include `bin`." },
                        "last4": { "type": "string", "description": "Card numbers, if the role's `hints` include `last4`." },
                        "error": { "$ref": "#/components/schemas/ItemError" }
                    }
                },
                "DetokenizeRequest": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["tokens", "purpose"],
                    "properties": {
                        "tokens": { "type": "array", "minItems": 1, "maxItems": 100, "uniqueItems": true, "items": { "type": "string" } },
                        "purpose": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$", "description": "Why the values are revealed (audited): at most 200 characters, not only white space, no control characters." }
                    }
                },
                "SignInRequest": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "password", "totp"],
                    "properties": {
                        "name": { "type": "string", "description": "The operator's name." },
                        "password": { "type": "string", "description": "The password shown at enrolment (`operator add`, `operator reset`)." },
                        "totp": { "type": "string", "description": "The current 6-digit TOTP code (RFC 6238: HMAC-SHA1, 30 s). Each code is accepted once." }
                    }
                },
                "Session": {
                    "type": "object",
                    "required": ["session", "operator", "role", "expires_at", "idle_secs", "step_up_until"],
                    "properties": {
                        "session": { "type": "string", "description": "The session token (fso_…), for `Authorization: Bearer`; also set as the cookie." },
                        "operator": { "type": "string" }, "role": { "type": "string" },
                        "expires_at": { "type": "integer", "description": "Unix seconds: the session ends then at the latest (`session_max_secs` after sign-in)." },
                        "idle_secs": { "type": "integer", "description": "The session ends after this many seconds without a request." },
                        "step_up_until": { "type": "integer", "description": "Unix seconds: plain reveals need a step-up after this." }
                    }
                },
                "StepUpRequest": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["totp"],
                    "properties": { "totp": { "type": "string", "description": "A current TOTP code not used before." } }
                },
                "DetokenizeResult": {
                    "type": "object",
                    "required": ["ok"],
                    "properties": {
                        "ok": { "type": "boolean" },
                        "token": { "type": "string" }, "kind": { "type": "string" },
                        "reveal": { "enum": ["plain", "masked"] }, "value": { "type": "string" },
                        "error": { "$ref": "#/components/schemas/ItemError" }
                    }
                }
            }
        },
        "paths": {
            "/v1/keys": {
                "get": {
                    "summary": "The key set envelopes are sealed to (JWK-compatible), with the server's time.",
                    "responses": {
                        "200": { "description": "Key set", "content": { "application/json": {
                            "schema": { "$ref": "#/components/schemas/KeySet" },
                            "example": { "keys": [{ "kty": "EC", "crv": "P-256", "use": "enc", "alg": "HPKE-7", "kid": "k202611-3f9a0c71d2e4", "x": "…", "y": "…", "nbf": 1795000000, "exp": 1826536000 }], "server_time": 1795000100 }
                        } } },
                        "503": error_response("No valid key")
                    }
                }
            },
            "/v1/tokenize": {
                "post": {
                    "summary": "Open envelopes and store their values; one token (or error) per envelope.",
                    "security": [{ "apiKey": [] }],
                    "requestBody": { "required": true, "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/TokenizeRequest" },
                        "example": { "items": [{ "envelope": "fse1.AQAQAAEAAg…", "format": "format_preserving" }] }
                    } } },
                    "responses": {
                        "200": { "description": "Per-item results", "content": { "application/json": {
                            "schema": { "type": "object", "properties": { "results": { "type": "array", "items": { "$ref": "#/components/schemas/TokenizeResult" } } } },
                            "example": { "results": [
                                { "ok": true, "token": "4111113748290011", "kind": "pan", "format": "format_preserving", "brand": "visa", "last4": "1111" },
                                { "ok": false, "error": { "code": "replayed", "message": "this envelope was already submitted" } }
                            ] }
                        } } },
                        "400": error_response("Malformed request"),
                        "401": error_response("Missing, unknown or revoked API key"),
                        "503": error_response("`audit_broken`: the audit log failed its check; audited operations are refused (also `storage_busy`)"),
                        "403": error_response("The role may not tokenize"),
                        "413": error_response("Body or batch too large (also a batch larger than the role's tokenize burst)"),
                        "408": error_response("`request_timeout`: the body did not arrive in time"),
                        "415": error_response("`unsupported_media_type`: the body is not `application/json`"),
                        "429": rate_limited_response("`rate_limited`: the API key is over its role's tokenize rate; `too_many_failures`: too many failed authentications from this address this minute")
                    }
                }
            },
            "/v1/detokenize": {
                "post": {
                    "summary": "Reveal values, plain or masked as the caller's role allows, for a stated purpose.",
                    "security": [{ "apiKey": [] }],
                    "requestBody": { "required": true, "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/DetokenizeRequest" },
                        "example": { "tokens": ["tok_3JxB8q0Wc2rW1yTtq4nQ9A"], "purpose": "refund order 1042" }
                    } } },
                    "responses": {
                        "200": { "description": "Per-token results", "content": { "application/json": {
                            "schema": { "type": "object", "properties": { "results": { "type": "array", "items": { "$ref": "#/components/schemas/DetokenizeResult" } } } },
                            "example": { "results": [{ "ok": true, "token": "tok_3JxB8q0Wc2rW1yTtq4nQ9A", "kind": "email", "reveal": "masked", "value": "j***@example.com" }] }
                        } } },
                        "400": error_response("Malformed request or missing purpose"),
                        "401": error_response("Missing, unknown or revoked API key"),
                        "503": error_response("`audit_broken`: the audit log failed its check; audited operations are refused (also `storage_busy`)"),
                        "403": error_response("The role may not reveal anything; `step_up_required`: an operator's session asked for a plain reveal more than `step_up_secs` (default 300) after its last TOTP code (nothing is revealed; step up, then retry)"),
                        "413": error_response("Body or batch too large (also a batch larger than the role's reveal burst)"),
                        "423": error_response("`locked`: the caller's reveals are locked after an anomaly in them (a burst, a sweep over tokens never revealed before, off-hours plain reveals); nothing of the request is revealed, tokenizing goes on; an operator with the unlock permission and a fresh second factor (`POST /v1/locks/unlock`), or `fieldseal-vault locks unlock`, lifts it"),
                        "408": error_response("`request_timeout`: the body did not arrive in time"),
                        "415": error_response("`unsupported_media_type`: the body is not `application/json`"),
                        "429": rate_limited_response("`rate_limited`: the API key is over its role's reveal rate; `too_many_failures`: too many failed authentications from this address this minute")
                    }
                }
            },
            "/v1/tokens/{token}": {
                "delete": {
                    "summary": "Delete a token and its stored value.",
                    "security": [{ "apiKey": [] }],
                    "parameters": [{ "name": "token", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "responses": {
                        "204": { "description": "Deleted" },
                        "401": error_response("Missing, unknown or revoked API key"),
                        "503": error_response("`audit_broken`: the audit log failed its check; audited operations are refused (also `storage_busy`)"),
                        "403": error_response("The role may not delete this kind"),
                        "404": error_response("No such token"),
                        "429": rate_limited_response("`too_many_failures`: too many failed authentications from this address this minute")
                    }
                }
            },
            "/v1/me": {
                "get": {
                    "summary": "The caller's API key id, role and per-kind permissions.",
                    "security": [{ "apiKey": [] }],
                    "responses": {
                        "200": { "description": "Who the key is", "content": { "application/json": {
                            "example": { "key_id": "3f9a0c71d2e4", "role": "support", "permissions": { "tokenize": [], "reveal_plain": [], "reveal_masked": ["pan", "email", "phone", "name"], "delete": [], "fingerprint": [], "deterministic": [], "hints": [], "audit": false, "erase": false, "unlock": false, "export": false } }
                        } } },
                        "401": error_response("Missing, unknown or revoked API key"),
                        "503": error_response("`audit_broken`: the audit log failed its check; audited operations are refused (also `storage_busy`)"),
                        "429": rate_limited_response("`too_many_failures`: too many failed authentications from this address this minute")
                    }
                }
            },
            "/v1/operators/sign-in": {
                "post": {
                    "summary": "Sign an operator in with name, password and a TOTP code; the session is the cookie `fieldseal_session` (HttpOnly; Secure; SameSite=Strict) and the body's `session` (bearer). Failures count toward the operator's lock (`operator_lockout_attempts` in a row lock it for `operator_lockout_secs`); every failure and lock is audited.",
                    "requestBody": { "required": true, "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/SignInRequest" },
                        "example": { "name": "alice", "password": "…", "totp": "492039" }
                    } } },
                    "responses": {
                        "200": { "description": "Signed in",
                            "headers": { "Set-Cookie": { "description": "fieldseal_session=fso_…; Path=/; Max-Age=…; HttpOnly; Secure; SameSite=Strict", "schema": { "type": "string" } } },
                            "content": { "application/json": {
                                "schema": { "$ref": "#/components/schemas/Session" },
                                "example": { "session": "fso_…", "operator": "alice", "role": "support", "expires_at": 1795028900, "idle_secs": 900, "step_up_until": 1795000400 }
                            } } },
                        "400": error_response("Malformed request"),
                        "401": error_response("`sign_in_failed`: unknown or disabled operator, wrong password, or a wrong, stale or already used code (one answer for all)"),
                        "403": rate_limited_response("`operator_locked`: locked after repeated failed attempts, even with the right password (`Retry-After` says for how long), or by an administrator until reset (no `Retry-After`)"),
                        "408": error_response("`request_timeout`: the body did not arrive in time"),
                        "413": error_response("Body too large"),
                        "415": error_response("`unsupported_media_type`: the body is not `application/json`"),
                        "429": rate_limited_response("`too_many_failures`: too many failed authentications from this address this minute; `sign_in_busy`: every password-check slot is taken (one per core), retry after a second"),
                        "503": error_response("`audit_broken`: the audit log failed its check; audited operations are refused (also `storage_busy`)")
                    }
                }
            },
            "/v1/operators/step-up": {
                "post": {
                    "summary": "Enter a TOTP code in an operator's session: plain reveals are allowed for `step_up_secs` (default 300) after it. A wrong or used code counts toward the operator's lock.",
                    "security": [{ "apiKey": [] }],
                    "requestBody": { "required": true, "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/StepUpRequest" },
                        "example": { "totp": "118305" }
                    } } },
                    "responses": {
                        "200": { "description": "Second factor recorded", "content": { "application/json": {
                            "schema": { "type": "object", "required": ["step_up_until"], "properties": { "step_up_until": { "type": "integer" } } },
                            "example": { "step_up_until": 1795000700 }
                        } } },
                        "400": error_response("Malformed request"),
                        "401": error_response("Missing, unknown or revoked API key or session; `step_up_failed`: a wrong, stale or already used code"),
                        "403": rate_limited_response("`not_an_operator`: an API key, not an operator's session; `operator_locked`: locked after repeated failed attempts (`Retry-After`) or by an administrator"),
                        "408": error_response("`request_timeout`: the body did not arrive in time"),
                        "413": error_response("Body too large"),
                        "415": error_response("`unsupported_media_type`: the body is not `application/json`"),
                        "429": rate_limited_response("`too_many_failures`: too many failed authentications from this address this minute"),
                        "503": error_response("`audit_broken`: the audit log failed its check; audited operations are refused (also `storage_busy`)")
                    }
                }
            },
            "/v1/operators/sign-out": {
                "post": {
                    "summary": "End the operator's session (audited); the cookie is cleared.",
                    "security": [{ "apiKey": [] }],
                    "responses": {
                        "204": { "description": "Signed out", "headers": { "Set-Cookie": { "description": "fieldseal_session=; Max-Age=0 (cleared)", "schema": { "type": "string" } } } },
                        "401": error_response("Missing, unknown or revoked API key or session"),
                        "403": error_response("`not_an_operator`: an API key, not an operator's session"),
                        "429": rate_limited_response("`too_many_failures`: too many failed authentications from this address this minute"),
                        "503": error_response("`audit_broken`: the audit log failed its check; audited operations are refused (also `storage_busy`)")
                    }
                }
            },
            "/v1/audit": {
                "get": {
                    "summary": "Read the audit log (roles with `audit = true`). Entries hold who, what, which token, the purpose and the outcome; never a value. Each read is itself audited (`audit.read`).",
                    "security": [{ "apiKey": [] }],
                    "parameters": [
                        { "name": "after", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0, "maximum": i64::MAX, "default": 0 }, "description": "Entries with a greater seq" },
                        { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }
                    ],
                    "responses": {
                        "200": { "description": "Entries in order, and the seq to pass as `after` for the next page", "content": { "application/json": {
                            "example": { "entries": [{ "seq": 7, "at": 1795000100, "actor": "apikey:3f9a0c71d2e4", "action": "reveal", "token": "tok_3JxB8q0Wc2rW1yTtq4nQ9A", "kind": "email", "purpose": "customer call 5531", "outcome": "masked", "detail": "", "prev_hash": "…", "hash": "…" }], "next_after": 7 }
                        } } },
                        "400": error_response("Bad query"),
                        "401": error_response("Missing, unknown or revoked API key"),
                        "503": error_response("`audit_broken`: the audit log failed its check; audited operations are refused (also `storage_busy`)"),
                        "403": error_response("The role may not read the audit log"),
                        "429": rate_limited_response("`too_many_failures`: too many failed authentications from this address this minute")
                    }
                }
            },
            "/v1/audit/verify": {
                "get": {
                    "summary": "Verify the audit chain up to its anchored head: every entry's hash and MAC, and the head (audited as `audit.verify`). Walks the whole chain on each call.",
                    "security": [{ "apiKey": [] }],
                    "parameters": [
                        { "name": "expect_head", "in": "query", "required": false, "schema": { "type": "string", "pattern": "^[1-9][0-9]{0,17}:[0-9a-f]{64}$" }, "description": "A head recorded earlier (`SEQ:HASH`, as `fieldseal-vault audit head` prints it): the verification fails unless that entry is still in the chain." }
                    ],
                    "responses": {
                        "200": { "description": "The verification; `broken` names the first entry that does not verify, `head` the head walked to", "content": { "application/json": {
                            "example": { "intact": false, "verified": 41, "broken": { "seq": 42, "reason": "contents do not match the entry's hash" }, "head": "57:9c0f…" }
                        } } },
                        "400": error_response("expect_head is not SEQ:HASH (SEQ from 1, HASH 64 lower-case hex digits)"),
                        "401": error_response("Missing, unknown or revoked API key"),
                        "503": error_response("`audit_broken`: the audit log failed its check; audited operations are refused (also `storage_busy`)"),
                        "403": error_response("The role may not read the audit log"),
                        "429": rate_limited_response("`too_many_failures`: too many failed authentications from this address this minute")
                    }
                }
            },
            "/v1/openapi.json": {
                "get": { "summary": "This document.", "responses": { "200": { "description": "OpenAPI document" } } }
            },
            "/healthz": {
                "get": { "summary": "Liveness.", "responses": { "200": { "description": "Alive", "content": { "application/json": { "example": { "status": "ok" } } } } } }
            },
            "/readyz": {
                "get": { "summary": "Readiness: database reachable and a valid key loaded.", "responses": {
                    "200": { "description": "Ready", "content": { "application/json": { "example": { "database": true, "keys": true } } } },
                    "503": { "description": "Not ready" }
                } }
            }
        }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        for more in [
            crate::subjects::openapi_paths(),
            crate::locks::openapi_paths(),
        ] {
            if let Value::Object(more) = more {
                paths.extend(more);
            }
        }
        // Every secured operation takes an operator's session cookie as well as a bearer token.
        for op in paths.values_mut().filter_map(Value::as_object_mut) {
            for operation in op.values_mut() {
                if let Some(security) = operation.get_mut("security").and_then(Value::as_array_mut)
                {
                    security.push(json!({ "operatorSession": [] }));
                }
            }
        }
    }
    doc
}
