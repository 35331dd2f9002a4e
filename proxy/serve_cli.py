"""``thinkstop serve``: run the proxy under uvicorn.

Imports stay light here (argparse only); the app, litellm and FastAPI load when the
command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def add_serve_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the OpenAI-compatible proxy",
        description=(
            "Serve an OpenAI-compatible API (/v1/chat/completions, /v1/models, /metrics, "
            "/health/*, /docs) that streams a reasoning model's thinking and halts it once "
            "its answer plateaus. Without --config, serves the embedded local model."
        ),
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config (LiteLLM proxy style)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4000, help="port (default 4000)")
    parser.add_argument("--gguf", metavar="PATH", default=os.environ.get("THINKSTOP_GGUF"),
                        help="GGUF file for the embedded model (env THINKSTOP_GGUF)")
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Load the config, build upstreams and the app, and serve until interrupted."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import uvicorn

    from proxy.app import create_app
    from proxy.config import ConfigError, default_config, load_config, with_gguf
    from proxy.upstreams.factory import UpstreamConfigError, build_upstream

    try:
        config = load_config(args.config) if args.config else default_config()
        config = with_gguf(config, args.gguf)
        upstreams = {
            entry.model_name: build_upstream(entry.model_name, entry.litellm_params)
            for entry in config.model_list
        }
        app = create_app(config, upstreams)
    except (ConfigError, UpstreamConfigError) as exc:
        print(f"thinkstop serve: {exc}", file=sys.stderr)
        return 2
    # SIGTERM: stop accepting, let in-flight streams finish (up to the grace period), then
    # close the upstreams in the app's lifespan shutdown.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=config.general_settings.graceful_shutdown_seconds)
    return 0
