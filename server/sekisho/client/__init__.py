"""sekisho.client: ExchangeToken for callers (agent runtimes, gateways), plus outbound helpers.

async with TokenExchangeClient("sekisho.internal:50051") as sekisho:
    token = await sekisho.exchange(user_token, "https://crm.example.com/mcp",
                                   requested_token_type=TOKEN_TYPE_ACCESS_TOKEN)
"""

from sekisho.client.cache import ExchangedToken
from sekisho.client.channel import ChannelOptions
from sekisho.client.errors import (
    CallerNotAuthenticatedError,
    ConsentRequiredError,
    ExchangeDeniedError,
    ExchangeError,
    ExchangeUnavailableError,
    InvalidExchangeRequestError,
    RateLimitedError,
    StepUpRequiredError,
)
from sekisho.client.exchanger import RetryPolicy, TokenExchangeClient
from sekisho.client.mcp_assertion import SekishoAssertionProvider
from sekisho.client.outbound import (
    Downstream,
    SekishoAuth,
    SekishoStreamTokenInterceptor,
    SekishoTokenInterceptor,
    sekisho_interceptors,
)
from sekisho.client.sync import SyncTokenExchangeClient

__all__ = [
    "CallerNotAuthenticatedError",
    "ChannelOptions",
    "ConsentRequiredError",
    "Downstream",
    "ExchangeDeniedError",
    "ExchangeError",
    "ExchangeUnavailableError",
    "ExchangedToken",
    "InvalidExchangeRequestError",
    "RateLimitedError",
    "RetryPolicy",
    "SekishoAssertionProvider",
    "SekishoAuth",
    "SekishoStreamTokenInterceptor",
    "SekishoTokenInterceptor",
    "StepUpRequiredError",
    "SyncTokenExchangeClient",
    "TokenExchangeClient",
    "sekisho_interceptors",
]
