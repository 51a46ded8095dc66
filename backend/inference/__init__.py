"""The embedded model: training it from the registered datasets' content (`training`) and answering with it
(`model`). The API's inference routes serve it; `cairn train` builds it (docs/ARCHITECTURE.md)."""
