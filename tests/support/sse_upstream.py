"""A real OpenAI-compatible upstream that streams slowly, for the streamed-failure tests: `python
tests/support/sse_upstream.py PORT` serves `POST /v1/chat/completions` with `stream: true` as
`text/event-stream` (HTTP/1.1, chunked): a role chunk, then one word chunk every INTERVAL seconds, then a
finish chunk naming a dataset in its `cairn` member, then `[DONE]`. The model name picks the pace: "slow"
waits 30 s between words (a test kills the process mid-stream), anything else 0.01 s. It prints "ready" once
it listens. Standard library only, so it starts fast and dies with SIGKILL like any provider."""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ["bees", " make", " honey", " from", " nectar"]
DATASET = "0x" + "ab" * 32


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, body: dict[str, object]) -> None:
        self._chunk(b"data: " + json.dumps(body).encode() + b"\n\n")

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        model = str(req.get("model"))
        interval = 30.0 if model == "slow" else 0.01
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": model}
        self._event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        for i, word in enumerate(WORDS):
            if i:
                time.sleep(interval)
            self._event(
                {**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
            )
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                     "cairn": {"datasets": [{"id": DATASET, "score": 1.0}]}})  # fmt: skip
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")  # the last chunk


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
