"""``flareseq serve --model RUN_OR_PATH``: the forecast service (HTTP API and page)."""

from __future__ import annotations

import argparse
import sys

from flareseq.errors import MissingDependencyError


def register(subparsers: argparse._SubParsersAction) -> None:
    from flareseq.cli import add_command
    from flareseq.cli.store import add_store_options

    p = add_command(
        subparsers, "serve", help="serve a run's model over HTTP: an API and a page",
        description="Serve one trained model: an HTTP API (OpenAPI schema at /openapi.json) and a page at /. "
                    "Listens on 127.0.0.1 unless --allow-remote is given with a token.",
        examples=["flareseq serve --model lstm --experiment default --output-dir demo-output",
                  "flareseq serve --model saved-model/ --host 0.0.0.0 --allow-remote --token \"$(cat token.txt)\""])
    p.add_argument("--model", required=True, metavar="RUN_OR_PATH",
                   help="a saved model folder, a run id, or a run name (in --experiment)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --host; needs a token")
    p.add_argument("--token", default=None,
                   help="token every request must carry ('Authorization: Bearer TOKEN'); prefer the environment "
                        "variable FLARESEQ_SERVE_TOKEN, which other users cannot read from the process list")
    p.add_argument("--max-body-mb", type=float, default=32, help="largest request body in MiB (default 32)")
    p.add_argument("--max-batch", type=int, default=1024, help="most samples in one request (default 1024)")
    p.add_argument("--max-concurrency", type=int, default=16,
                   help="most requests handled at once; more are answered 503 (default 16)")
    add_store_options(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401  (uploads)
        import uvicorn  # noqa: F401
    except ImportError as exc:
        package = {"python_multipart": "python-multipart"}.get(exc.name, exc.name or "fastapi")
        raise MissingDependencyError(package, "serve", "flareseq serve") from None
    from flareseq.errors import FlareseqError
    from flareseq.forecasting.guard import ServiceLimits
    from flareseq.forecasting.served_model import load_served_model
    from flareseq.forecasting.server import build_server, check_binding, resolve_token

    if args.max_body_mb <= 0 or args.max_batch < 1 or args.max_concurrency < 1:
        raise FlareseqError("--max-body-mb, --max-batch and --max-concurrency must be positive, found "
                            f"{args.max_body_mb}, {args.max_batch}, {args.max_concurrency}.")
    token = resolve_token(args.token)
    check_binding(args.host, allow_remote=args.allow_remote, token=token)  # before the (slow) model load
    model = load_served_model(args.model, experiment=args.experiment, tracking_uri=args.tracking_uri,
                              output_dir=args.output_dir)
    limits = ServiceLimits(max_body_bytes=int(args.max_body_mb * 2**20), max_samples=args.max_batch)
    # latest_regions: the "Today's Sun" data plugs in here (a function returning a FlareDataset).
    server = build_server(model, host=args.host, port=args.port, token=token, allow_remote=args.allow_remote,
                          limits=limits, max_concurrency=args.max_concurrency, latest_regions=None)
    who = model.identity.run_id or model.identity.model_sha256
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving {model.identity.name} ({who}), threshold {model.threshold:.3f}, on http://{host}:{args.port}/ "
          f"({'token required' if token else 'no token'}); Ctrl-C to stop", file=sys.stderr)
    if args.allow_remote:
        print("note: plain HTTP; the token crosses the network in clear text unless a TLS proxy is in front.",
              file=sys.stderr)
    server.run()
    return 0
