"""Token payloads shaped exactly as each vendor documents them (header and claims, times relative).

Each shape cites the vendor page its claims are copied from; only times and the issuer host are
substituted. `issue(...)` signs a shape with the fixture IdP key so the verifier checks it for real.
"""

from typing import Any

import jwt

from tests.fakes.idp import TestIdp

KEYCLOAK_ISSUER = "https://sso.example.com/realms/acme"
COGNITO_ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_example"
ENTRA_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA_V2_ISSUER = f"https://login.microsoftonline.com/{ENTRA_TENANT}/v2.0"
ENTRA_V1_ISSUER = f"https://sts.windows.net/{ENTRA_TENANT}/"
OKTA_ISSUER = "https://example.okta.com/oauth2/default"
OKTA_ORG_ISSUER = "https://example.okta.com"
AUTH0_ISSUER = "https://my-domain.auth0.com/"
GOOGLE_ISSUER = "https://accounts.google.com"

# Keycloak 26 (https://www.keycloak.org/docs/latest/server_admin/#_protocol-mappers and the tokens
# the live test in tests/integration/test_keycloak.py receives): payload typ marks the kind, the
# group membership mapper sends full paths by default, access tokens carry aud "account".
KEYCLOAK_ACCESS = {
    "iss": KEYCLOAK_ISSUER,
    "aud": "account",
    "sub": "3f0e2b4c-6a1d-4f7e-9c52-8d1b0a7e6f31",
    "typ": "Bearer",
    "azp": "agent-app",
    "sid": "a1b2c3d4-0000-4000-8000-000000000001",
    "acr": "1",
    "realm_access": {"roles": ["default-roles-acme", "offline_access", "uma_authorization"]},
    "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
    "scope": "openid profile email",
    "email_verified": True,
    "groups": ["/sales", "/eng/platform"],
    "preferred_username": "alice",
    "email": "alice@example.com",
}
KEYCLOAK_ID = {
    "iss": KEYCLOAK_ISSUER,
    "aud": "agent-app",
    "sub": "3f0e2b4c-6a1d-4f7e-9c52-8d1b0a7e6f31",
    "typ": "ID",
    "azp": "agent-app",
    "sid": "a1b2c3d4-0000-4000-8000-000000000001",
    "at_hash": "2u5Gx8Gq0sP7f1xMN1iL1A",
    "acr": "1",
    "email_verified": True,
    "groups": ["/sales", "/eng/platform"],
    "preferred_username": "alice",
    "email": "alice@example.com",
}

# Amazon Cognito user pools: access token (no aud; client_id, token_use "access") from
# https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html
# and ID token (aud = app client id, token_use "id") from
# https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-id-token.html
COGNITO_ACCESS = {
    "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "device_key": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "cognito:groups": ["admin"],
    "token_use": "access",
    "scope": "aws.cognito.signin.user.admin",
    "iss": COGNITO_ISSUER,
    "jti": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "client_id": "1example23456789",
    "username": "my-test-user",
    "origin_jti": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "event_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
}
COGNITO_ID = {
    "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "cognito:groups": ["admin"],
    "email_verified": True,
    "iss": COGNITO_ISSUER,
    "cognito:username": "my-test-user",
    "origin_jti": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "aud": "1example23456789",
    "event_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "token_use": "id",
    "jti": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "email": "my-test-user@example.com",
}

# Microsoft Entra ID: v2.0 access token from
# https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference
# (azp/azpacr in v2.0, appid/appidacr in v1.0, roles and groups as configured) and ID token from
# https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference
ENTRA_V2_ACCESS = {
    "aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
    "iss": ENTRA_V2_ISSUER,
    "aio": "AXQAi/8IAAAAtAaZLo3ChMif6KOnttRB7eBq4/DccQzjcJGxPYy/C3jDaNGxXd6wNIIVGRghNRnwJ1lOcAnNZcjvkoyrFxCttv33140RioOFJ4bCCGVuoCag1uOTT22222gHwLPYQ/uf79QX+0KIijdrmp69RctzmQ==",
    "azp": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
    "azpacr": "0",
    "name": "Abe Lincoln",
    "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
    "preferred_username": "abeli@microsoft.com",
    "rh": "I",
    "scp": "access_as_user",
    "roles": ["Exchange.Reader"],
    "groups": ["f3a1c8e2-0b7d-4c55-9d61-2b7e9a4c1d10"],
    "sub": "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
    "tid": ENTRA_TENANT,
    "uti": "fqiBqXLPj0eQa82S-IYFAA",
    "ver": "2.0",
}
ENTRA_V1_ACCESS = {
    "aud": "api://6e74172b-be56-4843-9ff4-e66a39bb12e3",
    "iss": ENTRA_V1_ISSUER,
    "appid": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
    "appidacr": "0",
    "name": "Abe Lincoln",
    "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
    "scp": "access_as_user",
    "sub": "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
    "tid": ENTRA_TENANT,
    "unique_name": "abeli@microsoft.com",
    "uti": "fqiBqXLPj0eQa82S-IYFAA",
    "ver": "1.0",
}
ENTRA_V2_ID = {
    "aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
    "iss": ENTRA_V2_ISSUER,
    "name": "Abe Lincoln",
    "nonce": "123523",
    "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
    "preferred_username": "abeli@microsoft.com",
    "rh": "I",
    "sub": "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
    "tid": ENTRA_TENANT,
    "uti": "fqiBqXLPj0eQa82S-IYFAA",
    "ver": "2.0",
}
# Groups overage (https://learn.microsoft.com/en-us/security/zero-trust/develop/configure-tokens-group-claims-app-roles):
# more groups than fit, so `groups` is replaced by a pointer to Microsoft Graph.
ENTRA_OVERAGE = {
    "_claim_names": {"groups": "src1"},
    "_claim_sources": {
        "src1": {
            "endpoint": f"https://graph.microsoft.com/v1.0/users/{ENTRA_TENANT}/getMemberObjects"
        }
    },
    "groups": None,
}

# Okta custom authorization server: access token (cid, uid, scp as an array, jti "AT.") and ID
# token (aud = client id, jti "ID.") from https://developer.okta.com/docs/reference/api/oidc/
OKTA_ACCESS = {
    "ver": 1,
    "jti": "AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE",
    "iss": OKTA_ISSUER,
    "aud": "api://default",
    "sub": "00ujmkLgOJjKvHtV40g3",
    "cid": "0oah9pj6cgR7ZhIxj0g3",
    "uid": "00ujmkLgOJjKvHtV40g3",
    "scp": ["openid", "email", "sekisho"],
    "groups": ["Everyone", "sales"],
}
OKTA_ID = {
    "ver": 1,
    "sub": "00ujmkLgOJjKvHtV40g3",
    "iss": OKTA_ISSUER,
    "aud": "0oah9pj6cgR7ZhIxj0g3",
    "jti": "ID.4eAWJOCMB3SX8XewDfVR",
    "amr": ["pwd"],
    "idp": "00ok1u7AsAkrwdZL3z0g3",
    "nonce": "n-0S6_WzA2Mj",
    "at_hash": "MTIzNDU2Nzg5MDEyMzQ1Ng",
    "groups": ["Everyone", "sales"],
}

# Auth0: access token in the Auth0 profile (client in azp, aud an array with /userinfo) and in the
# RFC 9068 profile (header typ at+jwt, client_id) from
# https://auth0.com/docs/secure/tokens/access-tokens/access-token-profiles ; ID token from
# https://auth0.com/docs/secure/tokens/id-tokens/id-token-structure ; M2M (gty) from
# https://auth0.com/docs/get-started/authentication-and-authorization-flow/client-credentials-flow
AUTH0_ACCESS = {
    "iss": AUTH0_ISSUER,
    "sub": "auth0|123456",
    "aud": ["https://sekisho.example.com", "https://my-domain.auth0.com/userinfo"],
    "azp": "my_client_id",
    "scope": "openid profile read:patients",
    "https://sekisho.example.com/groups": ["sales"],
}
AUTH0_ACCESS_RFC9068 = {
    "iss": AUTH0_ISSUER,
    "sub": "auth0|123456",
    "aud": ["https://sekisho.example.com", "https://my-domain.auth0.com/userinfo"],
    "client_id": "my_client_id",
    "jti": "a8f2c3d4e5f60718",
    "scope": "openid profile read:patients",
}
AUTH0_M2M = {
    "iss": AUTH0_ISSUER,
    "sub": "my_client_id@clients",
    "aud": "https://sekisho.example.com",
    "azp": "my_client_id",
    "scope": "read:patients",
    "gty": "client-credentials",
}
AUTH0_ID = {
    "iss": AUTH0_ISSUER,
    "sub": "auth0|123456",
    "aud": "my_client_id",
    "name": "Jane Doe",
    "nonce": "n-0S6_WzA2Mj",
    "sid": "Gp7Jx0dYfz5lq_nUuGvw1Vq9bRW7G5yb",
}

# Google ID token from https://developers.google.com/identity/openid-connect/openid-connect#an-id-tokens-payload
GOOGLE_ID = {
    "iss": GOOGLE_ISSUER,
    "azp": "1234987819200.apps.googleusercontent.com",
    "aud": "1234987819200.apps.googleusercontent.com",
    "sub": "10769150350006150715113082367",
    "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
    "hd": "example.com",
    "email": "jsmith@example.com",
    "email_verified": "true",
    "nonce": "0394852-3190485-2490358",
}


def issue(
    idp: TestIdp, now: float, shape: dict[str, Any], header: dict[str, Any] | None = None
) -> str:
    """Sign `shape` (None values dropped) with fresh iat/exp as the IdP's RS256 key."""
    claims = {"iat": int(now), "exp": int(now) + 300, **shape}
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(
        claims, idp.rsa_key, algorithm="RS256", headers={"kid": idp.rsa_kid, **(header or {})}
    )
