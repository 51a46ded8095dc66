"""Service functions behind the routers: keyword-only arguments, plain dicts out, CairnError on bad input."""
