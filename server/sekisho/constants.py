"""Wire identifiers: token type URNs (RFC 8693 §3, ID-JAG draft), JOSE `typ`, media types, error
domain."""

from typing import Final, Literal, get_args

TOKEN_TYPE_ID_TOKEN: Final = "urn:ietf:params:oauth:token-type:id_token"
TOKEN_TYPE_ACCESS_TOKEN: Final = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_JWT: Final = "urn:ietf:params:oauth:token-type:jwt"
TOKEN_TYPE_ID_JAG: Final = "urn:ietf:params:oauth:token-type:id-jag"

GRANT_TYPE_TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANT_TYPE_JWT_BEARER: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"

# Explicit typing (RFC 8725 §3.11) keeps the two output profiles from being confused.
TYP_ID_JAG: Final = "oauth-id-jag+jwt"
TYP_ACCESS_TOKEN: Final = "at+jwt"
# A Status List Token (draft-ietf-oauth-status-list): its JOSE `typ` and the media type it is
# served and asked for as (the issuer's endpoint and the SDK's client).
TYP_STATUS_LIST: Final = "statuslist+jwt"
MEDIA_TYPE_STATUS_LIST: Final = "application/statuslist+jwt"

ERROR_DOMAIN: Final = "sekisho.dev"

SUPPORTED_SUBJECT_TOKEN_TYPES: Final = frozenset({TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_ACCESS_TOKEN})
SUPPORTED_ACTOR_TOKEN_TYPES: Final = frozenset(
    {TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT}
)

# Asymmetric JWS algorithms Sekisho can verify (inbound) or sign with (outbound).
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# The JWS algorithms Sekisho signs with ([keys] algorithm), ES256 (the default) first; the
# verify SDK accepts these by default.
SigningAlgorithm = Literal["ES256", "PS256", "RS256", "EdDSA"]
SIGNING_ALGORITHMS: Final[tuple[str, ...]] = get_args(SigningAlgorithm)

# The dev IdP (`sekisho dev-idp`, `make run`): where it listens and the audience of its tokens.
# Here, import-free, for the CLI's defaults and the exposure check that warns when a
# non-loopback listener trusts it.
DEV_IDP_LISTEN: Final = "127.0.0.1:9400"
DEV_IDP_AUDIENCE: Final = "sekisho-dev"

# The longest protected-header segment (base64url, before the first ".") of a JWS that Sekisho
# or its SDK hands to PyJWT. PyJWT decodes the header and parses it as JSON before it checks the
# signature, so the header of an unverified token is bounded first: the policy bundle's signature
# (red team session 13b: a 47 MiB header cost 5.9 s and +1.5 GB), a status list token and a token
# a downstream's verifier is handed. Sekisho's and OPA's headers (alg, kid, typ) are ~100 bytes.
MAX_HEADER_SEGMENT: Final = 4096
