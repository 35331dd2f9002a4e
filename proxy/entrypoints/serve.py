"""``thinkstop serve``: run the proxy under uvicorn.

Imports stay light here (argparse only); the app, litellm and FastAPI load when the
command runs. Before anything heavy loads, the port is checked, so a busy port costs a
second, not a model load; when the server is ready it prints the URL and the model names
to send, with a request to try.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from typing import Any


def add_serve_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the OpenAI-compatible proxy",
        description=(
            "Serve an OpenAI-compatible API (/v1/chat/completions, /v1/models, /metrics, "
            "/health/*, /docs) that streams a reasoning model's thinking and halts it once "
            "its answer plateaus. Without --config, serves the embedded local model "
            "(Qwen2.5-Coder-1.5B, run by llama.cpp in this process) as 'thinkstop-local'."
        ),
        epilog="When ready it prints the base URL for your OpenAI client and the model "
               "names it serves. Ctrl-C (or SIGTERM) drains in-flight streams, then stops.",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config (LiteLLM proxy style)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4000, help="port (default 4000)")
    parser.add_argument("--gguf", metavar="PATH", default=os.environ.get("THINKSTOP_GGUF"),
                        help="GGUF file for the embedded model (env THINKSTOP_GGUF)")
    parser.set_defaults(func=run_serve)


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host:port``, or None when it can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"port {port} on {host} is already in use (another thinkstop "
                        f"serve?); stop it or choose another port with --port N")
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def ready_banner(host: str, port: int, models: list[str]) -> str:
    """What ``serve`` prints once it accepts requests."""
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}/v1"
    first = models[0] if models else "MODEL"
    example = (
        f"curl -N {base}/chat/completions -H 'Content-Type: application/json' "
        f"-d '{{\"model\": \"{first}\", \"stream\": true, \"messages\": "
        f"[{{\"role\": \"user\", \"content\": \"How many legs do 3 cats have?\"}}]}}'"
    )
    return (f"thinkstop is ready: base URL {base}\n"
            f"  models: {', '.join(models)}\n"
            f"  try:    {example}\n")


def run_serve(args: argparse.Namespace) -> int:
    """Load the config, build upstreams and the app, and serve until interrupted."""
    problem = port_problem(args.host, args.port)
    if problem:
        print(f"thinkstop serve: {problem}", file=sys.stderr)
        return 2
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from thinkstop.proxy.config import ConfigError, default_config, load_config, with_gguf
    from thinkstop.proxy.http.app import create_app
    from thinkstop.proxy.http.server import build_server
    from thinkstop.proxy.upstreams.base import UpstreamConfigError
    from thinkstop.proxy.upstreams.registry import build_upstream

    try:
        config = load_config(args.config) if args.config else default_config()
        config = with_gguf(config, args.gguf)
        upstreams = {}
        for entry in config.model_list:
            if str(entry.litellm_params.get("model", "")).startswith("local/"):
                print(f"thinkstop serve: loading {entry.model_name} (the embedded model: "
                      "a self-test in a subprocess first, then the model)...",
                      file=sys.stderr, flush=True)
            upstreams[entry.model_name] = build_upstream(entry.model_name,
                                                         config.upstream_params(entry))
        app = create_app(config, upstreams)
    except (ConfigError, UpstreamConfigError) as exc:
        print(f"thinkstop serve: {exc}", file=sys.stderr)
        return 2
    banner = ready_banner(args.host, args.port, [e.model_name for e in config.model_list])

    # SIGTERM: stop accepting, let in-flight streams finish (up to the grace period), end
    # the ones still running with a final error frame, then close the upstreams in the
    # app's lifespan shutdown. The connection and body limits: thinkstop.proxy.http.server.
    server = build_server(app, config, host=args.host, port=args.port,
                          on_ready=lambda: print(banner, flush=True))
    server.run()
    return 0 if server.started else 1
