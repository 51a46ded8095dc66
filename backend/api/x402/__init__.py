"""The x402 v2 payment gateway: HTTP 402 requirements, payment verification per scheme, settlement hand-off.

`scheme.py` is the contract between the gateway and each payment scheme (`exact` over EIP-3009
TransferWithAuthorization; `batch-settlement` channels with cumulative vouchers). The gateway owns the HTTP
side (PAYMENT-REQUIRED / PAYMENT-SIGNATURE / PAYMENT-RESPONSE headers); a scheme owns verification and what is
recorded for settlement.
"""
