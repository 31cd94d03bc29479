"""``gsv-triton gateway``: its arguments and entry point (also ``python -m gsv_gateway``).

Flags override the ``GSV_*`` environment; ``-dr -dt -dl -cp`` are upstream api.py's flags. Importing this
module needs only the standard library, so the project CLI can build its parser without the gateway extra.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from gsv_triton.errors import GsvError, UserError

if TYPE_CHECKING:
    from gsv_triton.settings import Settings

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 8080
# argparse destination -> Settings field, for the flags that map one to one.
SETTING_FLAGS = {
    "triton_url": "triton_url",
    "triton_http_url": "triton_http_url",
    "default_refer_path": "default_refer_path",
    "default_refer_text": "default_refer_text",
    "default_refer_language": "default_refer_language",
    "refer_root": "refer_root",
    "cut_punc": "default_cut_punc",
    "timeout": "request_timeout_s",
    "max_new_tokens": "max_new_tokens",
    "log_level": "log_level",
    "voice_dir": "voice_dir",
}


def add_gateway_arguments(parser: argparse.ArgumentParser, with_triton_url: bool = True) -> None:
    """The gateway's flags (``with_triton_url`` False for ``up``, which knows its own Triton)."""
    if with_triton_url:
        parser.add_argument("--triton-url", help="Triton gRPC endpoint host:port (env GSV_TRITON_URL; default 127.0.0.1:8001)")
        parser.add_argument("--triton-http-url", help="Triton HTTP endpoint host:port for unary inference, the faster "
                                                      "path (env GSV_TRITON_HTTP_URL; default: none, gRPC only)")  # fmt: skip
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"gateway bind address (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"gateway port (default {DEFAULT_PORT})")
    parser.add_argument("-dr", "--default-refer-path", help="default reference audio (api.py -dr)")
    parser.add_argument("-dt", "--default-refer-text", help="its transcript (api.py -dt)")
    parser.add_argument("-dl", "--default-refer-language", help="its language (api.py -dl)")
    parser.add_argument("--refer-root", help="directory refer_wav_path may read from (default: none, reading disabled)")
    parser.add_argument("-cp", "--cut-punc", help="default cut punctuation (api.py -cp)")
    parser.add_argument("--timeout", type=float, help="seconds per synthesis before 504 (env GSV_REQUEST_TIMEOUT_S; default 60)")
    parser.add_argument("--max-new-tokens", type=int, help="cap on semantic tokens per sentence piece (default: the model's)")
    parser.add_argument("--log-level", help="DEBUG, INFO (default), WARNING, ERROR")
    parser.add_argument("--voice-dir", help="voice library directory (env GSV_VOICE_DIR; default ~/.local/share/gsv-triton/voices)")


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings from the environment, then the given flags, then ``overrides``; UserError if invalid."""
    # Imported here: building the parser (gsv-triton --help) stays cheap; pydantic loads only to run.
    from pydantic import ValidationError

    from gsv_triton.settings import Settings

    values = {field: getattr(args, dest) for dest, field in SETTING_FLAGS.items() if getattr(args, dest, None) is not None}
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "settings"
        raise UserError(f"gateway settings: {where}: {first.get('msg')}") from None


def gateway_main(args: argparse.Namespace) -> int:
    """Run the gateway in the foreground until Ctrl-C/SIGTERM."""
    from .server import serve

    return serve(settings_from_args(args), host=args.host, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gsv-triton gateway", description=__doc__)
    add_gateway_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return gateway_main(args)
    except GsvError as exc:
        print(f"gsv-triton gateway: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


